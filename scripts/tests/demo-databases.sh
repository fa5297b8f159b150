#!/usr/bin/env bash
# scripts/run.sh --demo drops its two databases when it stops, and keeps them with --keep.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/build.sh
build_binaries 2>/dev/null
bin=$(pulse_bin_dir)
server=${TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306}
tmp=$(mktemp -d)
run_pid="" kept=()
cleanup() {
  [[ -n $run_pid ]] && kill -KILL -- "-$run_pid" 2>/dev/null
  ((${#kept[@]})) && "$bin/pulse-demo" drop-databases "${kept[@]}" >/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $1"
  [[ -f $tmp/out.txt ]] && tail -n 20 "$tmp/out.txt"
  exit 1
}

# Starts the demo with the given flags, waits until it runs, stops it with SIGTERM; sets
# DB to the gatherer's demo database.
demo_once() {
  rm -rf "$tmp/var"
  PULSE_VAR_DIR="$tmp/var" GATHERER__SERVER__PORT=0 ANALYSER__SERVER__PORT=0 \
    DATABASE_URL="$server/pulse" \
    setsid scripts/run.sh --demo "$@" >"$tmp/out.txt" 2>&1 &
  run_pid=$!
  local deadline=$((SECONDS + 120))
  until grep -q "^  database   pulse_demo_" "$tmp/out.txt"; do
    ((SECONDS < deadline)) || fail "the demo did not start within 120 s"
    sleep 0.5
  done
  DB=$(sed -n 's/^  database   \(pulse_demo_[0-9]*\) .*/\1/p' "$tmp/out.txt")
  "$bin/test-databases" exists "$DB" || fail "$DB does not exist while the demo runs"
  "$bin/test-databases" exists "${DB}_analyser" || fail "${DB}_analyser does not exist while the demo runs"
  kill -TERM "$run_pid"
  deadline=$((SECONDS + 60))
  while kill -0 "$run_pid" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "the demo still runs 60 s after SIGTERM"
    sleep 0.2
  done
  run_pid=""
}

demo_once
for name in "$DB" "${DB}_analyser"; do
  if "$bin/test-databases" exists "$name"; then
    kept+=("$server/$DB" "$server/${DB}_analyser")
    fail "$name outlived the demo"
  fi
done
demo_once --keep
for name in "$DB" "${DB}_analyser"; do
  kept+=("$server/$name")
  "$bin/test-databases" exists "$name" || fail "--keep did not keep $name"
done
echo "ok: the demo dropped its databases on exit, and kept them with --keep"
