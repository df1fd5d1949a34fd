#!/usr/bin/env python3
"""Query latency of `edgelens query` next to DuckDB, over one generated Parquet lake.

Subcommands (bench/query_latency.sh runs them in order):

  generate --lake DIR --pool SKETCH_LAKE --sites N --days D [--seed S] [--files-per-day F]
      Writes the lake directly with DuckDB (no replay): DIR/<table>/date=YYYY-MM-DD/part-HH.parquet
      with the exact column types of schemas/src/tables.rs (Timestamp(µs, UTC), UInt64, Binary, ...).
      - traffic_1m: N sites of Zipf-like popularity (rank i gets ~200/i rows per minute and
        120000·i^-1.2 requests per minute, with a daily cycle): the top sites have up to ~200
        (country, colo, status_class, cache_status) combinations every minute, a site of rank 1000
        a row in ~1 minute of 5, rank 10000 in ~30 minutes a day;
      - site_rates_10s: sites of rank ≤ 60 every 10 s, rank i > 60 in a (60/i)^1.3 share of the
        windows; `clients_sketch` holds real DataSketches HLLs (lg_k 12) harvested from a lake that
        `edgelens replay` wrote (SKETCH_LAKE), picked by distinct-client count, and
        `distinct_clients` is that sketch's estimate;
      - incidents (several state rows each: active updates, cooling, ended) and a per-second
        incident_timeline from a minute before the start to a minute after the end; ~10 a day.
      Deterministic for a seed and DuckDB version (DuckDB's hash() is the random source). F files per day and table
      for the rollups (default 24, one per hour, rows ordered by (ts, site) as the aggregator writes
      them), one per day for the incident tables.

  measure --lake DIR --url URL --out JSON [--reps N] [--warmup W]
      Times each question N times after W warm-up runs, alternating: one edgelens HTTP request
      (keep-alive, wall time to the last byte of the answer), then DuckDB answering the same
      question over the same files in this process (one connection, default settings, wall time
      from the SQL to the answer shaped like the API's). Checks that both answers agree.

  report --lake DIR --results JSON --md bench/RESULTS.md --command CMD --build TEXT --memory-mb M --probe N
      Replaces the section "## Query latency vs DuckDB" of RESULTS.md (or appends it) with the
      machine, the lake's size, the default-memory-pool probe and the table of p50/p95 and ratios.

  version
      The version of the generated lake (bench/query_latency.sh regenerates a lake of another).
"""
import argparse
import datetime as dt
import http.client
import json
import math
import os
import platform
import re
import sys
import textwrap
import time
import urllib.parse

import duckdb

# Bump when the generated lake changes, so bench/query_latency.sh makes it anew.
LAKE_VERSION = 1
START = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
START_EPOCH = int(START.timestamp())
TABLES = ["traffic_1m", "site_rates_10s", "incidents", "incident_timeline"]
COUNTRIES = ["us", "de", "gb", "fr", "jp", "br", "in", "cn", "ca", "au", "nl", "ru", "kr", "it", "es", "se",
             "pl", "mx", "id", "tr", "sg", "ch", "za", "ar", "ua", "vn", "th", "ng", "eg", "ir", "be", "at",
             "dk", "fi", "no", "ie", "pt", "cz", "il", "hk"]
COLOS = ["IAD", "ORD", "DFW", "LAX", "SJC", "SEA", "ATL", "MIA", "EWR", "DEN", "FRA", "DUS", "MUC", "HAM", "LHR",
         "MAN", "CDG", "MRS", "NRT", "KIX", "GRU", "GIG", "BOM", "DEL", "MAA", "HKG", "YYZ", "YVR", "SYD", "MEL",
         "AMS", "DME", "LED", "ICN", "MXP", "FCO", "MAD", "BCN", "ARN", "WAW", "QRO", "MEX", "CGK", "IST", "SIN",
         "ZRH", "GVA", "JNB", "CPT", "EZE", "KBP", "SGN", "BKK", "LOS", "CAI", "BRU", "VIE", "CPH", "HEL", "OSL"]
VECTORS = ["http_flood", "http_flood", "http_flood", "cache_busting", "credential_stuffing", "scraping",
           "origin_error_surge"]
COPY_OPTS = "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 3, ROW_GROUP_SIZE 262144)"


