#!/usr/bin/env bash
# Stop the dev servers started by deploy/dev/up.sh (or kafka.sh / clickhouse.sh start).
# Data stays under $EDGELENS_DEV_DIR (memory-backed Kafka topics are gone).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

status=0
bash "$here/kafka.sh" stop || status=$?
bash "$here/clickhouse.sh" stop || status=$?
exit "$status"
