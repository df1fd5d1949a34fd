#!/usr/bin/env bash
# A Kafka-protocol broker (tansu) for dev and CI:
#   start | stop | stop-broker | restart | status | topics | broker
#
# Listens on 127.0.0.1:$EDGELENS_KAFKA_PORT (19092) only and advertises that address. Storage
# (EDGELENS_KAFKA_STORAGE, see env.sh) is `memory://tansu/` (fast, lost when the broker stops) or
# `s3://tansu/`: topics, records, committed offsets and groups in an S3-compatible object store
# (moto's server on 127.0.0.1:$EDGELENS_KAFKA_S3_PORT) that outlives the broker process, so
# `stop-broker` then `start` is a broker restart that loses nothing; `stop` ends both.
# `start` returns once the broker answers a Metadata request and the project's topics exist.
set -euo pipefail
# shellcheck source=deploy/dev/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

BROKER_URL="tcp://$EDGELENS_KAFKA_BROKER"
STORAGE_FILE="$EDGELENS_KAFKA_DIR/tansu.storage"

storage_url() {
  case "$EDGELENS_KAFKA_STORAGE" in
    memory) echo "memory://tansu/" ;;
    s3) echo "s3://$EDGELENS_KAFKA_S3_BUCKET/" ;;
    # Relative to tansu's working directory ($EDGELENS_KAFKA_DIR), see env.sh.
    sqlite) echo "sqlite://tansu.db" ;;
    *) edgelens_die "EDGELENS_KAFKA_STORAGE must be memory, s3 or sqlite, not '$EDGELENS_KAFKA_STORAGE'" ;;
  esac
}

S3_URL="http://127.0.0.1:$EDGELENS_KAFKA_S3_PORT"
# The object store's credentials and address, for tansu (object_store reads AWS_*).
s3_env=(AWS_ENDPOINT="$S3_URL" AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=edgelens AWS_SECRET_ACCESS_KEY=edgelens
  AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1)

s3_ready() {
  curl -fsS --max-time 2 -o /dev/null "$S3_URL/$EDGELENS_KAFKA_S3_BUCKET" 2>/dev/null
}

# The object store of s3 storage (moto's server, data in its memory): started once, kept across
# broker restarts, ended by `stop`.
start_s3() {
  if edgelens_pid_alive "$EDGELENS_KAFKA_S3_PIDFILE" && s3_ready; then
    return 0
  fi
  python3 -c 'import moto.server' 2>/dev/null || edgelens_die "moto's server (pip moto[server]) is not installed; run deploy/dev/install.sh"
  if edgelens_port_open "$EDGELENS_KAFKA_S3_PORT"; then
    edgelens_die "kafka: port 127.0.0.1:$EDGELENS_KAFKA_S3_PORT (object store) is already in use (set EDGELENS_KAFKA_S3_PORT)"
  fi
  (exec setsid python3 -m moto.server -H 127.0.0.1 -p "$EDGELENS_KAFKA_S3_PORT" </dev/null >>"$EDGELENS_KAFKA_S3_LOG" 2>&1) &
  echo "$!" >"$EDGELENS_KAFKA_S3_PIDFILE"
  local deadline=$((SECONDS + EDGELENS_START_TIMEOUT))
  until curl -fsS --max-time 2 -o /dev/null -X PUT "$S3_URL/$EDGELENS_KAFKA_S3_BUCKET" 2>/dev/null && s3_ready; do
    if ! edgelens_pid_alive "$EDGELENS_KAFKA_S3_PIDFILE" || ((SECONDS >= deadline)); then
      tail -n 20 "$EDGELENS_KAFKA_S3_LOG" >&2 || true
      edgelens_die "kafka: the object store did not start at $S3_URL (log: $EDGELENS_KAFKA_S3_LOG)"
    fi
    sleep 0.2
  done
  edgelens_log "kafka: object store (moto) ready at $S3_URL, bucket $EDGELENS_KAFKA_S3_BUCKET"
}

# tansu reads `.env` from its working directory and takes settings from the environment
# (LISTENER_URL, STORAGE_ENGINE, ...); run it from our own directory, with flags for everything.
tansu_cmd() {
  (cd "$EDGELENS_KAFKA_DIR" && timeout 20 tansu "$@")
}

# Prints the broker's topic metadata (JSON) if it answers.
list_topics() {
  tansu_cmd topic list --broker "$BROKER_URL" 2>/dev/null
}

ready() {
  list_topics >/dev/null
}

has_topic() { # TOPICS_JSON NAME
  [[ "$1" == *"\"name\":\"$2\""* ]]
}

