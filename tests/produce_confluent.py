#!/usr/bin/env python3
"""Produce a Logpush NDJSON file to the events topic with confluent-kafka, following the message
format documented in ingest/src/log.rs (key = the registrable domain of the line's site, after the
public suffixes of schemas/data/public_suffixes.dat; value = NDJSON lines of that key as they are;
murmur2 partitioner), without any edgelens code. With `--pack N`, consecutive lines of one site go
into messages of 1, 2, ..., N lines in turn (newline-separated); else one line per message. Prints
the number of events acknowledged."""

import argparse
import json
import os
import sys

from confluent_kafka import Producer


def site_of(event):
    zone = event.get("ZoneName")
    if zone:
        return zone.lower().rstrip(".")
    host = (event.get("ClientRequestHost") or "").lower()
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return host.rstrip(".")


def load_suffixes():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "schemas", "data", "public_suffixes.dat")
    plain, wildcard, exception = set(), set(), set()
    with open(path, encoding="ascii") as f:
        for line in f:
            rule = line.strip()
            if not rule or rule.startswith("//"):
                continue
            if rule.startswith("!"):
                exception.add(rule[1:])
            elif rule.startswith("*."):
                wildcard.add(rule[2:])
            else:
                plain.add(rule)
    return plain, wildcard, exception


SUFFIXES = load_suffixes()


def partition_key(site):
    """The site's public suffix (the longest rule matching, an exception's parent, the last
    label by default) plus one label; the site itself when it is a public suffix or an IPv4
    literal."""
    labels = site.split(".")
    if labels[-1].isdigit():
        return site
    plain, wildcard, exception = SUFFIXES
    public = len(labels) - 1
    for i in range(len(labels) - 2, -1, -1):
        suffix = ".".join(labels[i:])
        if suffix in exception:
            public = i + 1
            break
        if suffix in plain or ".".join(labels[i + 1:]) in wildcard:
            public = i
    return ".".join(labels[public - 1:]) if public > 0 else site


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--pack", type=int, default=1)
    ap.add_argument("file")
    args = ap.parse_args()

    producer = Producer({
        "bootstrap.servers": args.brokers,
        "partitioner": "murmur2_random",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "compression.type": "lz4",
    })
    acked = 0
    failed = []

    def on_delivery(err, msg):
        nonlocal acked
        if err is None:
            acked += msg.value().count(b"\n") + 1
        else:
            failed.append(str(err))

    def send(key, lines):
        while True:
            try:
                producer.produce(args.topic, key=key, value=b"\n".join(lines), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)

    pending_key, pending, size = None, [], 1

    with open(args.file, "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            key = partition_key(site_of(json.loads(line))).encode()
            if pending and (key != pending_key or len(pending) >= size):
                send(pending_key, pending)
                pending, size = [], size % args.pack + 1
            pending_key = key
            pending.append(line)
    if pending:
        send(pending_key, pending)
    remaining = producer.flush(60)
    if remaining or failed:
        print(f"{remaining} messages unacknowledged, {len(failed)} failed: {failed[:3]}", file=sys.stderr)
        sys.exit(1)
    print(acked)


if __name__ == "__main__":
    main()
