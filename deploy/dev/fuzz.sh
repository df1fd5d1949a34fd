#!/usr/bin/env bash
# A bounded fuzz run of the hostile-input surfaces, part of the test command (deploy/dev/test.sh):
# each target runs for EDGELENS_FUZZ_SECS seconds (default 30; 0 skips the run) from its committed
# corpus, with libFuzzer and no sanitizer, so it builds on the stable toolchain. A crash, or one
# input taking longer than EDGELENS_FUZZ_UNIT_SECS (default 10), fails the run and leaves the input
# in <crate>/fuzz/artifacts/. Longer runs with AddressSanitizer (nightly):
# bench/fuzz.sh.
#   bash deploy/dev/fuzz.sh [TARGET...]     targets: parse_line logpush_body sql_guard pg_wire
# Without targets: $EDGELENS_FUZZ_TARGETS, default "parse_line logpush_body" (the query crate's
# targets build DataFusion with coverage instrumentation, ~20 min cold on 2 cores: run them by name).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=deploy/dev/env.sh
source "$here/env.sh"

secs="${EDGELENS_FUZZ_SECS:-30}"
if [[ "$secs" == 0 ]]; then
  edgelens_log "fuzz: skipped (EDGELENS_FUZZ_SECS=0)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  edgelens_log "installing cargo-fuzz"
  env -u CARGO_TARGET_DIR cargo install cargo-fuzz --locked
fi

declare -A crate_of=([parse_line]=schemas [logpush_body]=ingest [sql_guard]=query [pg_wire]=query)
targets=("$@")
# shellcheck disable=SC2206
((${#targets[@]})) || targets=(${EDGELENS_FUZZ_TARGETS:-parse_line logpush_body})
status=0
for t in "${targets[@]}"; do
  crate="${crate_of[$t]:-}"
  [[ -n "$crate" ]] || edgelens_die "unknown fuzz target $t"
  dir="$root/$crate/fuzz"
  # Built once per machine: the fuzz builds live outside the clone, like the workspace's.
  target_dir="${EDGELENS_FUZZ_TARGET_DIR:-$HOME/.cache/edgelens/fuzz-target}/$crate"
  log="$(mktemp -t "fuzz-$t.XXXXXX.log")"
  edgelens_log "fuzz: $t for ${secs}s (log: $log)"
  # A scratch copy of the corpus, so new inputs found in CI do not dirty the clone.
  work="$(mktemp -d -t "fuzz-corpus-$t.XXXXXX")"
  cp -r "$dir/corpus/$t/." "$work/"
  if (cd "$dir" && cargo fuzz run -s none --target-dir "$target_dir" "$t" "$work" -- \
      -max_total_time="$secs" -timeout="${EDGELENS_FUZZ_UNIT_SECS:-10}" -rss_limit_mb=2048 -print_final_stats=1) >"$log" 2>&1; then
    grep -E "^stat::number_of_executed_units" "$log" | sed "s/^/[edgelens dev] fuzz $t: /" >&2 || true
  else
    status=1
    edgelens_log "fuzz: $t FAILED"
    grep -E "panicked|ERROR|SUMMARY|Test unit written" "$log" >&2 || tail -n 30 "$log" >&2
  fi
  rm -rf "$work"
done
exit "$status"