def log(msg):
    print(f"[query_latency] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- generate

def generate(args):
    lake = os.path.abspath(args.lake)
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET TimeZone = 'UTC'")
    seed = int(args.seed)
    # u(a, b, c): uniform in [0, 1), deterministic in (a, b, c, seed).
    con.execute(f"CREATE MACRO u(a, b, c) AS (hash(a, b, c, {seed}) % 1000003)::DOUBLE / 1000003")
    con.execute(f"CREATE MACRO h(a, b, c) AS hash(a, b, c, {seed} + 1)")
    con.execute(f"CREATE MACRO diurnal(minute_of_day, phase) AS 1 + 0.6 * sin(2 * pi() * (minute_of_day / 1440 + phase))")
    con.execute(f"CREATE TABLE countries AS SELECT * FROM (VALUES {', '.join(f'({i}, {c!r})' for i, c in enumerate(COUNTRIES))}) t(ci, country)")
    con.execute(f"CREATE TABLE colos AS SELECT * FROM (VALUES {', '.join(f'({i}, {c!r})' for i, c in enumerate(COLOS))}) t(oi, colo)")
    nc, no = len(COUNTRIES), len(COLOS)
    con.execute(f"""
        CREATE TABLE sites AS SELECT
          i AS rank,
          substr(md5('site-' || i || '-{seed}'), 1, 6) || '-' || i || '.example' AS site,
          200.0 / i AS rows_per_min,
          120000.0 * pow(i, -1.2) AS rpm,
          pow(least(1.0, 60.0 / i), 1.3) AS active_10s,
          floor(pow(u(i, 1, 0), 2) * {nc})::INT AS home,
          2000 + 60000 * u(i, 2, 0) AS avg_bytes,
          0.3 + 0.65 * u(i, 3, 0) AS hit_ratio,
          0.1 + 0.4 * u(i, 4, 0) AS client_ratio,
          u(i, 5, 0) AS phase
        FROM range(1, {args.sites} + 1) t(i)""")
    # The (country, colo, status_class, cache_status) combinations of each site, most traffic first:
    # combination j of site i gets weight 1/(j+1).
    max_combos = 256
    con.execute(f"""
        CREATE TABLE combos AS
        WITH c AS (
          SELECT rank, j,
            CASE WHEN u(rank, j, 21) < 0.45 THEN home ELSE floor(pow(u(rank, j, 22), 2) * {nc})::INT END AS ci,
            u(rank, j, 23) AS uo, u(rank, j, 24) AS us, u(rank, j, 25) AS uc
          FROM (SELECT rank, home, unnest(range(least({max_combos}, greatest(4, ceil(rows_per_min * 1.3))::INT))) AS j FROM sites))
        SELECT rank, j, country, colo,
          CASE WHEN us < 0.82 THEN '2xx' WHEN us < 0.90 THEN '3xx' WHEN us < 0.97 THEN '4xx' ELSE '5xx' END AS status_class,
          CASE WHEN uc < 0.45 THEN 'hit' WHEN uc < 0.65 THEN 'miss' WHEN uc < 0.90 THEN 'dynamic'
               WHEN uc < 0.94 THEN 'expired' WHEN uc < 0.97 THEN 'revalidated' ELSE 'bypass' END AS cache_status,
          1.0 / (j + 1) AS weight
        FROM c JOIN countries USING (ci)
        JOIN colos ON colos.oi = (c.ci * 7 + CASE WHEN c.uo < 0.7 THEN 0 ELSE 1 + floor(c.uo * 10)::INT % 3 END) % {no}""")
    # Sketch pool: (distinct_clients, clients_sketch) from a lake that edgelens wrote itself. Small
    # counts kept one by one, larger ones on a 5 % geometric grid (ASOF-joined by target count).
    pool_glob = os.path.join(os.path.abspath(args.pool), "site_rates_10s", "*", "*.parquet")
    con.execute(f"""
        CREATE TABLE pool AS
        SELECT d, sketch FROM (
          SELECT distinct_clients::BIGINT AS d, min(clients_sketch) AS sketch,
                 CASE WHEN distinct_clients <= 64 THEN distinct_clients ELSE floor(ln(distinct_clients) / ln(1.05))::BIGINT + 100000 END AS grid
          FROM read_parquet('{pool_glob}') WHERE distinct_clients > 0 GROUP BY distinct_clients)
        QUALIFY row_number() OVER (PARTITION BY grid ORDER BY d) = 1""")
    pool_n, pool_max, pool_bytes = con.execute("SELECT count(*), max(d), sum(octet_length(sketch)) FROM pool").fetchone()
    log(f"sketch pool: {pool_n} sketches, up to {pool_max} distinct clients, {pool_bytes} bytes")
    con.execute("CREATE TABLE incidents_all (incident_id VARCHAR, site VARCHAR, vector VARCHAR, status VARCHAR, "
                "start_ts TIMESTAMPTZ, detected_ts TIMESTAMPTZ, peak_ts TIMESTAMPTZ, end_ts TIMESTAMPTZ, peak_rps DOUBLE, "
                "baseline_rps DOUBLE, attack_requests UBIGINT, distinct_ips UBIGINT, signature VARCHAR, top_attackers VARCHAR, "
                "updated_ts TIMESTAMPTZ)")
    for t in TABLES:
        os.makedirs(os.path.join(lake, t), exist_ok=True)
    fpd = int(args.files_per_day)
    t0 = time.time()
    for day in range(args.days):
        date = (START + dt.timedelta(days=day)).strftime("%Y-%m-%d")
        day_epoch = START_EPOCH + day * 86400
        # traffic_1m: sites with >= 1 row a minute get every minute and k combos (k around
        # rows_per_min); the others a row (one of their first 4 combos) in random minutes.
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE day_traffic AS
            WITH big AS (
              SELECT rank, rpm, avg_bytes, phase, m,
                greatest(1, round(rows_per_min * (0.75 + 0.5 * u(rank, {day} * 1440 + m, 11))))::INT AS k
              FROM sites, range(1440) r(m) WHERE rows_per_min >= 1),
            big_rows AS (
              SELECT rank, m, j, rpm / (j + 1) / (ln(k) + 0.5772 + 1.0 / (2 * k)) AS rpm, avg_bytes, phase
              FROM (SELECT *, unnest(range(k)) AS j FROM big)),
            small AS (
              SELECT DISTINCT rank, (h(rank, {day} * 100000 + n, 13) % 1440)::INT AS m FROM (
                SELECT rank, unnest(range(round(rows_per_min * 1440 * (0.5 + u(rank, {day}, 12)))::BIGINT)) AS n
                FROM sites WHERE rows_per_min < 1)),
            small_rows AS (
              SELECT s.rank, m, (h(s.rank, {day} * 1440 + m, 14) % 4)::INT AS j,
                s.rpm / s.rows_per_min AS rpm, s.avg_bytes, s.phase
              FROM small JOIN sites s USING (rank)),
            trows AS (
              SELECT rank, m, j, greatest(1, round(rpm * diurnal(m, phase)
                       * (0.6 + 0.8 * u(rank, {day} * 1440 + m, 100 + j))))::UBIGINT AS requests, avg_bytes
              FROM (SELECT * FROM big_rows UNION ALL SELECT * FROM small_rows))
            SELECT to_timestamp({day_epoch} + m * 60) AS ts, s.site, c.country, c.colo, c.status_class, c.cache_status,
              sum(requests)::UBIGINT AS requests,
              sum(round(requests * trows.avg_bytes * (0.7 + 0.6 * u(rank, m, 200 + j))))::UBIGINT AS bytes,
              m // (1440 // {fpd}) AS part
            FROM trows JOIN sites s USING (rank) JOIN combos c USING (rank, j)
            GROUP BY ALL""")
        # site_rates_10s: sites of rank <= 60 every window, the others in random windows.
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE day_rates AS
            WITH windows AS (
              SELECT rank, w FROM sites, range(8640) r(w) WHERE active_10s >= 1
              UNION ALL
              SELECT DISTINCT rank, (h(rank, {day} * 1000000 + n, 31) % 8640)::INT AS w FROM (
                SELECT rank, unnest(range(round(active_10s * 8640 * (0.5 + u(rank, {day}, 32)))::BIGINT)) AS n
                FROM sites WHERE active_10s < 1)),
            r AS (
              SELECT s.rank, s.site, w, s.hit_ratio, s.client_ratio,
                greatest(1, round(s.rpm / 6 / s.active_10s * diurnal(w / 6, s.phase)
                  * (0.7 + 0.6 * u(s.rank, {day} * 8640 + w, 33))))::UBIGINT AS requests, s.avg_bytes
              FROM windows JOIN sites s USING (rank)),
            m AS (
              SELECT *,
                floor(requests * 0.02 * u(rank, w, 34))::UBIGINT AS s5,
                floor(requests * 0.08 * u(rank, w, 35))::UBIGINT AS s4,
                floor(requests * 0.06 * u(rank, w, 36))::UBIGINT AS s3,
                greatest(1, round(requests * client_ratio))::BIGINT AS target_clients
              FROM r)
            SELECT to_timestamp({day_epoch} + w * 10) AS ts, site, requests,
              round(requests * avg_bytes * (0.7 + 0.6 * u(rank, w, 37)))::UBIGINT AS bytes,
              (requests - s3 - s4 - s5)::UBIGINT AS status_2xx, s3 AS status_3xx, s4 AS status_4xx, s5 AS status_5xx,
              floor(requests * hit_ratio)::UBIGINT AS cache_hits,
              floor(requests * 0.01 * u(rank, w, 38))::UBIGINT AS blocked,
              pool.d::UBIGINT AS distinct_clients, pool.sketch AS clients_sketch,
              w // (8640 // {fpd}) AS part
            FROM m ASOF JOIN pool ON m.target_clients >= pool.d""")
        for table, tmp, cols in [
            ("traffic_1m", "day_traffic", "ts, site, country, colo, status_class, cache_status, requests, bytes"),
            ("site_rates_10s", "day_rates", "ts, site, requests, bytes, status_2xx, status_3xx, status_4xx, status_5xx, "
                                            "cache_hits, blocked, distinct_clients, clients_sketch"),
        ]:
            d = os.path.join(lake, table, f"date={date}")
            os.makedirs(d, exist_ok=True)
            for p in range(fpd):
                con.execute(f"COPY (SELECT {cols} FROM {tmp} WHERE part = {p} ORDER BY ts, site) "
                            f"TO '{d}/part-{p:02d}.parquet' {COPY_OPTS}")
        log(f"day {day + 1}/{args.days} ({date}) written, {time.time() - t0:.0f} s")
    write_incidents(con, lake, args, seed)
    con.close()


