"""What the Postgres client scripts under tests/ share: their ports and the HTTP answer to compare
with (POST /v1/sql)."""
import json
import sys
import urllib.request

pg_port, http_port = int(sys.argv[1]), int(sys.argv[2])


def http_sql(sql):
    req = urllib.request.Request(
        f"http://127.0.0.1:{http_port}/v1/sql",
        data=sql.encode(),
        headers={"Content-Type": "text/plain", "Accept": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.load(resp)
