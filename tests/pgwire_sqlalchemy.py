"""edgelens over the Postgres wire protocol as analysts reach it from Python: SQLAlchemy (the
psycopg2 and psycopg 3 dialects) and pandas, checked against the same questions asked over HTTP
(POST /v1/sql).

Usage: python3 tests/pgwire_sqlalchemy.py PG_PORT HTTP_PORT  -> prints one JSON summary line;
any failed check raises (non-zero exit).
"""
import json
import sys

try:
    import pandas as pd
    import sqlalchemy as sa
    import psycopg2  # noqa: F401 (the default PostgreSQL dialect's driver)
    import psycopg  # noqa: F401
except ImportError as e:
    sys.exit(f"{e.name} is missing: run `bash deploy/dev/install.sh` (installs sqlalchemy, psycopg2-binary, pandas)")

from pgwire_common import http_sql, pg_port  # noqa: E402 (after the import check)


per_site = "SELECT site, SUM(requests) AS requests FROM traffic_1m GROUP BY site ORDER BY requests DESC, site"
expected = [(r["site"], r["requests"]) for r in http_sql(per_site)]
assert len(expected) >= 3, expected
rows_total = http_sql("SELECT COUNT(*) AS n FROM traffic_1m")[0]["n"]
sites_rows = http_sql("SELECT COUNT(*) AS n FROM sites")[0]["n"]
summary = {}

for driver in ["psycopg2", "psycopg"]:
    engine = sa.create_engine(f"postgresql+{driver}://analyst:secret@127.0.0.1:{pg_port}/edgelens")
    inspector = sa.inspect(engine)
    # Reflection: has_table (`relkind = ANY (ARRAY[...])`), table names, columns.
    assert inspector.has_table("traffic_1m") and not inspector.has_table("no_such_table"), driver
    assert "traffic_1m" in inspector.get_table_names(), driver
    columns = {c["name"]: str(c["type"]) for c in inspector.get_columns("traffic_1m")}
    assert columns["ts"] == "TIMESTAMP" and columns["requests"] == "BIGINT" and columns["site"] == "TEXT", columns
    table = sa.Table("traffic_1m", sa.MetaData(), autoload_with=engine)
    assert [c.name for c in table.columns][:2] == ["ts", "site"], table.columns

    # pandas: a query (pandas first asks has_table of the statement's text), with list parameters
    # (expanded IN), in chunks through a server-side cursor, and a whole table.
    frame = pd.read_sql(per_site, engine)
    assert list(frame.itertuples(index=False, name=None)) == expected, (driver, frame.head())
    few = [site for site, _ in expected[:2]] + ["no-such.example"]
    query = sa.text("SELECT site, SUM(requests) AS requests FROM traffic_1m WHERE site IN :sites GROUP BY site ORDER BY requests DESC, site")
    frame = pd.read_sql(query.bindparams(sa.bindparam("sites", expanding=True)), engine, params={"sites": few})
    assert list(frame.itertuples(index=False, name=None)) == expected[:2], (driver, frame)
    with engine.connect().execution_options(stream_results=True) as conn:
        chunks = list(pd.read_sql("SELECT * FROM traffic_1m", conn, chunksize=max(1, rows_total // 3)))
    assert len(chunks) >= 3 and sum(len(c) for c in chunks) == rows_total, (driver, [len(c) for c in chunks], rows_total)
    assert pd.read_sql_table("sites", engine).shape[0] == sites_rows, driver

    # SQLAlchemy Core: IN, = ANY with a list, LIKE with an escape (startswith autoescape).
    t = sa.table("traffic_1m", sa.column("site"), sa.column("requests"))
    top_site = expected[0][0]
    with engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.sum(t.c.requests)).where(t.c.site.in_([top_site]))).scalar()
        assert n == expected[0][1], (driver, n)
        n = conn.execute(sa.text("SELECT SUM(requests) FROM traffic_1m WHERE site = ANY(:s)"), {"s": [top_site]}).scalar()
        assert n == expected[0][1], (driver, n)
        prefix = top_site[:3]
        want = sum(r for s, r in expected if s.startswith(prefix))
        n = conn.execute(sa.select(sa.func.sum(t.c.requests)).where(t.c.site.startswith(prefix, autoescape=True))).scalar()
        assert n == want, (driver, prefix, n, want)
        n = conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.site.startswith("%_", autoescape=True))).scalar()
        assert n == 0, (driver, n)
    summary[driver] = len(expected)
    engine.dispose()

print(json.dumps(summary))
