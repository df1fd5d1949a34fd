"""Timestamp parameters with fractions of a second, bound server-side by psycopg 3 (extended
protocol), answer alike on the lake and on ClickHouse, whose DateTime holds whole seconds.

Usage: python3 tests/pgwire_params.py LAKE_PG_PORT CLICKHOUSE_PG_PORT -> prints one JSON summary
line; any failed check raises (non-zero exit).
"""
import datetime
import json
import sys

try:
    import psycopg
except ImportError:
    sys.exit("python package psycopg is missing: run `bash deploy/dev/install.sh` (installs psycopg[binary])")

lake_port, ch_port = int(sys.argv[1]), int(sys.argv[2])


def connect(port):
    return psycopg.connect(host="127.0.0.1", port=port, user="grafana", password="any", dbname="edgelens", connect_timeout=10, autocommit=True)


lake, ch = connect(lake_port), connect(ch_port)
first = lake.execute("SELECT MIN(ts) FROM site_rates_10s").fetchone()[0]
assert first == ch.execute("SELECT MIN(ts) FROM site_rates_10s").fetchone()[0]
checked = 0
for lo_s, hi_s in [(10.5, 20.5), (20.25, 120.75), (0.001, 59.999), (30, 90.5)]:
    lo, hi = first + datetime.timedelta(seconds=lo_s), first + datetime.timedelta(seconds=hi_s)
    for sql in [
        "SELECT COUNT(*) FROM site_rates_10s WHERE ts BETWEEN %s AND %s",
        "SELECT COUNT(*) FROM site_rates_10s WHERE ts >= %s AND ts < %s",
        "SELECT COUNT(*) FROM site_rates_10s WHERE %s < ts AND ts <= %s",
        "SELECT COUNT(*) FROM site_rates_10s WHERE ts > %s AND (ts <= %s)",
    ]:
        want, got = lake.execute(sql, (lo, hi)).fetchone()[0], ch.execute(sql, (lo, hi)).fetchone()[0]
        assert want == got and want > 0, (sql, lo, hi, want, got)
        checked += 1
    # `NOT BETWEEN` (which ClickHouse 18.16 cannot parse) and `=` / `<>`, where a fraction makes
    # the time equal to no whole second.
    for sql in [
        "SELECT COUNT(*) FROM site_rates_10s WHERE ts NOT BETWEEN %s AND %s",
        "SELECT COUNT(*) FROM site_rates_10s WHERE ts = %s OR ts = %s",
        "SELECT COUNT(*) FROM site_rates_10s WHERE ts <> %s AND (%s) <> ts",
    ]:
        want, got = lake.execute(sql, (lo, hi)).fetchone()[0], ch.execute(sql, (lo, hi)).fetchone()[0]
        assert want == got, (sql, lo, hi, want, got)
        checked += 1
# A column position naming `ts = %s` (the copy carries the parameter as the statement does), and
# times outside the years ClickHouse 18.16 reads as DateTime (they wrapped to 1970).
frac = first + datetime.timedelta(seconds=10.5)
for sql, params in [
    ("SELECT COUNT(*) FROM (SELECT ts = %s, COUNT(*) AS n FROM site_rates_10s GROUP BY 1) AS g", (frac,)),
    # As `x` of `NOT BETWEEN`, cast to a time, and in a simple `CASE` (cut to the second, they
    # took in or left out that second's rows).
    ("SELECT COUNT(*) FROM site_rates_10s WHERE %s NOT BETWEEN ts AND ts", (frac,)),
    ("SELECT COUNT(*) FROM site_rates_10s WHERE ts >= CAST(%s AS TIMESTAMP)", (frac,)),
    ("SELECT COUNT(*) + SUM(CASE WHEN ts = CAST(%s AS TIMESTAMP) THEN 1 ELSE 0 END) FROM site_rates_10s WHERE CAST(%s AS TIMESTAMP) <> ts", (frac, frac)),
    ("SELECT COUNT(*) + SUM(CASE ts WHEN CAST(%s AS TIMESTAMP) THEN 1 ELSE 0 END) FROM site_rates_10s", (frac,)),
    ("SELECT COUNT(*) + SUM(CASE WHEN ts = CAST((%s) /* c */ AS TIMESTAMP) THEN 1 ELSE 0 END) FROM site_rates_10s", (frac,)),
    ("SELECT COUNT(*) + SUM(CASE ts WHEN %s THEN 1 ELSE 0 END) FROM site_rates_10s", (frac,)),
    ("SELECT COUNT(*) FROM site_rates_10s WHERE ts < %s", (datetime.datetime(2140, 1, 1, tzinfo=datetime.timezone.utc),)),
    ("SELECT COUNT(*) FROM site_rates_10s WHERE ts > %s", (datetime.datetime(1969, 12, 31, 23, 59, tzinfo=datetime.timezone.utc),)),
    ("SELECT COUNT(*) FROM site_rates_10s WHERE ts BETWEEN %s AND %s", (datetime.datetime(1969, 12, 31, 23, 59, 0, 500000, tzinfo=datetime.timezone.utc), datetime.datetime(2140, 1, 1, tzinfo=datetime.timezone.utc))),
]:
    want, got = lake.execute(sql, params).fetchone()[0], ch.execute(sql, params).fetchone()[0]
    assert want == got and want > 0, (sql, params, want, got)
    checked += 1
print(json.dumps({"checked": checked}))