def write_incidents(con, lake, args, seed):
    period = args.days * 86400
    n = max(1, 10 * args.days)
    top_site_rank = min(args.sites, 2000)
    # One row per incident: its site (popular sites are attacked more), vector, start and length.
    con.execute(f"""
        CREATE TEMP TABLE inc AS
        SELECT n, s.site, s.rpm / 60 AS site_rps,
          {START_EPOCH} + (h(n, 0, 41) % ({period} - 7200))::BIGINT AS start_s,
          60 + floor(pow(u(n, 0, 42), 2) * 3600)::BIGINT AS duration,
          list_extract({VECTORS!r}, 1 + (h(n, 0, 43) % {len(VECTORS)})::INT) AS vector,
          5 + (h(n, 0, 44) % 30)::BIGINT AS detect_delay,
          2 + floor(u(n, 0, 45) * 40) AS multiple,
          u(n, 0, 46) < 0.02 AS still_active
        FROM range({n}) t(n) JOIN sites s ON s.rank = 1 + floor(pow(u(n, 0, 40), 3) * {top_site_rank})::INT""")
    con.execute("""
        CREATE TEMP TABLE inc2 AS SELECT *,
          site || '-' || strftime(to_timestamp(start_s), '%Y%m%dT%H%M%SZ') AS incident_id,
          greatest(1.0, site_rps) AS baseline, greatest(1.0, site_rps) * multiple AS peak,
          greatest(2, least(30, duration // 120))::INT AS updates
        FROM inc""")
    # State rows: `updates` active rows (the peak and counts growing), one cooling row, one ended row
    # (with end_ts) unless the incident is still active at the end of the data.
    con.execute(f"""
        INSERT INTO incidents_all
        WITH srows AS (
          SELECT *, unnest(range(updates + 2)) AS k FROM inc2),
        shaped AS (
          SELECT *,
            CASE WHEN k < updates THEN 'active' WHEN k = updates THEN 'cooling' ELSE 'ended' END AS status,
            CASE WHEN k < updates THEN start_s + detect_delay + k * (duration - detect_delay) // updates
                 WHEN k = updates THEN start_s + duration ELSE start_s + duration + 60 END AS upd_s,
            least(1.0, (k + 1.0) / updates) AS progress
          FROM srows WHERE NOT (still_active AND k >= updates))
        SELECT incident_id, site, vector, status, to_timestamp(start_s), to_timestamp(start_s + detect_delay),
          to_timestamp(start_s + least(duration, detect_delay + 30 + (h(n, 0, 47) % duration))),
          CASE WHEN status = 'ended' THEN to_timestamp(start_s + duration) END,
          round(baseline + (peak - baseline) * least(1.0, progress * 2), 2), round(baseline, 2),
          round(peak * duration * progress * 0.6)::UBIGINT,
          round(least(50000, 20 + peak * 0.3) * progress)::UBIGINT,
          '{{"predicates":[' ||
            CASE vector
              WHEN 'cache_busting' THEN '{{"attr":"query","op":"in","values":["_=' || (h(n,1,1) % 100000) || '","cb=' || (h(n,1,2) % 100000) || '"],"precision":0.993,"coverage":0.981}}'
              WHEN 'credential_stuffing' THEN '{{"attr":"path","op":"in","values":["/login","/api/auth"],"precision":0.991,"coverage":0.97}},{{"attr":"method","op":"in","values":["POST"],"precision":0.9,"coverage":1.0}}'
              WHEN 'scraping' THEN '{{"attr":"user_agent","op":"in","values":["python-requests/2.31.0"],"precision":0.998,"coverage":0.95}}'
              WHEN 'origin_error_surge' THEN '{{"attr":"status","op":"in","values":["502","503","504"],"precision":0.97,"coverage":0.99}}'
              ELSE '{{"attr":"asn","op":"in","values":["' || (4134 + h(n,1,3) % 60000) || '","' || (9009 + h(n,1,4) % 60000) || '"],"precision":0.996,"coverage":0.984}},{{"attr":"ja4","op":"in","values":["t13d1516h2_8daaf6152771_' || substr(md5(incident_id), 1, 12) || '"],"precision":0.999,"coverage":0.99}}'
            END || '],"precision":0.995,"coverage":0.98}}',
          '[' || (SELECT string_agg('{{"ip":"203.' || (h(n, a, 48) % 256) || '.' || (h(n, a, 49) % 256) || '.' || (h(n, a, 50) % 256)
                  || '","requests":' || (round(peak * duration * 0.02 / (a + 1)) + 1)::BIGINT || '}}', ',' ORDER BY a) FROM range(10) t(a)) || ']',
          to_timestamp(upd_s)
        FROM shaped""")
    # Per-second timeline: baseline before and after, the attack's ramp, peak and decay in between.
    con.execute(f"""
        CREATE TEMP TABLE timeline AS
        WITH secs AS (
          SELECT incident_id, n, baseline, peak, start_s, duration, still_active,
            unnest(range(start_s - 60, start_s + duration + 60)) AS t FROM inc2),
        v AS (
          SELECT incident_id, t,
            round(baseline * (0.8 + 0.4 * u(n, t, 51)))::UBIGINT AS base,
            CASE WHEN t < start_s OR t >= start_s + duration THEN 0
                 ELSE round((peak - baseline) * least(1.0, (t - start_s + 1) / 30.0, (start_s + duration - t) / 30.0)
                      * (0.85 + 0.3 * u(n, t, 52)))::UBIGINT END AS attack
          FROM secs WHERE NOT (still_active AND t >= start_s + duration))
        SELECT incident_id, to_timestamp(t) AS ts, base + attack AS requests,
          (attack + base // 50)::UBIGINT AS matched_requests,
          (base + attack - (base + attack) // 10 - attack // 4)::UBIGINT AS status_2xx, (base // 20)::UBIGINT AS status_3xx,
          ((base + attack) // 10 - base // 20 + attack // 8)::UBIGINT AS status_4xx, (attack // 8)::UBIGINT AS status_5xx
        FROM v""")
    for table, src, tcol, cols in [
        ("incidents", "incidents_all", "start_ts", "*"),
        ("incident_timeline", "timeline", "ts", "*"),
    ]:
        dates = [r[0] for r in con.execute(f"SELECT DISTINCT strftime({tcol}, '%Y-%m-%d') FROM {src} ORDER BY 1").fetchall()]
        for date in dates:
            d = os.path.join(lake, table, f"date={date}")
            os.makedirs(d, exist_ok=True)
            order = "start_ts, incident_id, updated_ts" if table == "incidents" else "ts, incident_id"
            con.execute(f"COPY (SELECT {cols} FROM {src} WHERE strftime({tcol}, '%Y-%m-%d') = '{date}' ORDER BY {order}) "
                        f"TO '{d}/part-00.parquet' {COPY_OPTS}")
    log(f"incidents: {con.execute('SELECT count(*), count(DISTINCT incident_id) FROM incidents_all').fetchone()} rows/ids, "
        f"timeline rows {con.execute('SELECT count(*) FROM timeline').fetchone()[0]}")


