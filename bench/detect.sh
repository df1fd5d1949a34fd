#!/usr/bin/env bash
# Attack detection quality: for each seed, `edgelens generate --scenario eval` (every attack vector
# and hard negative, 60 min), `edgelens replay`, `edgelens eval` against the labelled truth.
# Usage: bench/detect.sh [RPS] [SITES] [SEED...]   (defaults: 1000 1000 11; RESULTS.md used
#        `bench/detect.sh 1000 1000 11`, `bench/detect.sh 3000 2000 12`, `bench/detect.sh 500 500 13`)
# Prints each run's summary and a Markdown row per seed: delays of all but the slow ramps from their
# start; the slow ramps' from their onset (in brackets: from their first second at the onset level);
# all attacks' from their onset.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
RPS=${1:-1000}
SITES=${2:-1000}
shift 2 2>/dev/null || true
SEEDS=("${@:-11}")
[ ${#SEEDS[@]} -gt 0 ] || SEEDS=(11)
bench_build
for seed in "${SEEDS[@]}"; do
  base=$WORK/eval-$seed-$RPS-$SITES
  [ -s "$base.ndjson" ] || "$BIN" generate --scenario eval --seed "$seed" --duration 60m --rps "$RPS" --sites "$SITES" --out "$base.ndjson" --truth "$base.truth.json"
  rm -rf "$base.lake"
  "$BIN" replay "$base.ndjson" --data-dir "$base.lake" > /dev/null
  "$BIN" eval --truth "$base.truth.json" --data-dir "$base.lake" --events "$base.ndjson" --out "$base.report.json"
  python3 - "$base.report.json" "$seed" "$RPS" "$SITES" <<'PY'
import json, math, sys
r = json.load(open(sys.argv[1]))
q = lambda v, p: v[max(0, math.ceil(len(v) * p) - 1)] if v else None
pa = r["per_attack"]
quick = sorted(a["delay_secs"] for a in pa if a["shape"] != "slow_ramp" and a["detected"])
slow = [a["delay_from_onset_secs"] for a in pa if a["shape"] == "slow_ramp"]
loud = [a["delay_from_first_second_at_level_secs"] for a in pa if a["shape"] == "slow_ramp"]
onset = sorted(a["delay_from_onset_secs"] for a in pa if a["detected"])
fa = sum(r["false_alerts"].values())
f = lambda x: "-" if x is None else f"{x:.3f}"
print(f"| {sys.argv[2]} | {sys.argv[3]} rps, {sys.argv[4]} sites | {r['detected']}/{r['attacks']} | {f(r['recall_3x'])} | {fa} | "
      f"{q(quick, .5)} / {q(quick, .95)} s | {slow} s ({loud} s) | {q(onset, .5)} / {q(onset, .95)} s | {f(r['flood_signature_precision']['min'])} / {f(r['flood_signature_coverage']['min'])} | "
      f"{f(r['peak_rps_error']['p50'])} / {f(r['peak_rps_error']['p95'])} | {f(r['vector_agreement'])} |")
PY
done
