#!/usr/bin/env bash
# Start the whole system: MySQL (if none answers), then the gatherer (:31115) and the
# analyser (:31116), which create their databases and run their migrations on start.
# Ctrl-C stops everything gracefully.
#
#   scripts/run.sh          gatherer + analyser
#   scripts/run.sh --demo   the same, plus demo traffic with an anomaly every few minutes
#   scripts/run.sh --demo --nats   the demo traffic through NATS JetStream (NATS_URL, or a
#                                  nats-server -js started here) instead of HTTP
#
# The analyser's settings live in var/analyser.toml, created on first start with the user
# "analyst" and a generated password (printed below). Edit it to add datasets or users.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mysql.sh
demo=false
nats=false
for arg in "$@"; do
  case $arg in
    --demo) demo=true ;;
    --nats) nats=true ;;
    *) echo "usage: scripts/run.sh [--demo [--nats]]" >&2; exit 2 ;;
  esac
done

ensure_mysql
export DATABASE_URL="${DATABASE_URL:-mysql://root@$MYSQL_HOST:$MYSQL_PORT/pulse}"
if [[ $demo == true ]]; then
  # The demo gets databases of its own, new at each start: its backfilled history must
  # be the first thing the analyser sees, and real data stays apart.
  DATABASE_URL="${DATABASE_URL%/*}/pulse_demo_$(date +%s)"
  export ANALYSER__DATABASE__URL="${DATABASE_URL}_analyser"
  echo "demo databases: ${DATABASE_URL##*/} and ${ANALYSER__DATABASE__URL##*/}" >&2
fi
export ANALYSER__DATABASE__URL="${ANALYSER__DATABASE__URL:-${DATABASE_URL%/*}/pulse_analyser}"
cargo build --release -p gatherer -p analyser
bin=${CARGO_TARGET_DIR:-target}/release

mkdir -p var
if [[ ! -f var/analyser.toml ]]; then
  password=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
  cat > var/analyser.toml <<TOML
# The analyser's settings for scripts/run.sh (see README, "Configuration").
[[auth.users]]
name = "analyst"
password = "$password"   # development only: use password_hash (analyser hash-password) for real

[[datasets]]
name = "shop"
labels = ["checkout", "price", "visit"]
time_step = "1m"
time_ago = "30m"
method = "auto"
TOML
fi
password=$(sed -n 's/^password = "\([^"]*\)".*/\1/p' var/analyser.toml | head -n 1)

pids=()
stop() {
  trap - INT TERM EXIT
  [[ ${#pids[@]} -gt 0 ]] && kill -TERM "${pids[@]}" 2>/dev/null
  wait
}
trap stop INT TERM EXIT

if [[ $nats == true ]]; then
  NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
  if [[ $NATS_URL == nats://127.0.0.1:4222 ]] && ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
    command -v nats-server >/dev/null || { echo "--nats: install nats-server (apt-get install nats-server) or set NATS_URL" >&2; exit 2; }
    mkdir -p var/nats
    nats-server -a 127.0.0.1 -p 4222 -js -sd var/nats >var/nats/server.log 2>&1 &
    pids+=($!)
    until (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; do sleep 0.1; done
  fi
  export GATHERER__NATS__URL="$NATS_URL"
fi

# The demo backfills three hours of history: the gatherer must accept events that old.
[[ $demo == true ]] && export GATHERER__INGEST__MAX_EVENT_AGE="${GATHERER__INGEST__MAX_EVENT_AGE:-4h}"
"$bin/gatherer" &
gatherer_pid=$!
pids+=($gatherer_pid)
until curl -sf http://127.0.0.1:31115/health/ready >/dev/null; do sleep 0.2; done
"$bin/analyser" --config var/analyser.toml &
pids+=($!)
until curl -sf http://127.0.0.1:31116/health/ready >/dev/null; do sleep 0.2; done
if [[ $demo == true ]]; then
  if [[ $nats == true ]]; then
    "$bin/pulse-demo" --nats "$NATS_URL" &
  else
    "$bin/pulse-demo" &
  fi
  pids+=($!)
fi
cat >&2 <<TXT

  gatherer   http://127.0.0.1:31115   (curl localhost:31115/gather -d '{"label":"checkout","id":1,"value":1}')
  analyser   http://127.0.0.1:31116   user: analyst   password: $password
             curl -u analyst:$password localhost:31116/api/v1/state
TXT
wait "$gatherer_pid"
