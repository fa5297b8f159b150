#!/usr/bin/env bash
# Start the whole system: MySQL (if none answers), then the services, which create their
# databases and run their migrations on start. Ctrl-C stops everything gracefully.
#
#   scripts/run.sh          gatherer on :31115
#   scripts/run.sh --demo   the same, plus demo traffic
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mysql.sh
demo=false
for arg in "$@"; do
  case $arg in
    --demo) demo=true ;;
    *) echo "usage: scripts/run.sh [--demo]" >&2; exit 2 ;;
  esac
done

ensure_mysql
export DATABASE_URL="${DATABASE_URL:-mysql://root@$MYSQL_HOST:$MYSQL_PORT/pulse}"
cargo build --release -p gatherer -p analyser
bin=${CARGO_TARGET_DIR:-target}/release

pids=()
stop() {
  trap - INT TERM EXIT
  [[ ${#pids[@]} -gt 0 ]] && kill -TERM "${pids[@]}" 2>/dev/null
  wait
}
trap stop INT TERM EXIT

"$bin/gatherer" &
pids+=($!)
if [[ $demo == true ]]; then
  echo "demo traffic: posting random events to http://127.0.0.1:31115/gather" >&2
  until curl -sf http://127.0.0.1:31115/health/ready >/dev/null; do sleep 0.2; done
  (
    while sleep 0.2; do
      body=""
      for _ in $(seq 20); do
        body+="{\"label\":\"label$((RANDOM % 5))\",\"id\":$((RANDOM % 10)),\"value\":$((RANDOM % 100))}"$'\n'
      done
      curl -s -o /dev/null -H 'content-type: application/x-ndjson' --data-binary "$body" \
        http://127.0.0.1:31115/gather || true
    done
  ) &
  pids+=($!)
fi
wait "${pids[0]}"