# ---------------------------------------------------------------------------------------------- measure

def iso(epoch):
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def us_iso(us):
    """RFC 3339 as the API writes it (whole seconds here)."""
    return iso(us // 1_000_000)


def glob(lake, table):
    return os.path.join(lake, table, "*", "*.parquet")


class Api:
    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=600)

    def get(self, path):
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise SystemExit(f"GET {path}: {resp.status} {body[:500]!r}")
        return body


def duck_range(lake, table, frm, to):
    """FROM + WHERE of a time range over `table`, naming the date partitions as edgelens does."""
    first = dt.datetime.fromtimestamp(frm, dt.timezone.utc).strftime("%Y-%m-%d")
    last = dt.datetime.fromtimestamp(to - 1, dt.timezone.utc).strftime("%Y-%m-%d")
    return (f"read_parquet('{glob(lake, table)}', hive_partitioning = true) "
            f"WHERE ts >= to_timestamp({frm}) AND ts < to_timestamp({to}) "
            f"AND \"date\" >= DATE '{first}' AND \"date\" <= DATE '{last}'")


def duck_traffic_share(con, lake, frm, to, step, top):
    """The answer of GET /v1/traffic-share?by=site, computed by DuckDB (SQL + the same shaping)."""
    step_us = step * 1_000_000
    rows = con.execute(f"""
        WITH binned AS (
          SELECT epoch_us(ts) // {step_us} * {step_us} AS bucket, site AS key, sum(requests) AS requests
          FROM {duck_range(lake, 'traffic_1m', frm, to)} GROUP BY ALL),
        top_keys AS (SELECT key FROM binned GROUP BY key ORDER BY sum(requests) DESC, key ASC LIMIT {top})
        SELECT bucket, CASE WHEN key IN (SELECT key FROM top_keys) THEN key END AS key, sum(requests)::UBIGINT AS requests
        FROM binned GROUP BY ALL""").fetchall()
    step_totals, per_key = {}, {}
    for bucket, key, req in rows:
        step_totals[bucket] = step_totals.get(bucket, 0) + req
        k = per_key.setdefault(key, [0, {}])
        k[0] += req
        k[1][bucket] = k[1].get(bucket, 0) + req
    steps = sorted(b for b, t in step_totals.items() if t > 0)
    total = sum(step_totals[b] for b in steps)
    keys = sorted(((k, v[0]) for k, v in per_key.items() if v[0] > 0), key=lambda kv: (kv[0] is None, -kv[1], kv[0] or ""))
    series = []
    for key, req in keys:
        by_bucket = per_key[key][1]
        series.append({
            "key": key if key is not None else "other", "requests": req, "share": req / total if total else 0.0,
            "points": [{"ts": us_iso(b), "requests": by_bucket.get(b, 0), "share": by_bucket.get(b, 0) / step_totals[b]} for b in steps],
        })
    return {"total": total, "series": series}


