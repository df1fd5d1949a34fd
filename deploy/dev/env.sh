# shellcheck shell=bash
# Shared settings of the deploy/dev scripts: ports, directories, versions. Sourced, not run.
#
# Every value can be overridden from the environment. The servers listen on 127.0.0.1 only, on
# non-default ports, so they do not clash with a system Kafka/ClickHouse on the same machine.

EDGELENS_DEV_DIR="${EDGELENS_DEV_DIR:-$HOME/.cache/edgelens/dev}"

# Kafka protocol broker (tansu).
EDGELENS_TANSU_VERSION="${EDGELENS_TANSU_VERSION:-0.6.0}"
EDGELENS_TANSU_FEATURES="${EDGELENS_TANSU_FEATURES:-dynostore,libsql}"
EDGELENS_KAFKA_HOST=127.0.0.1
EDGELENS_KAFKA_PORT="${EDGELENS_KAFKA_PORT:-19092}"
# memory (fast, lost when the broker stops), s3 (records, offsets and groups in an S3-compatible
# object store — moto's server, on loopback — that outlives the broker process: a broker restart
# loses nothing) or sqlite (survives restarts, but tansu 0.6's sqlite engine fails under concurrent
# produce/fetch/group traffic: not for tests).
EDGELENS_KAFKA_STORAGE="${EDGELENS_KAFKA_STORAGE:-memory}"
# The object store of s3 storage: its port, and the bucket tansu uses.
EDGELENS_KAFKA_S3_PORT="${EDGELENS_KAFKA_S3_PORT:-$((EDGELENS_KAFKA_PORT + 1))}"
EDGELENS_KAFKA_S3_BUCKET=tansu
EDGELENS_KAFKA_DIR="$EDGELENS_DEV_DIR/kafka"
EDGELENS_KAFKA_PIDFILE="$EDGELENS_KAFKA_DIR/tansu.pid"
EDGELENS_KAFKA_LOG="$EDGELENS_KAFKA_DIR/tansu.log"
EDGELENS_KAFKA_S3_PIDFILE="$EDGELENS_KAFKA_DIR/s3.pid"
EDGELENS_KAFKA_S3_LOG="$EDGELENS_KAFKA_DIR/s3.log"
# With sqlite storage the database is $EDGELENS_KAFKA_DIR/tansu.db (tansu resolves sqlite:// paths
# against its working directory, which is $EDGELENS_KAFKA_DIR).
EDGELENS_KAFKA_BROKER="$EDGELENS_KAFKA_HOST:$EDGELENS_KAFKA_PORT"
# Topics the project uses: NAME:PARTITIONS.
EDGELENS_KAFKA_TOPICS="${EDGELENS_KAFKA_TOPICS:-edge-requests:8 edge-dead-letters:1 incidents:1}"

# ClickHouse (Debian clickhouse-server 18.16), a private process, not the system service.
EDGELENS_CH_HOST=127.0.0.1
EDGELENS_CH_HTTP_PORT="${EDGELENS_CH_HTTP_PORT:-18123}"
EDGELENS_CH_TCP_PORT="${EDGELENS_CH_TCP_PORT:-19000}"
EDGELENS_CH_DIR="$EDGELENS_DEV_DIR/clickhouse"
EDGELENS_CH_PIDFILE="$EDGELENS_CH_DIR/clickhouse.pid"
EDGELENS_CH_LOG="$EDGELENS_CH_DIR/log/clickhouse-server.log"
EDGELENS_CH_URL="http://$EDGELENS_CH_HOST:$EDGELENS_CH_HTTP_PORT"
# The server's time zone: edgelens needs UTC (tests set another to see it refused).
EDGELENS_CH_TIMEZONE="${EDGELENS_CH_TIMEZONE:-UTC}"

# playwright-core (npm) for the dashboard tests: $EDGELENS_DEV_DIR/node/node_modules.
EDGELENS_PLAYWRIGHT_VERSION="${EDGELENS_PLAYWRIGHT_VERSION:-1.64.1}"
EDGELENS_NODE_MODULES="$EDGELENS_DEV_DIR/node/node_modules"

# Seconds to wait for a server to become ready.
EDGELENS_START_TIMEOUT="${EDGELENS_START_TIMEOUT:-60}"

# Where `cargo install` puts binaries.
EDGELENS_CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in
  *":$EDGELENS_CARGO_BIN:"*) ;;
  *) PATH="$EDGELENS_CARGO_BIN:$PATH" ;;
esac
export PATH

edgelens_log() { printf '[edgelens dev] %s\n' "$*" >&2; }
edgelens_die() { printf '[edgelens dev] error: %s\n' "$*" >&2; exit 1; }

# edgelens_pid_alive PIDFILE — true if the pid file names a running process.
edgelens_pid_alive() {
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(cat "$1")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# edgelens_port_open PORT — true if something accepts TCP connections on 127.0.0.1:PORT.
edgelens_port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# edgelens_await_exit NAME PID TENTHS — wait up to TENTHS × 0.1 s for PID (already sent SIGTERM)
# to exit, then SIGKILL it.
edgelens_await_exit() {
  local name="$1" pid="$2" tenths="$3" i
  for ((i = 0; i < tenths; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    edgelens_log "$name (pid $pid) did not stop after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
}

# edgelens_stop_pidfile NAME PIDFILE — SIGTERM, wait up to 20 s, then SIGKILL; removes the pid file.
edgelens_stop_pidfile() {
  local name="$1" pidfile="$2" pid
  if ! edgelens_pid_alive "$pidfile"; then
    rm -f "$pidfile"
    edgelens_log "$name: not running"
    return 0
  fi
  pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  edgelens_await_exit "$name" "$pid" 200
  rm -f "$pidfile"
  edgelens_log "$name stopped (pid $pid)"
}
