#!/usr/bin/env python3
"""End-to-end freshness of the distributed path, live: a client pushes Logpush batches of events
stamped "now" to `edgelens ingest`, `edgelens aggregate` writes the lake, and a poller asks
`edgelens query` (POST /v1/sql) for the site's 10-second rates until each window shows its full
count. Reports, over all events, "accepted (HTTP 200) → visible in a query" and, per window,
"watermark passed the window's end → visible" (the aggregator's own delay: flush interval plus
writing), p50 and p99.

Usage: freshness.py --receiver URL --query URL [--seconds 60] [--rps 200]
"""
import argparse
import json
import threading
import time
import urllib.request
import uuid

WINDOW = 10
DISORDER = 5


def window_of(ts):
    return int(ts // WINDOW * WINDOW)


def post(url, body, headers):
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--receiver", required=True)
    ap.add_argument("--query", required=True)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rps", type=float, default=200)
    args = ap.parse_args()
    site = f"fresh-{uuid.uuid4().hex[:8]}.example"
    accepted = []  # (accept time, event ts seconds)
    done = threading.Event()

    def client():
        batch_every = 0.2
        per_batch = max(1, int(args.rps * batch_every))
        end = time.time() + args.seconds
        while time.time() < end:
            now = time.time()
            lines = []
            for i in range(per_batch):
                ts_ns = int((now + i * batch_every / per_batch) * 1e9)
                lines.append(json.dumps({
                    "EdgeStartTimestamp": ts_ns, "ClientIP": f"10.0.{i % 250}.{int(now) % 250}",
                    "EdgeResponseStatus": 200, "ZoneName": site, "RayID": uuid.uuid4().hex[:16],
                    "ClientCountry": "de", "EdgeColoCode": "FRA", "ClientASN": 3320,
                    "CacheCacheStatus": "hit", "EdgeResponseBytes": 1000,
                }))
            status, _ = post(args.receiver, "\n".join(lines).encode(), {"Content-Type": "application/x-ndjson"})
            if status == 200:
                t = time.time()
                accepted.extend((t, json.loads(l)["EdgeStartTimestamp"] / 1e9) for l in lines)
            time.sleep(max(0.0, batch_every - (time.time() - now)))
        done.set()

    visible = {}  # window start -> first time its full count was seen
    th = threading.Thread(target=client)
    th.start()
    sql = f"SELECT CAST(to_unixtime(ts) AS BIGINT) AS w, sum(requests) AS r FROM site_rates_10s WHERE site = '{site}' GROUP BY 1"
    deadline = None
    while True:
        _, body = post(args.query, sql.encode(), {"Content-Type": "text/plain", "Accept": "application/json"})
        now = time.time()
        rows = json.loads(body)
        want = {}
        latest = 0.0
        for _, ts in list(accepted):
            w = window_of(ts)
            want[w] = want.get(w, 0) + 1
            latest = max(latest, ts)
        for row in rows:
            w, r = int(row["w"]), int(row["r"])
            # Complete: events past the window's end were accepted, and its full count is visible.
            if w not in visible and latest >= w + WINDOW and want.get(w) == r:
                visible[w] = now
        if done.is_set():
            deadline = deadline or now + 30
            if all(w in visible for w in want) or now > deadline:
                break
        time.sleep(0.1)
    th.join()
    per_event = sorted(visible[window_of(ts)] - t for t, ts in accepted if window_of(ts) in visible)
    # The watermark passes a window's end once an event WINDOW_END + DISORDER old was accepted.
    passed = {}
    for t, ts in sorted(accepted):
        for w in visible:
            if w not in passed and ts >= w + WINDOW + DISORDER:
                passed[w] = t
    per_window = sorted(visible[w] - passed[w] for w in visible if w in passed)

    def pct(xs, p):
        return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")

    print("| measure | samples | p50 s | p99 s |")
    print("|---|---|---|---|")
    print(f"| event accepted (200) → visible in `POST /v1/sql` | {len(per_event):,} events | {pct(per_event, 0.5):.2f} | {pct(per_event, 0.99):.2f} |")
    print(f"| watermark passed window end → window visible | {len(per_window)} windows | {pct(per_window, 0.5):.2f} | {pct(per_window, 0.99):.2f} |")
    missing = [w for w in want if w not in visible]
    if missing:
        print(f"\n{len(missing)} windows never became complete (the last ones close only on the idle timeout).")


if __name__ == "__main__":
    main()