def duck_site_rates(con, lake, site, frm, to, step, merge):
    """The answer of GET /v1/sites/{site}/rates by DuckDB; distinct clients by merging the step's
    sketches with the DataSketches library when `merge` (DuckDB cannot read the sketches itself)."""
    step_us = step * 1_000_000
    sketches = ", list(clients_sketch) AS sketches" if merge else ""
    rows = con.execute(f"""
        SELECT epoch_us(ts) // {step_us} * {step_us} AS bucket, sum(requests)::UBIGINT, sum(bytes)::UBIGINT,
          sum(status_2xx)::UBIGINT, sum(status_3xx)::UBIGINT, sum(status_4xx)::UBIGINT, sum(status_5xx)::UBIGINT,
          sum(cache_hits)::UBIGINT, sum(blocked)::UBIGINT{sketches}
        FROM {duck_range(lake, 'site_rates_10s', frm, to)} AND site = '{site}'
        GROUP BY bucket ORDER BY bucket""").fetchall()
    points = []
    for r in rows:
        p = {"ts": us_iso(r[0]), "requests": r[1], "rps": r[1] / step, "bytes": r[2], "status_2xx": r[3],
             "status_3xx": r[4], "status_4xx": r[5], "status_5xx": r[6], "cache_hits": r[7], "blocked": r[8]}
        if merge:
            import datasketches as ds
            union = ds.hll_union(12)
            cells = [ds.hll_sketch.deserialize(b) for b in r[9] if b is not None]
            for sketch in cells:
                union.update(sketch)
            if len(cells) == 1:
                # A ∪ A = A, but a second update marks the union out of order, so its estimate is
                # the composite one edgelens reports (one sketch alone would give its HIP estimate).
                union.update(cells[0])
            p["distinct_clients"] = round(union.get_result(ds.tgt_hll_type.HLL_8).get_estimate())
        points.append(p)
    return {"site": site, "points": points}


INCIDENT_COLS = ("incident_id, site, vector, status, start_ts, detected_ts, peak_ts, end_ts, updated_ts, peak_rps, "
                 "baseline_rps, attack_requests, distinct_ips")


def summary(row):
    r = dict(zip([c.strip() for c in INCIDENT_COLS.split(",")], row))
    for c in ("start_ts", "detected_ts", "peak_ts", "end_ts", "updated_ts"):
        r[c] = None if r[c] is None else r[c].astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return r


