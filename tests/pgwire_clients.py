"""edgelens over the Postgres wire protocol, driven by psycopg 3 (server-side parameters: the
extended protocol), checked against the same questions asked over HTTP (POST /v1/sql).

Usage: python3 tests/pgwire_clients.py PG_PORT HTTP_PORT  -> prints one JSON summary line;
any failed check raises (non-zero exit).
"""
import datetime
import json
import sys

try:
    import psycopg
    from psycopg import errors
except ImportError:
    sys.exit("python package psycopg is missing: run `bash deploy/dev/install.sh` (installs psycopg[binary])")

from pgwire_common import http_sql, pg_port  # noqa: E402 (after the import check)


def connect(**kw):
    return psycopg.connect(
        host="127.0.0.1", port=pg_port, user="grafana", password="secret", dbname="edgelens", connect_timeout=10, **kw
    )


summary = {}
conn = connect()
assert conn.info.server_version == 150000, conn.info.server_version
assert conn.info.parameter_status("DateStyle") == "ISO, MDY"

# Parameters bound server-side; psycopg (non-autocommit) opens a transaction with BEGIN first.
per_site = "SELECT site, SUM(requests) AS requests FROM traffic_1m GROUP BY site ORDER BY requests DESC, site"
expected = [(r["site"], r["requests"]) for r in http_sql(per_site)]
assert len(expected) >= 3, expected
rows = conn.execute(per_site).fetchall()
assert rows == expected, (rows[:3], expected[:3])
top_site, top_requests = expected[0]

rows = conn.execute("SELECT site, SUM(requests) AS requests FROM traffic_1m WHERE site = %s GROUP BY site", (top_site,)).fetchall()
assert rows == [(top_site, top_requests)], rows
assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS

# Sums named in a CTE divide as fractions, described as float8 (as the rows are), in text and binary.
ratio = "WITH q AS (SELECT site, SUM(bytes) AS b, SUM(requests) AS r FROM traffic_1m GROUP BY site) SELECT site, b / r AS f FROM q ORDER BY site"
want = [(r["site"], r["f"]) for r in http_sql(ratio)]
assert any(f != int(f) for _, f in want), want[:3]
for binary in (False, True):
    cur = conn.cursor(binary=binary)
    rows = cur.execute(ratio).fetchall()
    assert cur.description[1].type_code == 701, cur.description
    assert rows == want, (binary, rows[:3], want[:3])

# A timestamp parameter (timestamptz) and an integer (LIMIT), compared with the same filter over HTTP.
first_ts = conn.execute("SELECT MIN(ts) FROM traffic_1m").fetchone()[0]
assert isinstance(first_ts, datetime.datetime) and first_ts.utcoffset() == datetime.timedelta(0), first_ts
cutoff = first_ts + datetime.timedelta(minutes=1)
rows = conn.execute(
    "SELECT site, SUM(requests) AS requests FROM traffic_1m WHERE ts >= %s GROUP BY site ORDER BY requests DESC, site LIMIT %s",
    (cutoff, 3),
).fetchall()
want = http_sql(
    "SELECT site, SUM(requests) AS requests FROM traffic_1m WHERE ts >= to_timestamp(%d) GROUP BY site ORDER BY requests DESC, site LIMIT 3"
    % int(cutoff.timestamp())
)
assert rows == [(r["site"], r["requests"]) for r in want], (rows, want)
summary["sites"] = len(expected)

# Hostile text is a value, never SQL.
assert conn.execute("SELECT COUNT(*) FROM traffic_1m WHERE site = %s", ("x' OR '1'='1",)).fetchone()[0] == 0

