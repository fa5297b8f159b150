#!/usr/bin/env bash
# NATS ingest benchmark: events/s committed to MySQL from JetStream (a backlog of NDJSON
# messages of 1 000 events, published beforehand by examples/nats_publish) beside the same
# gatherer taking NDJSON bodies of 1 000 events over HTTP (wrk, scripts/bench/ndjson.lua),
# in the same run. Committed events/s are read from events_count in the steady middle of
# each run. Needs MySQL and nats-server with JetStream (NATS_URL, default
# nats://127.0.0.1:4222). Called by scripts/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/mysql.sh
ensure_mysql
if ! command -v wrk >/dev/null; then
  echo "installing wrk (apt-get install wrk)" >&2
  apt-get install -y -qq wrk >/dev/null
fi
nats_url=${NATS_URL:-nats://127.0.0.1:4222}
mysql_client=$(command -v mariadb || command -v mysql)
duration=${BENCH_SECONDS:-12}
messages=${BENCH_NATS_MESSAGES:-50000}
cargo build --release -q -p gatherer --bin gatherer --example nats_publish
bin=${CARGO_TARGET_DIR:-target}/release
db="pulse_bench_nats_$(date +%s)"
port=31295
wait_port() { until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do sleep 0.1; done; }
committed() {
  "$mysql_client" -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u root -N -e \
    "SELECT COALESCE(SUM(events), 0) FROM events_count" "$db" 2>/dev/null || echo 0
}
# rate_between START END: committed events/s between START and END seconds from now.
rate_between() {
  sleep "$1"
  local a t0 b t1
  a=$(committed)
  t0=$(date +%s.%N)
  sleep "$(($2 - $1))"
  b=$(committed)
  t1=$(date +%s.%N)
  echo "($b - $a) / ($t1 - $t0)" | bc -l
}
start_gatherer() { # extra environment...
  env DATABASE_URL="mysql://root@$MYSQL_HOST:$MYSQL_PORT/$db" RUST_LOG=warn "$@" \
    "$bin/gatherer" --port "$port" >&2 &
  gatherer=$!
  wait_port "$port"
}

# http_round: committed events/s of NDJSON bodies over wrk.
http_round() {
  start_gatherer
  wrk -t2 -c64 -d"${duration}s" -s scripts/bench/ndjson.lua "http://127.0.0.1:$port/gather" >/dev/null &
  local load=$!
  rate_between 3 $((duration - 1))
  wait "$load"
  kill -TERM "$gatherer"
  wait "$gatherer"
}

# nats_round: committed events/s from a backlog of the same bodies in a stream of its
# own, consumed by a gatherer started after; checks that everything lands and is acked.
nats_round() {
  local stream published before rate acked landed
  stream="pulse_bench_$(date +%s%N)"
  published=$("$bin/examples/nats_publish" "$nats_url" "$stream" "$messages")
  before=$(committed)
  start_gatherer GATHERER__NATS__URL="$nats_url" GATHERER__NATS__STREAM="$stream" \
    GATHERER__NATS__SUBJECTS="[\"$stream.events\"]"
  rate=$(rate_between 2 $((duration / 2 + 2)))
  acked=0
  for _ in $(seq 1200); do
    acked=$(curl -s "http://127.0.0.1:$port/metrics" |
      awk -v s="$stream" '$1 ~ /^gatherer_nats_messages_total/ && index($1, "\"acked\"") && index($1, s) {print $2}')
    [[ "${acked%.*}" == "$published" ]] && break
    sleep 0.1
  done
  landed=$(($(committed) - before))
  kill -TERM "$gatherer"
  wait "$gatherer"
  "$bin/examples/nats_publish" "$nats_url" --delete-stream "$stream"
  if ((landed != published * 1000)) || [[ "${acked%.*}" != "$published" ]]; then
    echo "MISMATCH: $published messages of 1 000 events published, ${acked%.*} acked, $landed events landed" >&2
    exit 1
  fi
  echo "$rate"
}

# Two rounds of each, in turns, so that drift of the shared machine falls on both alike.
http_sum=0
nats_sum=0
for _ in 1 2; do
  rate=$(http_round)
  http_sum=$(echo "$http_sum + $rate" | bc -l)
  rate=$(nats_round)
  nats_sum=$(echo "$nats_sum + $rate" | bc -l)
done
"$mysql_client" -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u root -e "DROP DATABASE \`$db\`"

echo
echo "| NATS benchmark | figure | baseline in the same run | ratio | target |"
echo "| --- | --- | --- | --- | --- |"
printf '| events/s committed to MySQL from JetStream (backlogs of %d NDJSON messages of 1 000 events, all landed and acked; 2 runs each, in turns) | %.0f | HTTP NDJSON bodies of 1 000 events (wrk -t2 -c64): %.0f | %.2f | >= 0.5 |\n' \
  "$messages" "$(echo "$nats_sum / 2" | bc -l)" "$(echo "$http_sum / 2" | bc -l)" "$(echo "$nats_sum / $http_sum" | bc -l)"