def duck_incident_report(con, lake, incident_id):
    row = con.execute(f"""
        SELECT {INCIDENT_COLS}, signature, top_attackers FROM read_parquet('{glob(lake, 'incidents')}', hive_partitioning = true)
        WHERE incident_id = ? ORDER BY updated_ts DESC LIMIT 1""", [incident_id]).fetchone()
    incident = summary(row[:-2])
    incident["signature"] = json.loads(row[-2])
    incident["top_attackers"] = json.loads(row[-1])
    timeline = [{"ts": us_iso(r[0]), "requests": r[1], "matched_requests": r[2], "status_2xx": r[3], "status_3xx": r[4],
                 "status_4xx": r[5], "status_5xx": r[6]} for r in con.execute(f"""
        SELECT epoch_us(ts) AS ts_us, sum(requests)::UBIGINT, sum(matched_requests)::UBIGINT, sum(status_2xx)::UBIGINT,
          sum(status_3xx)::UBIGINT, sum(status_4xx)::UBIGINT, sum(status_5xx)::UBIGINT
        FROM read_parquet('{glob(lake, 'incident_timeline')}', hive_partitioning = true)
        WHERE incident_id = ? GROUP BY ts_us ORDER BY ts_us""", [incident_id]).fetchall()]
    return {"incident": incident, "timeline": timeline}


def duck_incident_list(con, lake, frm, to, limit=100):
    rows = con.execute(f"""
        SELECT {INCIDENT_COLS} FROM read_parquet('{glob(lake, 'incidents')}', hive_partitioning = true)
        WHERE start_ts < to_timestamp({to})
        QUALIFY row_number() OVER (PARTITION BY incident_id ORDER BY updated_ts DESC) = 1
          AND (end_ts IS NULL OR end_ts >= to_timestamp({frm}))
        ORDER BY start_ts DESC, incident_id ASC LIMIT {limit}""").fetchall()
    return {"incidents": [summary(r) for r in rows]}


def check_share(api, duck):
    assert api["total"] == duck["total"], ("total", api["total"], duck["total"])
    a = [(s["key"], s["requests"], len(s["points"])) for s in api["series"]]
    d = [(s["key"], s["requests"], len(s["points"])) for s in duck["series"]]
    assert a == d, ("series", a[:3], d[:3])
    for sa, sd in zip(api["series"], duck["series"]):
        assert [p["requests"] for p in sa["points"]] == [p["requests"] for p in sd["points"]], ("points", sa["key"])
        assert [p["ts"] for p in sa["points"]] == [p["ts"] for p in sd["points"]], ("ts", sa["key"])
    return f"total {api['total']:,} requests, {len(api['series'])} series × {len(api['series'][0]['points'])} points"


def check_rates(api, duck, merge):
    measures = ["requests", "bytes", "status_2xx", "status_3xx", "status_4xx", "status_5xx", "cache_hits", "blocked"]
    assert len(api["points"]) == len(duck["points"]), ("points", len(api["points"]), len(duck["points"]))
    worst = 0.0
    for pa, pd in zip(api["points"], duck["points"]):
        assert pa["ts"] == pd["ts"], (pa["ts"], pd["ts"])
        for m in measures:
            assert pa[m] == pd[m], (pa["ts"], m, pa[m], pd[m])
        if merge:
            worst = max(worst, abs(pa["distinct_clients"] - pd["distinct_clients"]) / max(1, pd["distinct_clients"]))
    assert worst <= 0.02, ("distinct_clients differ by", worst)
    extra = (", same distinct clients" if worst == 0 else f", distinct clients within {worst:.2%}") if merge else ""
    return f"{len(api['points'])} points, {sum(p['requests'] for p in api['points']):,} requests{extra}"


def check_report(api, duck):
    for k, v in duck["incident"].items():
        av = api["incident"].get(k)
        assert av == v or (isinstance(v, float) and abs(av - v) < 1e-9), ("incident", k, av, v)
    ta = [(p["ts"], p["requests"], p["matched_requests"], p["status_4xx"]) for p in api["timeline"]]
    td = [(p["ts"], p["requests"], p["matched_requests"], p["status_4xx"]) for p in duck["timeline"]]
    assert ta == td, ("timeline", len(ta), len(td))
    return f"{len(ta)} timeline seconds, status {api['incident']['status']}"


def check_list(api, duck):
    a = [(i["incident_id"], i["status"], i["updated_ts"], i["end_ts"]) for i in api["incidents"]]
    d = [(i["incident_id"], i["status"], i["updated_ts"], i["end_ts"]) for i in duck["incidents"]]
    assert a == d, ("list", len(a), len(d), a[:2], d[:2])
    return f"{len(a)} incidents"


