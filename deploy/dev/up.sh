#!/usr/bin/env bash
# Install (cached) and start the dev servers: tansu (Kafka protocol) and a private ClickHouse.
# Prints the environment the server-backed tests read. Stop them with deploy/dev/down.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=deploy/dev/env.sh
source "$here/env.sh"

bash "$here/install.sh"
bash "$here/kafka.sh" start
bash "$here/clickhouse.sh" start
cat <<OUT
# dev servers are up; for tests and the binary:
export EDGELENS_TEST_KAFKA=$EDGELENS_KAFKA_BROKER
export EDGELENS_TEST_CLICKHOUSE=$EDGELENS_CH_URL
OUT
