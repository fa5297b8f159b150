#!/usr/bin/env bash
# scripts/run.sh with both ports overridden: the gatherer and the analyser answer on the
# ports given, the analyser follows that gatherer (an event sent to it becomes a series
# the analyser serves), var/analyser.toml is created with mode 0600, and SIGTERM to run.sh
# stops everything, the gatherer after a flush. A gatherer that cannot start (its port
# taken) stops run.sh with one line naming it and its log, instead of a wait without end.
# Runs on two test databases of this run (PULSE_TEST_RUN), dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/build.sh
build_binaries 2>/dev/null
bin=$(pulse_bin_dir)
server=${TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306}

free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}
gport=$(free_port)
aport=$(free_port)
while [[ $aport == "$gport" ]]; do aport=$(free_port); done
gdb=$("$bin/test-databases" name pulse_test_script)
adb=$("$bin/test-databases" name pulse_test_script)
tmp=$(mktemp -d)
run_pid=""
cleanup() {
  # run.sh leads its own process group (setsid): a failed check takes its services too.
  [[ -n $run_pid ]] && kill -KILL -- "-$run_pid" 2>/dev/null
  "$bin/test-databases" drop "$gdb" "$adb" || true
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $1"
  for log in "$tmp"/out.txt "$tmp"/var/log/*.log; do
    [[ -f $log ]] && { echo "--- $log"; tail -n 20 "$log"; }
  done
  exit 1
}
poll() { # seconds what command...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "no $what within the limit"
    sleep 0.2
  done
}

# A port that is taken (MySQL's): the gatherer cannot bind it and exits at once.
mysql_port=${server##*:}
mysql_port=${mysql_port%%/*}
status=0
PULSE_VAR_DIR="$tmp/var" GATHERER__SERVER__PORT=$mysql_port ANALYSER__SERVER__PORT=$aport \
  DATABASE_URL="$server/$gdb" ANALYSER__DATABASE__URL="$server/$adb" PULSE_START_TIMEOUT=20 \
  timeout 60 scripts/run.sh >"$tmp/out.txt" 2>&1 || status=$?
((status == 1)) || fail "run.sh with the gatherer's port taken exited with $status, not 1"
grep -q "^gatherer exited during start-up: .*; its log: $tmp/var/log/gatherer.log$" "$tmp/out.txt" ||
  fail "run.sh did not say in one line that the gatherer exited, and where its log is"
[[ $(stat -c %a "$tmp/var/analyser.toml") == 600 ]] || fail "var/analyser.toml was not created with mode 0600"

PULSE_VAR_DIR="$tmp/var" GATHERER__SERVER__PORT=$gport ANALYSER__SERVER__PORT=$aport \
  DATABASE_URL="$server/$gdb" ANALYSER__DATABASE__URL="$server/$adb" \
  setsid scripts/run.sh >"$tmp/out.txt" 2>&1 &
run_pid=$!
poll 120 "gatherer on :$gport" curl -sf "http://127.0.0.1:$gport/health/ready"
poll 60 "analyser on :$aport" curl -sf "http://127.0.0.1:$aport/health/ready"
poll 10 "gatherer's address in run.sh's summary" grep -q "gatherer   http://127.0.0.1:$gport" "$tmp/out.txt"
poll 10 "analyser's address in run.sh's summary" grep -q "analyser   http://127.0.0.1:$aport" "$tmp/out.txt"

# An event only this gatherer has: once pulled, the analyser serves its series.
entity=$((7000000 + RANDOM))
curl -sf "http://127.0.0.1:$gport/gather" -d "{\"label\":\"checkout\",\"id\":$entity,\"value\":1}" >/dev/null
password=$(sed -n 's/^password = "\([^"]*\)".*/\1/p' "$tmp/var/analyser.toml")
seen() {
  curl -sf -u "analyst:$password" -X POST "http://127.0.0.1:$aport/api/v1/pull" &&
    curl -sf -u "analyst:$password" \
      "http://127.0.0.1:$aport/api/v1/series?label=checkout&entity_id=$entity"
}
poll 30 "series checkout/$entity on the analyser (does it follow the gatherer on :$gport?)" seen

kill -TERM "$run_pid"
deadline=$((SECONDS + 60))
while kill -0 "$run_pid" 2>/dev/null; do
  ((SECONDS < deadline)) || fail "run.sh still running 60 s after SIGTERM"
  sleep 0.2
done
status=0
wait "$run_pid" || status=$?
run_pid=""
((status == 0)) || fail "run.sh exited with $status after SIGTERM"
for port in "$gport" "$aport"; do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && fail "something still answers on :$port"
done
grep -q "everything flushed; bye" "$tmp/var/log/gatherer.log" || fail "the gatherer did not flush on its way out"
[[ ! -e $tmp/var/run.env ]] || fail "run.env outlived run.sh"
echo "ok: gatherer :$gport and analyser :$aport answered, the analyser followed the gatherer, SIGTERM stopped both"