def pct(values, q):
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def measure(args):
    lake = os.path.abspath(args.lake)
    api = Api(args.url)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        import datasketches  # noqa: F401
        merge = True
    except ImportError:
        merge = False
        log("python datasketches not installed: DuckDB answers site rates without distinct clients")
    meta = con.execute(f"""
        SELECT min(ts), max(ts) FROM read_parquet('{glob(lake, 'traffic_1m')}')""").fetchone()
    frm = int(meta[0].timestamp()) // 86400 * 86400
    to = (int(meta[1].timestamp()) // 86400 + 1) * 86400
    days = (to - frm) // 86400
    last_day = to - 86400
    top_site = con.execute(f"""
        SELECT site FROM read_parquet('{glob(lake, 'site_rates_10s')}', hive_partitioning = true)
        WHERE "date" = DATE '{dt.datetime.fromtimestamp(last_day, dt.timezone.utc).strftime('%Y-%m-%d')}'
        GROUP BY site ORDER BY sum(requests) DESC, site LIMIT 1""").fetchone()[0]
    incident_id, timeline_len = con.execute(f"""
        SELECT incident_id, count(*) FROM read_parquet('{glob(lake, 'incident_timeline')}') GROUP BY incident_id
        ORDER BY count(*) DESC, incident_id LIMIT 1""").fetchone()
    q = urllib.parse.quote
    questions = [
        (f"traffic share, {days} days, step 1h, top 10 sites",
         f"/v1/traffic-share?from={iso(frm)}&to={iso(to)}&by=site&step=1h&top=10",
         lambda: duck_traffic_share(con, lake, frm, to, 3600, 10), check_share),
        (f"traffic share, {days} days, step 1d, top 10 sites",
         f"/v1/traffic-share?from={iso(frm)}&to={iso(to)}&by=site&step=1d&top=10",
         lambda: duck_traffic_share(con, lake, frm, to, 86400, 10), check_share),
        ("traffic share, 1 day, step 1m, top 10 sites",
         f"/v1/traffic-share?from={iso(last_day)}&to={iso(to)}&by=site&step=1m&top=10",
         lambda: duck_traffic_share(con, lake, last_day, to, 60, 10), check_share),
        ("site rates, busiest site, 1 day, step 1m",
         f"/v1/sites/{q(top_site)}/rates?from={iso(last_day)}&to={iso(to)}&step=1m",
         lambda: duck_site_rates(con, lake, top_site, last_day, to, 60, merge), lambda a, d: check_rates(a, d, merge)),
        ("site rates, busiest site, 1 day, step 10s",
         f"/v1/sites/{q(top_site)}/rates?from={iso(last_day)}&to={iso(to)}&step=10s",
         lambda: duck_site_rates(con, lake, top_site, last_day, to, 10, merge), lambda a, d: check_rates(a, d, merge)),
        (f"incident report (JSON), longest timeline",
         f"/v1/incidents/{q(incident_id, safe='')}?format=json",
         lambda: duck_incident_report(con, lake, incident_id), check_report),
        (f"incidents list, {days} days",
         f"/v1/incidents?from={iso(frm)}&to={iso(to)}",
         lambda: duck_incident_list(con, lake, frm, to), check_list),
    ]
    if merge:
        questions.insert(5, (
            "site rates, busiest site, 1 day, step 1m, DuckDB without distinct clients",
            f"/v1/sites/{q(top_site)}/rates?from={iso(last_day)}&to={iso(to)}&step=1m",
            lambda: duck_site_rates(con, lake, top_site, last_day, to, 60, False), lambda a, d: check_rates(a, d, False)))
    results = []
    load_before = open("/proc/loadavg").read().split()[0]
    for name, path, duck, check in questions:
        log(f"{name}: GET {path}")
        ea, da = [], []
        for i in range(args.warmup + args.reps):
            t = time.perf_counter()
            body = api.get(path)
            e = time.perf_counter() - t
            t = time.perf_counter()
            answer = duck()
            d = time.perf_counter() - t
            if i == 0:
                agreement = check(json.loads(body), answer)
                log(f"  answers agree: {agreement}")
            if i >= args.warmup:
                ea.append(e)
                da.append(d)
        r = {"question": name, "path": path, "bytes": len(body), "agreement": agreement,
             "edgelens": [pct(ea, 0.5), pct(ea, 0.95)], "duckdb": [pct(da, 0.5), pct(da, 0.95)]}
        log(f"  edgelens p50 {r['edgelens'][0] * 1000:.1f} ms p95 {r['edgelens'][1] * 1000:.1f} ms; "
            f"DuckDB p50 {r['duckdb'][0] * 1000:.1f} ms p95 {r['duckdb'][1] * 1000:.1f} ms")
        results.append(r)
    info = {"reps": args.reps, "warmup": args.warmup, "duckdb": duckdb.__version__, "datasketches": merge,
            "duckdb_threads": con.execute("SELECT current_setting('threads')").fetchone()[0],
            "load": [load_before, open("/proc/loadavg").read().split()[0]],
            "top_site": top_site, "incident_id": incident_id, "timeline_len": timeline_len, "results": results}
    with open(args.out, "w") as f:
        json.dump(info, f, indent=1)


# ----------------------------------------------------------------------------------------------- report

def lake_stats(lake):
    con = duckdb.connect()
    out = []
    for t in TABLES:
        files = [os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(lake, t)) for f in fs if f.endswith(".parquet")]
        rows = con.execute(f"SELECT count(*) FROM read_parquet('{glob(lake, t)}')").fetchone()[0]
        out.append((t, rows, len(files), sum(os.path.getsize(f) for f in files)))
    last = sorted(os.listdir(os.path.join(lake, "site_rates_10s")))[-1]
    pool, sketch_bytes = con.execute(f"""
        SELECT count(DISTINCT clients_sketch), sum(octet_length(clients_sketch))
        FROM read_parquet('{os.path.join(lake, "site_rates_10s", last, "*.parquet")}')""").fetchone()
    return out, pool, sketch_bytes


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
    return f"{os.cpu_count()} vCPU {cpu}, {mem_kb / 1024 / 1024:.0f} GiB RAM, {platform.system()} {platform.release()}"


def ms(s):
    return f"{s * 1000:,.1f}" if s < 10 else f"{s * 1000:,.0f}"


