#!/usr/bin/env bash
# The benchmark suite in one command: every figure side by side with its peers, from one run on
# this machine, on the same generated data (mixed scenario, 10 000 sites, seed 42).
#   1. for each input size (1M and 10M events; 50M with EDGELENS_BENCH_50M=1):
#      edgelens replay (bench/replay.sh; also the lake's bytes per raw event), the Kafka path
#      (bench/kafka.sh: `ingest file`, the Logpush receiver, broker → one aggregator), ClickHouse
#      computing the same rollups with materialized views next to edgelens writing them to
#      ClickHouse (bench/clickhouse_rollups.sh; stored bytes), DuckDB computing them from the NDJSON
#      (bench/duckdb_rollups.py); ratios to edgelens replay;
#   2. the query service's questions on its lake and on its ClickHouse backend over the data of the
#      largest size, next to DuckDB (bench/query_backends.py);
#   3. scaling: replay versus sites (1k → 1M) and the Kafka path versus aggregator processes
#      (1 → 3), peak memory at each point (bench/scaling.sh);
#   4. query latency over 30 days of rollups versus DuckDB (bench/query_latency.sh, which rewrites
#      its own section of RESULTS.md; skipped with EDGELENS_BENCH_QUERY_LATENCY=0);
#   5. criterion micro-benchmarks of the hot paths, recorded in bench/micro-history.csv
#      (bench/micro.sh);
#   6. the plot bench/suite.svg (bench/plot.py) and the section "Benchmark suite (bench/run.sh)"
#      of bench/RESULTS.md, rewritten with the machine, the date, the command and every table.
# Needs the dev servers' tools (deploy/dev/install.sh); starts the broker and ClickHouse itself.
# Data in $HOME/.cache/edgelens/bench (EDGELENS_BENCH_DIR); the inputs above 1M events are deleted
# at the end unless EDGELENS_BENCH_KEEP=1. On 2 cores: about 45 minutes, plus the production build.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_build
export EDGELENS_BENCH_PREBUILT=1
export EDGELENS_BENCH_JSON=$WORK/suite.jsonl
: > "$EDGELENS_BENCH_JSON"
OUT=$WORK/suite.md
: > "$OUT"
COMMIT=$(git rev-parse --short HEAD)
DIRTY=$(git status --porcelain --untracked-files=no -- src query schemas ingest aggregate Cargo.toml Cargo.lock | head -1)
STARTED=$(date +%s)

section() { printf '\n### %s\n\n' "$1" | tee -a "$OUT" >&2; }
label() { printf '\n%s\n\n' "$1" | tee -a "$OUT"; }
run() { # run CMD... — its stdout (Markdown) into the summary, its stderr to the terminal
  "$@" | tee -a "$OUT"
}

SIZES=("4000 250s" "20000 500s")
[ "${EDGELENS_BENCH_50M:-0}" = 1 ] && SIZES+=("50000 1000s")
for size in "${SIZES[@]}"; do
  read -r rps dur <<< "$size"
  bench_input "$rps" "$dur"
  section "$(printf "%'d" "$LINES") events ($rps events/s of event time for $dur, 10 000 sites)"
  label "edgelens replay:"
  run bash bench/replay.sh "$rps" "$dur"
  label "Kafka path (dev broker, memory storage, restarted for this run):"
  bash deploy/dev/kafka.sh stop >/dev/null 2>&1 || true
  run bash bench/kafka.sh "$rps" "$dur"
  label "ClickHouse:"
  run bash bench/clickhouse_rollups.sh "$rps" "$dur"
  label "DuckDB:"
  run python3 bench/duckdb_rollups.py "$FILE" "$WORK/duckdb-rollups"
done
bash deploy/dev/kafka.sh stop >/dev/null 2>&1 || true
rm -rf "$WORK/duckdb-rollups"

section "Query service on both backends over the same data (largest size), next to DuckDB"
run python3 bench/query_backends.py "$BIN" "$WORK/ch-sink-lake" "http://127.0.0.1:${EDGELENS_CH_HTTP_PORT:-18123}" edgelens_bench_sink 20

section "Scaling"
run bash bench/scaling.sh
bash deploy/dev/kafka.sh stop >/dev/null 2>&1 || true

if [ "${EDGELENS_BENCH_QUERY_LATENCY:-1}" != 0 ]; then
  section "Query latency over 30 days of rollups"
  echo "See the section \"Query latency vs DuckDB\" (rewritten by this run)." >> "$OUT"
  bash bench/query_latency.sh > /dev/null
