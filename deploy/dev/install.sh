#!/usr/bin/env bash
# Install what the server-backed tests need; each step is skipped when already present, so a
# second run takes well under a second.
#   - tansu (Kafka-protocol broker) via `cargo install`, with its storage engines
#   - Debian clickhouse-server + clickhouse-client (18.16) and curl via apt-get
#   - cargo-nextest (the test runner of deploy/dev/test.sh)
#   - Python duckdb and confluent-kafka via pip (bench and cross-check scripts), psycopg (a
#     Postgres driver other than ours, for the Postgres wire tests; with psycopg2, SQLAlchemy and
#     pandas as analysts use them), moto's S3 server (the object
#     store of the broker's durable storage, for the broker-restart test)
#   - Debian postgresql-client (psql) and chromium (dashboard tests in headless Chromium)
#   - playwright-core from npm into $EDGELENS_DEV_DIR/node (drives Chromium; no browser download)
set -euo pipefail
# shellcheck source=deploy/dev/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

mkdir -p "$EDGELENS_DEV_DIR"

# Serialize concurrent runs (two CI steps, two terminals): the second waits, then finds all present.
if command -v flock >/dev/null; then
  exec 9>"$EDGELENS_DEV_DIR/install.lock"
  if ! flock -n 9; then
    edgelens_log "another install.sh is running; waiting for it"
    flock 9
  fi
fi

as_root() {
  if [[ "$(id -u)" == 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    edgelens_die "need root (or sudo) to run: $*"
  fi
}

tansu_ok() {
  command -v tansu >/dev/null && [[ "$(tansu --version 2>/dev/null)" == *" $EDGELENS_TANSU_VERSION"* ]]
}

install_tansu() {
  if tansu_ok; then return 0; fi
  # A `cargo install tansu` started elsewhere (e.g. by machine setup) would race with ours: wait.
  local waited=0
  while pgrep -f "^[^ ]*cargo install tansu" >/dev/null 2>&1; do
    if ((waited == 0)); then edgelens_log "a 'cargo install tansu' is already running; waiting for it to finish"; fi
    sleep 10
    waited=$((waited + 10))
    if ((waited >= 3600)); then edgelens_die "gave up waiting for the running 'cargo install tansu' after 1h"; fi
  done
  if tansu_ok; then return 0; fi
  edgelens_log "installing tansu $EDGELENS_TANSU_VERSION (features $EDGELENS_TANSU_FEATURES); ~10 min on 2 cores, once"
  # Not into the workspace's target dir: tansu is a separate binary with its own dependency tree.
  env -u CARGO_TARGET_DIR cargo install tansu --version "$EDGELENS_TANSU_VERSION" \
    --features "$EDGELENS_TANSU_FEATURES"
  tansu_ok || edgelens_die "tansu installed but '$(command -v tansu) --version' is not $EDGELENS_TANSU_VERSION"
}

deb_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

install_debs() {
  local missing=() p
  for p in clickhouse-server clickhouse-client curl postgresql-client chromium; do
    deb_installed "$p" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  command -v apt-get >/dev/null || edgelens_die "missing ${missing[*]} and no apt-get; install them by hand"
  # Refresh the package lists only when apt does not know the packages yet.
  for p in "${missing[@]}"; do
    if ! apt-cache show "$p" >/dev/null 2>&1; then
      edgelens_log "apt-get update"
      as_root apt-get update -qq
      break
    fi
  done
  edgelens_log "apt-get install ${missing[*]}"
  # The package's postinst may try to start the system service; ours uses other ports anyway.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

install_nextest() {
  if cargo nextest --version >/dev/null 2>&1; then return 0; fi
  edgelens_log "installing cargo-nextest"
  env -u CARGO_TARGET_DIR cargo install cargo-nextest --locked
}

install_python() {
  local py missing=()
  py="$(command -v python3 || true)"
  [[ -n "$py" ]] || edgelens_die "python3 not found"
  # find_spec: presence only, without the cost of importing (duckdb takes ~0.5 s to import).
  read -r -a missing < <("$py" - <<'PY'
import importlib.util
wanted = {"duckdb": "duckdb", "confluent_kafka": "confluent-kafka", "psycopg": "psycopg[binary]",
          "moto": "moto[server]>=5.1,<6", "flask_cors": "moto[server]>=5.1,<6",
          "sqlalchemy": "sqlalchemy>=2,<3", "psycopg2": "psycopg2-binary", "pandas": "pandas"}
print(" ".join(sorted({pkg for mod, pkg in wanted.items() if importlib.util.find_spec(mod) is None})))
PY
  ) || true
  ((${#missing[@]} == 0)) && return 0
  edgelens_log "pip install ${missing[*]}"
  local out
  if ! out="$("$py" -m pip install -q --disable-pip-version-check "${missing[@]}" 2>&1)"; then
    if [[ "$out" == *externally-managed-environment* ]]; then
      # Debian's system Python (PEP 668): install for this user instead.
      "$py" -m pip install -q --disable-pip-version-check --user --break-system-packages "${missing[@]}"
    else
      printf '%s\n' "$out" >&2
      edgelens_die "pip install ${missing[*]} failed"
    fi
  fi
}

install_playwright() {
  local dir="$EDGELENS_DEV_DIR/node"
  if [[ -f "$dir/node_modules/playwright-core/package.json" ]]; then return 0; fi
  command -v npm >/dev/null || edgelens_die "npm not found (Node.js is needed for the dashboard tests)"
  edgelens_log "npm install playwright-core into $dir"
  mkdir -p "$dir"
  # playwright-core never downloads a browser; the tests launch Debian's /usr/bin/chromium.
  npm install --silent --no-audit --no-fund --prefix "$dir" "playwright-core@$EDGELENS_PLAYWRIGHT_VERSION" >/dev/null
}

install_debs
install_python
install_playwright
install_nextest
install_tansu
edgelens_log "install: all present (tansu $EDGELENS_TANSU_VERSION, clickhouse-server $(dpkg-query -W -f='${Version}' clickhouse-server), $(cargo nextest --version 2>/dev/null | head -n1))"
