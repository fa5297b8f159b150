#!/usr/bin/env bash
# Start the whole system: MySQL (if none answers), then the gatherer and the analyser,
# which create their databases and run their migrations on start. Ctrl-C or SIGTERM stops
# everything gracefully. See --help.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'TXT'
usage: scripts/run.sh [--demo [--keep] [--nats]] [--release]
       scripts/run.sh --demo --clean

  (none)           the gatherer (:31115) and the analyser (:31116) on the databases pulse
                   and pulse_analyser
  --demo           the same on databases of their own (pulse_demo_<time>, and _analyser),
                   plus demo traffic: three hours of backfilled history, then live traffic
                   with an anomaly every five minutes; the databases are dropped on exit
  --demo --keep    keep the demo's databases on exit
  --demo --nats    the demo traffic through NATS JetStream (NATS_URL, or a nats-server -js
                   started here with its store in var/nats) instead of HTTP, with a trickle
                   of invalid messages; the gatherer consumes the stream
  --demo --clean   drop the databases earlier demos left (those no running demo uses), exit
  --release        optimised binaries (target/release); by default the binaries are the
                   tests' build (scripts/build.sh), so after scripts/test.sh nothing builds
  -h, --help       this text

Ports: GATHERER__SERVER__PORT and ANALYSER__SERVER__PORT (0 = any free port); the analyser
follows the gatherer's real address. Databases: DATABASE_URL, ANALYSER__DATABASE__URL.
The analyser's settings are in var/analyser.toml, created on first start (mode 0600) with
the user "analyst" and a generated password. Each service logs to var/log/<name>.log;
var/run.env holds the addresses and databases of the running system, for scripts/pulse.
TXT
}

demo=false keep=false clean=false nats=false
for arg in "$@"; do
  case $arg in
    --demo) demo=true ;;
    --keep) keep=true ;;
    --clean) clean=true ;;
    --nats) nats=true ;;
    --release) export PULSE_PROFILE=release ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
if [[ $demo == false && ($keep == true || $clean == true || $nats == true) ]]; then
  echo "--keep, --clean and --nats go with --demo" >&2
  exit 2
fi

source scripts/mysql.sh
source scripts/build.sh
# Where this run keeps its settings, logs and run.env (tests point it elsewhere).
var=${PULSE_VAR_DIR:-var}
# How long a service may take to listen and answer /health/ready.
start_limit=${PULSE_START_TIMEOUT:-60}
# How long a service may take to stop after SIGTERM (the gatherer flushes first; its
# ingest.shutdown_timeout defaults to 30 s).
stop_limit=${PULSE_STOP_TIMEOUT:-45}