# A list parameter (`= ANY(%s)`): psycopg sends a list of text untyped, a list of ints as int2[].
few = [site for site, _ in expected[:2]] + ["no-such.example"]
rows = conn.execute(
    "SELECT site, SUM(requests) AS requests FROM traffic_1m WHERE site = ANY(%s) GROUP BY site ORDER BY requests DESC, site", (few,)
).fetchall()
assert rows == expected[:2], (rows, expected[:2])
assert conn.execute("SELECT COUNT(*) FROM traffic_1m WHERE site = ANY(%s)", ([],)).fetchone()[0] == 0
asns = [r["asn"] for r in http_sql("SELECT DISTINCT asn FROM asn_1m ORDER BY asn LIMIT 3")] + [4_200_000_000]
want = http_sql("SELECT SUM(requests) AS n FROM asn_1m WHERE asn IN (%s)" % ", ".join(map(str, asns)))[0]["n"]
assert conn.execute("SELECT SUM(requests) FROM asn_1m WHERE asn = ANY(%s)", (asns,)).fetchone()[0] == want, (asns, want)

# Binary results and prepared statements give the same answers.
with conn.cursor(binary=True) as cur:
    cur.execute(per_site)
    assert cur.fetchall() == expected
    for _ in range(3):
        cur.execute("SELECT SUM(requests) FROM traffic_1m WHERE site = %s", (top_site,), prepare=True)
        assert cur.fetchone()[0] == top_requests
    cur.execute("SELECT MIN(ts) FROM traffic_1m")
    assert cur.fetchone()[0] == first_ts

# Refused statements are errors with SQLSTATE 42501; the connection stays usable after ROLLBACK.
for ddl in ["DROP TABLE traffic_1m", "COPY traffic_1m TO '/tmp/edgelens-psycopg.csv'", "DELETE FROM traffic_1m"]:
    try:
        conn.execute(ddl)
        raise AssertionError(f"{ddl} was not refused")
    except errors.InsufficientPrivilege as e:
        assert e.sqlstate == "42501" and "not allowed" in str(e), e
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
    try:
        conn.execute("SELECT 1")
        raise AssertionError("a failed transaction accepted a statement")
    except errors.InFailedSqlTransaction:
        pass
    conn.rollback()
    assert conn.execute("SELECT 1").fetchone()[0] == 1
try:
    conn.execute("SELECT * FROM no_such_table")
    raise AssertionError("unknown table accepted")
except errors.UndefinedTable:
    conn.rollback()
conn.commit()

# Catalog questions clients ask: version, settings, information_schema (as Grafana's builder).
conn.autocommit = True
assert conn.execute("SELECT version()").fetchone()[0].startswith("PostgreSQL 15.0")
assert conn.execute("SHOW server_version").fetchone()[0] == "15.0"
assert conn.execute("SELECT current_setting('server_version_num')::int/100 AS version").fetchone()[0] == 1500
tables = [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1", ("public",))]
assert "traffic_1m" in tables and "incidents" in tables, tables
columns = dict(
    conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s", ("traffic_1m",)
    ).fetchall()
)
assert columns["ts"] == "timestamp with time zone" and columns["requests"] == "bigint" and columns["site"] == "text", columns
grafana_columns = conn.execute(
    """SELECT quote_ident(column_name) AS "column", data_type AS "type"
       FROM information_schema.columns
       WHERE CASE WHEN array_length(parse_ident('public.traffic_1m'),1) = 2
         THEN quote_ident(table_schema) = (parse_ident('public.traffic_1m'))[1]
           AND quote_ident(table_name) = (parse_ident('public.traffic_1m'))[2]
         ELSE quote_ident(table_name) = 'public.traffic_1m' END"""
).fetchall()
assert ("requests", "bigint") in grafana_columns, grafana_columns
summary["tables"] = len(tables)
# What the SQLAlchemy psycopg dialect asks on connect: a type that does not exist is None.
from psycopg.types import TypeInfo
assert TypeInfo.fetch(conn, "hstore") is None
assert TypeInfo.fetch(conn, "bigint").oid == 20

# A cursor declared and fetched in pieces, as a driver's server-side cursor does by hand.
with conn.transaction():
    conn.execute("DECLARE pieces NO SCROLL CURSOR FOR " + per_site)
    pieces = []
    while batch := conn.execute("FETCH FORWARD 2 FROM pieces").fetchall():
        pieces += batch
    conn.execute("CLOSE pieces")
assert pieces == expected, (pieces[:3], expected[:3])
conn.close()

print(json.dumps(summary))
