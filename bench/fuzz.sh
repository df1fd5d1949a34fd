#!/usr/bin/env bash
# Fuzz the hostile-input surfaces with cargo-fuzz (libFuzzer + AddressSanitizer, nightly Rust):
#   schemas/fuzz parse_line    — one Logpush NDJSON line through the event parser and redaction;
#   ingest/fuzz  logpush_body  — a POST /v1/logpush body through gzip, limits and line splitting.
# Usage: bench/fuzz.sh [SECONDS_PER_TARGET]   (default 600). Both targets run at once, one core
# each (build first: `cargo +nightly fuzz build` in each fuzz dir). Starts from the committed corpora;
# new inputs found go to the targets' corpus directories; a crash stops with its input saved under
# <crate>/fuzz/artifacts/ and a non-zero exit. Needs `rustup toolchain install nightly` and
# `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-600}
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2; exit 1; }
run() {
  local crate=$1 target=$2 log="${TMPDIR:-/tmp}/fuzz-$2.log"
  (cd "$crate/fuzz" && cargo +nightly fuzz run "$target" -- -max_total_time="$SECS" -print_final_stats=1 -rss_limit_mb=2048) >"$log" 2>&1
}
report() {
  local target=$1 status=$2 log="${TMPDIR:-/tmp}/fuzz-$1.log"
  echo "== $target: exit $status (log: $log)"
  grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY)" "$log" || true
}
echo "fuzzing parse_line and logpush_body for ${SECS}s each" >&2
run schemas parse_line & p1=$!
run ingest logpush_body & p2=$!
s1=0; wait "$p1" || s1=$?
s2=0; wait "$p2" || s2=$?
report parse_line "$s1"
report logpush_body "$s2"
[ "$s1" = 0 ] && [ "$s2" = 0 ]