create_topics() {
  local listed spec name partitions
  listed="$(list_topics)" || edgelens_die "kafka: broker at $EDGELENS_KAFKA_BROKER stopped answering"
  for spec in $EDGELENS_KAFKA_TOPICS; do
    name="${spec%%:*}"
    partitions="${spec##*:}"
    if has_topic "$listed" "$name"; then
      continue
    fi
    if ! tansu_cmd topic create "$name" --partitions "$partitions" --broker "$BROKER_URL" \
      >>"$EDGELENS_KAFKA_LOG" 2>&1; then
      # Lost a race with another creator? Then it exists now, which is all we want.
      has_topic "$(list_topics)" "$name" || edgelens_die "kafka: could not create topic $name (see $EDGELENS_KAFKA_LOG)"
    fi
    edgelens_log "kafka: created topic $name ($partitions partitions)"
  done
}

start() {
  command -v tansu >/dev/null || edgelens_die "tansu not installed; run deploy/dev/install.sh"
  mkdir -p "$EDGELENS_KAFKA_DIR"
  local url
  url="$(storage_url)"
  if edgelens_pid_alive "$EDGELENS_KAFKA_PIDFILE" && ready; then
    local running
    running="$(cat "$STORAGE_FILE" 2>/dev/null || echo unknown)"
    if [[ "$running" != "$url" ]]; then
      edgelens_log "kafka: note: the running broker uses $running, not $url; 'kafka.sh restart' to switch"
    fi
    edgelens_log "kafka already running (pid $(cat "$EDGELENS_KAFKA_PIDFILE")) at $EDGELENS_KAFKA_BROKER"
    create_topics
    return 0
  fi
  if edgelens_pid_alive "$EDGELENS_KAFKA_PIDFILE"; then
    edgelens_log "kafka: pid $(cat "$EDGELENS_KAFKA_PIDFILE") alive but not answering; restarting"
    stop
  fi
  if edgelens_port_open "$EDGELENS_KAFKA_PORT"; then
    edgelens_die "kafka: port $EDGELENS_KAFKA_BROKER is already in use by another process (set EDGELENS_KAFKA_PORT)"
  fi
  local env=()
  if [[ "$EDGELENS_KAFKA_STORAGE" == s3 ]]; then
    start_s3
    env=("${s3_env[@]}")
  fi
  echo "$url" >"$STORAGE_FILE"
  echo "--- $(date -u +%FT%TZ) start: storage $url" >>"$EDGELENS_KAFKA_LOG"
  # Own session: the broker outlives this script (up.sh) and ignores the terminal's signals.
  (cd "$EDGELENS_KAFKA_DIR" && exec env "${env[@]}" setsid tansu broker \
    --listener-url "$BROKER_URL" \
    --advertised-listener-url "$BROKER_URL" \
    --storage-engine "$url" \
    </dev/null >>"$EDGELENS_KAFKA_LOG" 2>&1) &
  local pid=$!
  echo "$pid" >"$EDGELENS_KAFKA_PIDFILE"
  local deadline=$((SECONDS + EDGELENS_START_TIMEOUT))
  until edgelens_port_open "$EDGELENS_KAFKA_PORT" && ready; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$EDGELENS_KAFKA_PIDFILE"
      edgelens_log "tansu exited during startup; last log lines:"
      tail -n 20 "$EDGELENS_KAFKA_LOG" >&2 || true
      edgelens_die "kafka failed to start"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$EDGELENS_KAFKA_LOG" >&2 || true
      stop
      edgelens_die "kafka did not answer a Metadata request at $EDGELENS_KAFKA_BROKER within ${EDGELENS_START_TIMEOUT}s (log: $EDGELENS_KAFKA_LOG)"
    fi
    sleep 0.2
  done
  create_topics
  edgelens_log "kafka (tansu $EDGELENS_TANSU_VERSION, $url) ready at $EDGELENS_KAFKA_BROKER (pid $pid, log $EDGELENS_KAFKA_LOG)"
}

# The broker process only: with s3 storage its data stays in the object store for the next start.
stop_broker() {
  edgelens_stop_pidfile kafka "$EDGELENS_KAFKA_PIDFILE"
}

stop() {
  stop_broker
  if [[ -e "$EDGELENS_KAFKA_S3_PIDFILE" ]]; then
    edgelens_stop_pidfile "kafka object store" "$EDGELENS_KAFKA_S3_PIDFILE"
  fi
}

status() {
  if edgelens_pid_alive "$EDGELENS_KAFKA_PIDFILE" && ready; then
    echo "kafka: running (pid $(cat "$EDGELENS_KAFKA_PIDFILE"), $(cat "$STORAGE_FILE" 2>/dev/null)) at $EDGELENS_KAFKA_BROKER"
  elif edgelens_pid_alive "$EDGELENS_KAFKA_PIDFILE"; then
    echo "kafka: pid $(cat "$EDGELENS_KAFKA_PIDFILE") alive but not answering at $EDGELENS_KAFKA_BROKER"
    return 1
  else
    echo "kafka: stopped"
    return 3
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  stop-broker) stop_broker ;;
  restart) stop; start ;;
  status) status ;;
  topics) list_topics ;;
  broker) echo "$EDGELENS_KAFKA_BROKER" ;;
  *) echo "usage: $0 start|stop|stop-broker|restart|status|topics|broker" >&2; exit 2 ;;
esac
