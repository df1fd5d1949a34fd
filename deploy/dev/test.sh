#!/usr/bin/env bash
# The project's test command (README, CI): install what is missing (cached), start the dev
# servers, run the whole workspace's tests with cargo-nextest against them, stop the servers.
#
#   bash deploy/dev/test.sh [extra cargo-nextest args...]
#   e.g. bash deploy/dev/test.sh -p edgelens-ingest --test kafka_broker
#
# Server-backed tests read EDGELENS_TEST_KAFKA (host:port) and EDGELENS_TEST_CLICKHOUSE (URL) and
# fail when they are missing. Servers that were already running (deploy/dev/up.sh) stay running.
# Without arguments, then runs deploy/dev/fuzz.sh (each fuzz target for EDGELENS_FUZZ_SECS, default
# 30 s). Exits non-zero if either failed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# shellcheck source=deploy/dev/env.sh
source "$here/env.sh"

bash "$here/install.sh"

started=()
cleanup() {
  local s
  for s in "${started[@]}"; do
    bash "$here/$s.sh" stop || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for s in kafka clickhouse; do
  if ! bash "$here/$s.sh" status >/dev/null 2>&1; then
    started+=("$s")
  fi
  bash "$here/$s.sh" start
done

export EDGELENS_TEST_KAFKA="$EDGELENS_KAFKA_BROKER"
export EDGELENS_TEST_CLICKHOUSE="$EDGELENS_CH_URL"
export EDGELENS_NODE_MODULES
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/edgelens/target}"

# The whole workspace unless packages were named.
scope=(--workspace)
for a in "$@"; do
  case "$a" in -p | --package | -p* | --package=*) scope=() ;; esac
done

cd "$root"
set +e
# One retry: a test that passes on retry is reported as FLAKY (and still counts as passed).
cargo nextest run "${scope[@]}" --no-fail-fast --retries "${EDGELENS_TEST_RETRIES:-1}" "$@"
status=$?
# The whole suite also runs each fuzz target for a bounded time (EDGELENS_FUZZ_SECS, default 30 s).
if ((${#scope[@]})) && [[ $# == 0 ]]; then
  bash "$here/fuzz.sh" || status=1
fi
set -e
exit "$status"