ensure_mysql
export DATABASE_URL="${DATABASE_URL:-mysql://root@$MYSQL_HOST:$MYSQL_PORT/pulse}"
server_url=${DATABASE_URL%/*}
build_binaries
bin=$(pulse_bin_dir)

if [[ $clean == true ]]; then
  exec "$bin/pulse-demo" clean --server "$server_url"
fi
if [[ $demo == true ]]; then
  # The demo gets databases of its own, new at each start: its backfilled history must
  # be the first thing the analyser sees, and real data stays apart.
  DATABASE_URL="$server_url/pulse_demo_$(date +%s)"
  export ANALYSER__DATABASE__URL="${DATABASE_URL}_analyser"
  # The demo backfills three hours of history: the gatherer must accept events that old.
  export GATHERER__INGEST__MAX_EVENT_AGE="${GATHERER__INGEST__MAX_EVENT_AGE:-4h}"
fi
export ANALYSER__DATABASE__URL="${ANALYSER__DATABASE__URL:-$server_url/pulse_analyser}"

mkdir -p "$var/log"
if [[ ! -f $var/analyser.toml ]]; then
  password=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
  # 0600 from the start: the file holds a password.
  (
    umask 077
    cat >"$var/analyser.toml" <<TOML
# The analyser's settings for scripts/run.sh (see README, "Configuration"). Mode 0600: it
# holds a password.
[[auth.users]]
name = "analyst"
password = "$password"   # development only: use password_hash (analyser hash-password) for real

[[datasets]]
name = "shop"
labels = ["checkout", "price", "visit"]
levels = ["price"]        # prices are measurements: judged on their level, not their sum
time_step = "1m"
time_ago = "30m"
method = "auto"
TOML
  )
elif [[ $(stat -c %a "$var/analyser.toml") != 600 ]]; then
  chmod 600 "$var/analyser.toml"
  echo "$var/analyser.toml holds a password: its mode is now 0600" >&2
fi
password=$(sed -n 's/^password = "\([^"]*\)".*/\1/p' "$var/analyser.toml" | head -n 1)

pids=() names=()
stopping=false
stop() {
  [[ $stopping == true ]] && return
  stopping=true
  trap - INT TERM
  local i
  # The demo first (it sends), the gatherer last (it flushes what it holds).
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    stop_one "${pids[i]}" "${names[i]}"
  done
  rm -f "$var/run.env"
  if [[ $demo == true ]]; then
    if [[ $keep == true ]]; then
      echo "kept the demo's databases ${DATABASE_URL##*/} and ${ANALYSER__DATABASE__URL##*/}" >&2
    else
      "$bin/pulse-demo" drop-databases "$DATABASE_URL" "$ANALYSER__DATABASE__URL" >&2 ||
        echo "could not drop the demo's databases; scripts/run.sh --demo --clean drops them" >&2
    fi
  fi
}

stop_one() { # pid name
  kill -TERM "$1" 2>/dev/null || return 0
  local i
  for ((i = 0; i < stop_limit * 10; i++)); do
    kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  echo "$2 did not stop within $stop_limit s of SIGTERM: killed; its log: $var/log/$2.log" >&2
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

fail() {
  echo "$1" >&2
  stop
  exit 1
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

# Starts a service in the background, its output in var/log/NAME.log, and waits (at most
# start_limit seconds) until it has logged the address it bound and answers
# /health/ready there. Sets ADDRESS to HOST:PORT.
start_service() { # name command...
  local name=$1 log="$var/log/$1.log" deadline=$((SECONDS + start_limit))
  shift
  : >"$log"
  "$@" >>"$log" 2>&1 &
  pids+=($!) names+=("$name")
  ADDRESS=""
  while ((SECONDS < deadline)); do
    if ! kill -0 "${pids[-1]}" 2>/dev/null; then
      fail "$name exited during start-up: $(grep -m1 -iE 'error|fail' "$log" || tail -n 1 "$log"); its log: $log"
    fi
    if [[ -z $ADDRESS ]]; then
      ADDRESS=$(sed -n 's/.*listening on \([^ ]*:[0-9]*\).*/\1/p' "$log" | head -n 1) || ADDRESS=""
    elif curl -sf "http://$ADDRESS/health/ready" >/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  fail "$name did not ${ADDRESS:+answer on http://$ADDRESS/health/ready}${ADDRESS:-start listening} within $start_limit s; its log: $log"
}

if [[ $nats == true ]]; then
  NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
  if [[ $NATS_URL == nats://127.0.0.1:4222 ]] && ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
    command -v nats-server >/dev/null ||
      fail "--nats: no NATS answers on 127.0.0.1:4222 and nats-server is not installed (apt-get install nats-server), or set NATS_URL"
    mkdir -p "$var/nats"
    nats-server -a 127.0.0.1 -p 4222 -js -sd "$var/nats" >"$var/log/nats-server.log" 2>&1 &
    pids+=($!) names+=(nats-server)
    for _ in $(seq 100); do
      (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break
      sleep 0.1
    done
    (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null ||
      fail "nats-server did not start within 10 s; its log: $var/log/nats-server.log"
  fi
  export GATHERER__NATS__URL="$NATS_URL"
fi

start_service gatherer "$bin/gatherer"
gatherer=$ADDRESS
export ANALYSER__GATHERER__URL="${ANALYSER__GATHERER__URL:-http://$gatherer}"
start_service analyser "$bin/analyser" --config "$var/analyser.toml"
analyser=$ADDRESS
if [[ $demo == true ]]; then
  if [[ $nats == true ]]; then
    "$bin/pulse-demo" --gatherer "http://$gatherer" --nats "$NATS_URL" &
  else
    "$bin/pulse-demo" --gatherer "http://$gatherer" &
  fi
  pids+=($!) names+=(demo)
fi

db=${DATABASE_URL##*/}
hostport=${server_url#*://}
user=${hostport%@*}
[[ $hostport == *@* ]] || user=root
hostport=${hostport#*@}
password_flag="" db_port=3306
[[ $user == *:* ]] && password_flag=" -p"
[[ $hostport == *:* ]] && db_port=${hostport##*:}
(
  umask 077
  cat >"$var/run.env" <<ENV
# Written by scripts/run.sh while it runs; read by scripts/pulse.
PULSE_GATHERER=http://$gatherer
PULSE_ANALYSER=http://$analyser
PULSE_BIN=$bin
DATABASE_URL=$DATABASE_URL
ANALYSER__DATABASE__URL=$ANALYSER__DATABASE__URL
ANALYSER__GATHERER__URL=$ANALYSER__GATHERER__URL
ENV
)
cat >&2 <<TXT

  gatherer   http://$gatherer   (curl $gatherer/gather -d '{"label":"checkout","id":1,"value":1}')
  analyser   http://$analyser   user: analyst   password: $password
             curl -u analyst:$password $analyser/api/v1/state
  database   $db   (scripts/pulse mysql, or: mysql -u${user%%:*}${password_flag} -h${hostport%%:*} -P$db_port $db)
  logs       $var/log/gatherer.log, $var/log/analyser.log
TXT
[[ $demo == true ]] && echo "  demo       its databases are dropped on exit (--keep keeps them)" >&2
echo >&2

# Until a signal, or until a service stops by itself.
set +e
wait -n "${pids[@]}"
set -e
[[ $stopping == true ]] && exit 0
for i in "${!pids[@]}"; do
  kill -0 "${pids[i]}" 2>/dev/null || fail "${names[i]} stopped; its log: $var/log/${names[i]}.log"
done