def report(args):
    info = json.load(open(args.results))
    stats, pool, sketch_bytes = lake_stats(os.path.abspath(args.lake))
    lines = [
        "## Query latency vs DuckDB",
        "",
        f"Command: `{args.command}`. Date {dt.date.today().isoformat()}; {machine()}; {args.build}; "
        f"DuckDB {info['duckdb']} (Python, "
        f"{info['duckdb_threads']} threads, default settings). 1-minute load average when measuring started / "
        f"ended: {info['load'][0]} / {info['load'][1]}.",
        "",
        "The lake is generated directly with DuckDB (`bench/query_latency.py generate`, seed 42): "
        f"{args.sites:,} sites of Zipf-like popularity over {args.days} days from {START.date().isoformat()}, "
        f"{args.files_per_day} files per day per rollup table (rows ordered by time, then site, as the aggregator "
        "writes them), one per day for the incident tables; zstd. `clients_sketch` cells are real DataSketches HLLs taken "
        f"from a lake `edgelens replay` wrote, a pool of {pool}, so on disk they take far less than distinct sketches "
        f"would (dictionary-encoded); decoded, one day of `site_rates_10s` holds {sketch_bytes / 2**20:,.0f} MiB of them.",
        "",
        "| table | rows | files | bytes on disk |",
        "|---|---|---|---|",
    ]
    for t, rows, files, size in stats:
        lines.append(f"| {t} | {rows:,} | {files:,} | " + (f"{size / 2**20:,.0f} MiB |" if size >= 2**20 else f"{size / 2**10:,.0f} KiB |"))
    lines += [
        "",
        f"Each question: {info['warmup']} warm-up runs, then {info['reps']} timed runs, alternating one edgelens request "
        "(`edgelens query --data-dir LAKE`, HTTP keep-alive, wall time until the last byte of the JSON answer) and "
        "DuckDB answering the same question over the same files in one warm connection (`read_parquet` with hive "
        "partitions and the same `date` bounds as edgelens, wall time until the answer is shaped like the API's). "
        "The first answers of both were compared (totals, keys, every point's counts) and agreed. "
        f"Busiest site: `{info['top_site']}`; incident `{info['incident_id']}` ({info['timeline_len']:,} timeline seconds).",
        "",
        (f"With the service's default memory pool (`[query] sql_memory_mb` = 2048, no spilling to disk) "
         f"{args.probe} of 5 runs of the {args.days}-day step-1h traffic share failed"
         + (f" (`{args.probe_error.strip()}`)" if args.probe else "")
         + f"; the service measured here ran with `EDGELENS__QUERY__SQL_MEMORY_MB={args.memory_mb}`."),
        "",
        "| question | answer | edgelens p50 / p95 ms | DuckDB p50 / p95 ms | edgelens / DuckDB p50 | p95 |",
        "|---|---|---|---|---|---|",
    ]
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from record import record
    for r in info["results"]:
        e, d = r["edgelens"], r["duckdb"]
        record("query_latency", question=r["question"], edgelens_p50_ms=e[0] * 1000, duckdb_p50_ms=d[0] * 1000,
               edgelens_p95_ms=e[1] * 1000, duckdb_p95_ms=d[1] * 1000)
        lines.append(f"| {r['question']} | {r['agreement']} | {ms(e[0])} / {ms(e[1])} | {ms(d[0])} / {ms(d[1])} "
                     f"| **{e[0] / d[0]:.2f}×** | {e[1] / d[1]:.2f}× |")
    lines.append("")
    if info["datasketches"]:
        lines.append("DuckDB cannot read the HLL sketches, so for `distinct_clients` its rates answer fetches each step's "
                     "sketches (`list(clients_sketch)`) and merges them with the Python DataSketches library, as edgelens' "
                     "ClickHouse backend does; the row \"DuckDB without distinct clients\" leaves that out (edgelens still "
                     "answers in full).")
    else:
        lines.append("Python `datasketches` was not installed: DuckDB's rates answers leave out `distinct_clients`, "
                     "which edgelens computes (by merging HLL sketches).")
    lines.append("")
    # Paragraphs wrapped like the rest of RESULTS.md; table rows kept whole.
    section = "\n".join(line if line.startswith(("|", "#")) else textwrap.fill(
        line, width=100, break_long_words=False, break_on_hyphens=False) for line in lines)
    with open(args.md) as f:
        text = f.read()
    m = re.search(r"^## Query latency vs DuckDB\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
    if m:
        text = text[:m.start()] + section + ("\n" if m.end() < len(text) else "") + text[m.end():]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(args.md, "w") as f:
        f.write(text)
    print(section)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("version", help="print the version of the generated lake")
    g = sub.add_parser("generate")
    g.add_argument("--lake", required=True)
    g.add_argument("--pool", required=True)
    g.add_argument("--sites", type=int, default=10000)
    g.add_argument("--days", type=int, default=30)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--files-per-day", type=int, default=24)
    m = sub.add_parser("measure")
    m.add_argument("--lake", required=True)
    m.add_argument("--url", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--reps", type=int, default=20)
    m.add_argument("--warmup", type=int, default=2)
    r = sub.add_parser("report")
    r.add_argument("--lake", required=True)
    r.add_argument("--results", required=True)
    r.add_argument("--md", required=True)
    r.add_argument("--command", required=True)
    r.add_argument("--sites", type=int, default=10000)
    r.add_argument("--days", type=int, default=30)
    r.add_argument("--files-per-day", type=int, default=24)
    r.add_argument("--build", required=True, help="what binary was measured")
    r.add_argument("--memory-mb", type=int, required=True)
    r.add_argument("--probe", type=int, required=True, help="failed runs of 5 with the default memory pool")
    r.add_argument("--probe-error", default="")
    args = ap.parse_args()
    if args.cmd == "version":
        print(LAKE_VERSION)
        return
    {"generate": generate, "measure": measure, "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()
