#!/usr/bin/env python3
"""Wait until the lake's site_rates_10s holds REQUESTS requests (read with DuckDB), or fail after
TIMEOUT seconds. Usage: wait_lake.py LAKE REQUESTS TIMEOUT"""
import os
import sys
import time

import duckdb

lake, want, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.time() + limit
got = 0
while time.time() < deadline:
    pattern = os.path.join(lake, "site_rates_10s", "*", "*.parquet")
    try:
        got = duckdb.sql(f"SELECT coalesce(sum(requests), 0) FROM read_parquet('{pattern}')").fetchall()[0][0]
    except duckdb.Error:
        got = 0  # no files yet, or one renamed away while listing
    if got == want:
        sys.exit(0)
    time.sleep(0.2)
sys.exit(f"lake {lake} has {got} of {want} requests after {limit} s")
