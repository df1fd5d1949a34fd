#!/usr/bin/env python3
"""Push a Logpush NDJSON file to an edgelens receiver as gzip batches from several concurrent
clients, retrying on 429/503 as Logpush does; prints the accepted events per second."""
import argparse
import gzip
import http.client
import threading
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()

    batches = []
    with open(args.file, "rb") as f:
        chunk = []
        for i, line in enumerate(f):
            if i >= args.lines:
                break
            chunk.append(line)
            if len(chunk) == args.batch:
                batches.append((len(chunk), gzip.compress(b"".join(chunk), 1)))
                chunk = []
        if chunk:
            batches.append((len(chunk), gzip.compress(b"".join(chunk), 1)))

    url = urllib.parse.urlparse(args.url)
    lock = threading.Lock()
    todo = list(reversed(batches))
    accepted = [0]

    def client():
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
        while True:
            with lock:
                if not todo:
                    return
                n, body = todo.pop()
            while True:
                conn.request("POST", url.path, body, {"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson"})
                resp = conn.getresponse()
                resp.read()
                if resp.status == 200:
                    break
                if resp.status in (429, 503):
                    time.sleep(float(resp.getheader("Retry-After", "1")) / 10)
                    continue
                raise SystemExit(f"receiver answered {resp.status}")
            with lock:
                accepted[0] += n

    start = time.time()
    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(int(accepted[0] / (time.time() - start)))


if __name__ == "__main__":
    main()
