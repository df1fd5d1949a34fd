"""Totals of an edgelens lake read by DuckDB (an independent Parquet reader).

Usage: python3 tests/duckdb_totals.py LAKE_DIR  -> prints one JSON object.
"""
import json
import sys

try:
    import duckdb
except ImportError:
    sys.exit("python package duckdb is missing: run deploy/dev/install.sh (or pip install duckdb)")

lake = sys.argv[1]
con = duckdb.connect()


def q(sql):
    return con.execute(sql).fetchone()


def scan(table):
    return f"read_parquet('{lake}/{table}/*/*.parquet', hive_partitioning = true)"


rates = q(f"SELECT sum(requests), sum(bytes), sum(status_2xx + status_3xx + status_4xx + status_5xx), count(DISTINCT date) FROM {scan('site_rates_10s')}")
traffic = q(f"SELECT sum(requests), sum(bytes) FROM {scan('traffic_1m')}")
asn = q(f"SELECT sum(requests), sum(bytes) FROM {scan('asn_1m')}")
dead = q(f"SELECT count(*) FROM {scan('dead_letters')}")
tz = q(f"SELECT typeof(ts) FROM {scan('site_rates_10s')} LIMIT 1")
print(json.dumps({
    "site_rates_10s": {"requests": int(rates[0]), "bytes": int(rates[1]), "status_2xx_5xx": int(rates[2]), "dates": rates[3]},
    "traffic_1m": {"requests": int(traffic[0]), "bytes": int(traffic[1])},
    "asn_1m": {"requests": int(asn[0]), "bytes": int(asn[1])},
    "dead_letters": int(dead[0]),
    "ts_type": tz[0],
}))
