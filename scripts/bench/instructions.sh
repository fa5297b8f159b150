#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind: the same figure on a busy or
# an idle machine, where wrk's requests per second move by 10 to 20 % between runs. The
# gatherer against the bare actix-web handler, and the gatherer over 1 000 000 distinct
# series against over 100 (flushes included). Called by scripts/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/mysql.sh
ensure_mysql
for tool in valgrind wrk; do
  if ! command -v "$tool" >/dev/null; then
    echo "installing $tool (apt-get install $tool)" >&2
    apt-get install -y -qq "$tool" >/dev/null
  fi
done
mysql_client=$(command -v mariadb || command -v mysql)
seconds=${BENCH_INSTRUCTIONS_SECONDS:-20}
cargo build --release -q -p gatherer --bin gatherer --example bare_http
bin=${CARGO_TARGET_DIR:-target}/release
out=$(mktemp -d)
port=31296
db="pulse_bench_instructions_$(date +%s)"

# count NAME LUA_SCRIPT [VAR=value...] -- COMMAND...: prints instructions per request.
# Counting starts once the server answers, so start-up is left out.
count() {
  local name=$1 script=$2 vars=()
  shift 2
  while [[ $1 != -- ]]; do
    vars+=("$1")
    shift
  done
  shift
  valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out/$name" "$@" \
    >/dev/null 2>"$out/$name.log" &
  local pid=$!
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do sleep 0.5; done
  callgrind_control -i on "$pid" >/dev/null
  local report
  report=$(env "${vars[@]}" wrk -t1 -c4 -d"${seconds}s" -s "$script" "http://127.0.0.1:$port/gather")
  callgrind_control -i off "$pid" >/dev/null
  kill -TERM "$pid"
  wait "$pid" || true
  local requests instructions
  requests=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$report")
  instructions=$(awk '/^totals:/ {print $2; exit}' "$out/$name")
  echo "$requests" >"$out/$name.requests"
  echo $((instructions / requests))
}

# in_function NAME PATTERN: instructions per request spent in functions matching PATTERN
# (inclusive of what they call), from the profile `count NAME` left.
in_function() {
  local total
  total=$(callgrind_annotate --inclusive=yes --threshold=100 "$out/$1" 2>/dev/null |
    awk -v p="$2" 'index($0, p) && !index($0, "closure") {gsub(",", "", $1); sum += $1} END {print sum + 0}')
  echo "$total $(cat "$out/$1.requests")" | awk '{printf "%.1f", $1 / $2}'
}

export DATABASE_URL="mysql://root@$MYSQL_HOST:$MYSQL_PORT/$db" RUST_LOG=warn
bare=$(count bare bench.lua X=1 -- "$bin/examples/bare_http" "$port")
single=$(count single bench.lua X=1 -- "$bin/gatherer" --port "$port")
keyless_key_cost=$(in_function single "routes::ingest::idempotency_key")
keyed=$(count keyed scripts/bench/keyed.lua X=1 -- "$bin/gatherer" --port "$port")
few=$(count few scripts/bench/series.lua SERIES=100 -- "$bin/gatherer" --port "$port")
many=$(count many scripts/bench/series.lua SERIES=1000000 -- "$bin/gatherer" --port "$port")
"$mysql_client" -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u root -e "DROP DATABASE IF EXISTS \`$db\`"
rm -rf "$out"

echo
echo "| instructions per request (callgrind, wrk -t1 -c4 -d${seconds}s) | figure | baseline in the same run | ratio |"
echo "| --- | --- | --- | --- |"
printf '| single-event POST /gather (bench.lua) | %d | bare actix handler: %d | %.2f |\n' \
  "$single" "$bare" "$(echo "$bare / $single" | bc -l)"
printf '| single-event POST /gather without an Idempotency-Key: instructions spent looking for the header (`routes::ingest::idempotency_key`, inclusive) | %s | the whole request: %d | %s |\n' \
  "$keyless_key_cost" "$single" "$(echo "$keyless_key_cost $single" | awk '{printf "%.5f", $1 / $2}')"
printf '| single-event POST /gather with an Idempotency-Key of its own (claim, reply kept, key committed with the flush) | %d | without: %d | %.2f |\n' \
  "$keyed" "$single" "$(echo "$single / $keyed" | bc -l)"
printf '| over 1 000 000 distinct series, flushes included | %d | over 100: %d | %.2f |\n' \
  "$many" "$few" "$(echo "$few / $many" | bc -l)"