fi

section "Micro-benchmarks (criterion, one core)"
run bash bench/micro.sh

python3 bench/plot.py "$EDGELENS_BENCH_JSON" bench/suite.svg
python3 - "$EDGELENS_BENCH_JSON" "$OUT" bench/RESULTS.md "$COMMIT" "$DIRTY" "$(( $(date +%s) - STARTED ))" <<'PY'
import datetime, json, os, platform, re, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
body = open(sys.argv[2]).read()
md, commit, dirty, secs = sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = int(re.search(r"MemTotal:\s+(\d+)", open("/proc/meminfo").read()).group(1)) / 2**20
# The headline: events per CPU-second of each engine, and its ratio to edgelens replay, per size.
engines = [("edgelens replay", "replay"), ("broker → edgelens aggregate", "kafka_aggregate"),
           ("edgelens replay → ClickHouse", "edgelens_to_clickhouse"), ("ClickHouse materialized views", "clickhouse_mv"),
           ("DuckDB from NDJSON", "duckdb_rollups")]
sizes = sorted({r["events"] for r in rows if r["bench"] == "replay"})
head = ["| engine | " + " | ".join(f"{s:,} events: events/CPU-s (× edgelens replay)" for s in sizes) + " |",
        "|---|" + "---|" * len(sizes)]
for name, key in engines:
    cells = []
    for s in sizes:
        # Inputs of one size: the file's line count (ClickHouse and DuckDB count the same lines).
        base = next(r for r in rows if r["bench"] == "replay" and r["events"] == s)["eps_per_cpu"]
        r = next((r for r in rows if r["bench"] == key and r["events"] == s), None)
        cells.append(f"{r['eps_per_cpu']:,.0f} ({r['eps_per_cpu'] / base:.2f}×)" if r else "—")
    head.append(f"| {name} | " + " | ".join(cells) + " |")
storage = [r for r in rows if r["bench"] in ("storage_lake", "clickhouse_mv", "edgelens_to_clickhouse") and r["events"] == max(sizes)]
stor = {r["bench"]: r for r in storage}
lines = [
    "## Benchmark suite (`bench/run.sh`)",
    "",
    f"Command: `bash bench/run.sh`. Date {datetime.date.today().isoformat()}; {os.cpu_count()} vCPU {cpu}, "
    f"{mem:.0f} GiB RAM, {platform.system()} {platform.release()}; production binary built from commit {commit}"
    + (" plus uncommitted changes" if dirty else "") + f"; the whole run took {secs // 60} min. "
    "Everything ran on the same 2 cores: the broker, ClickHouse and DuckDB share them with edgelens. "
    "Plot: [`bench/suite.svg`](suite.svg).",
    "",
    "Aggregation throughput per CPU-second (server and client CPU together for ClickHouse; all of DuckDB's threads):",
    "",
    *head,
    "",
]
if "storage_lake" in stor:
    lines.append(f"Storage at {max(sizes):,} events: the edgelens lake (all tables, Parquet) "
                 f"{stor['storage_lake']['bytes_per_event']:.1f} bytes per raw event"
                 + (f"; edgelens' rollups in ClickHouse {stor['edgelens_to_clickhouse']['bytes_per_event']:.1f}" if "edgelens_to_clickhouse" in stor else "")
                 + (f"; ClickHouse's own materialized views {stor['clickhouse_mv']['bytes_per_event']:.1f}" if "clickhouse_mv" in stor else "")
                 + " (the raw NDJSON is not kept by any of them).")
    lines.append("")
lines.append(body.strip())
section = "\n".join(lines) + "\n"
text = open(md).read()
m = re.search(r"^## Benchmark suite \(`bench/run.sh`\)\n.*?(?=^## |\Z)", text, flags=re.S | re.M)
text = text[:m.start()] + section + ("\n" if m.end() < len(text) else "") + text[m.end():] if m else text.rstrip("\n") + "\n\n" + section
open(md, "w").write(text)
print(section)
PY
if [ "${EDGELENS_BENCH_KEEP:-0}" != 1 ]; then
  rm -f "$WORK"/replay-20000-500s.ndjson "$WORK"/replay-50000-1000s.ndjson "$WORK"/replay-4000-250s-s100000.ndjson \
    "$WORK"/replay-4000-250s-s1000000.ndjson
fi
