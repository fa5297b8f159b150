#!/usr/bin/env bash
# Ingest benchmark with wrk (2 threads, 64 connections, as the original service was
# measured): the gatherer against a bare actix-web handler in the same run, NDJSON batches
# with the default configuration against no backlog bound, cost as distinct series grow,
# memory, and zero loss. Called by scripts/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/mysql.sh
ensure_mysql
if ! command -v wrk >/dev/null; then
  echo "installing wrk (apt-get install wrk)" >&2
  apt-get install -y -qq wrk >/dev/null
fi
mysql_client=$(command -v mariadb || command -v mysql)
duration=${BENCH_SECONDS:-10}
BENCH_DISTINCT_SECONDS=${BENCH_DISTINCT_SECONDS:-60}
cargo build --release -q -p gatherer --bin gatherer --example bare_http
bin=${CARGO_TARGET_DIR:-target}/release

rate() { # wrk output -> requests/s
  sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p'
}
run_wrk() { # url script [env...]
  local url=$1 script=$2
  shift 2
  env "$@" wrk -t2 -c64 -d"${duration}s" -s "$script" "$url"
}
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
wait_port() { until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do sleep 0.1; done; }

"$bin/examples/bare_http" 31299 & bare=$!
wait_port 31299
bare_rate=$(run_wrk http://127.0.0.1:31299/gather bench.lua | rate)
kill "$bare"

db="pulse_bench_ingest_$(date +%s)"
# The default configuration throughout, backlog bound included: it must cost nothing
# while MySQL keeps up.
start_gatherer() {
  DATABASE_URL="mysql://root@$MYSQL_HOST:$MYSQL_PORT/$db" RUST_LOG=warn "$bin/gatherer" --port 31298 & gatherer=$!
  wait_port 31298
}
start_gatherer
idle_rss=$(rss_kib "$gatherer")
single_rate=$(run_wrk http://127.0.0.1:31298/gather bench.lua | rate)
# Single events with an Idempotency-Key each, against without, in turns.
keyed_sum=$(run_wrk http://127.0.0.1:31298/gather scripts/bench/keyed.lua | rate)
keyless_sum=$(run_wrk http://127.0.0.1:31298/gather bench.lua | rate)
keyed_sum=$(echo "$keyed_sum + $(run_wrk http://127.0.0.1:31298/gather scripts/bench/keyed.lua | rate)" | bc -l)
keyless_sum=$(echo "$keyless_sum + $single_rate" | bc -l)
keys_held=$(curl -s http://127.0.0.1:31298/metrics | awk '$1 == "gatherer_idempotency_keys" {print $2}')
batch_rate=$(run_wrk http://127.0.0.1:31298/gather scripts/bench/ndjson.lua | rate)
few=$(run_wrk http://127.0.0.1:31298/gather scripts/bench/series.lua SERIES=100)
few_rate=$(rate <<<"$few")
many=$(run_wrk http://127.0.0.1:31298/gather scripts/bench/series.lua SERIES=1000000)
many_rate=$(rate <<<"$many")
peak_rss=$(rss_kib "$gatherer")
kill -TERM "$gatherer"
wait "$gatherer"

# NDJSON batches: the default configuration against the same gatherer with no backlog
# bound, both running, measured in turns (three runs each) so that drift of the machine
# falls on both alike.
start_gatherer
DATABASE_URL="mysql://root@$MYSQL_HOST:$MYSQL_PORT/$db" GATHERER__INGEST__MAX_PENDING_ROWS=1000000000000 \
  RUST_LOG=warn "$bin/gatherer" --port 31297 & unbounded=$!
wait_port 31297
bounded_sum=0
unbounded_sum=0
for _ in 1 2 3; do
  bounded_sum=$(echo "$bounded_sum + $(run_wrk http://127.0.0.1:31298/gather scripts/bench/ndjson.lua | rate)" | bc -l)
  unbounded_sum=$(echo "$unbounded_sum + $(run_wrk http://127.0.0.1:31297/gather scripts/bench/ndjson.lua | rate)" | bc -l)
done
refused_503=$(curl -s http://127.0.0.1:31298/metrics | awk '$1 == "gatherer_events_rejected_total{reason=\"backpressure\"}" {print $2}')
kill -TERM "$gatherer" "$unbounded"
wait "$gatherer" "$unbounded"

# 200 000 distinct series in every bucket for a minute: the backlog must not grow and a
# bucket's flush must stay well under the bucket width.
start_gatherer
metric() { curl -s http://127.0.0.1:31298/metrics | awk -v m="$1" '$1 == m {print $2}'; }
duration=$((BENCH_DISTINCT_SECONDS + 5)) run_wrk http://127.0.0.1:31298/gather scripts/bench/distinct.lua DISTINCT=200000 >/dev/null &
load=$!
# Pending rows include the open bucket, so they rise and fall with every bucket; a
# growing backlog shows as a higher peak in the last third of the run than in the first.
third=$((BENCH_DISTINCT_SECONDS / 3))
peak_first=0
peak_last=0
for ((second = 1; second <= BENCH_DISTINCT_SECONDS; second++)); do
  sleep 1
  pending=$(metric gatherer_pending_rows)
  pending=${pending%.*}
  pending=${pending:-0}
  ((second <= third && pending > peak_first)) && peak_first=$pending
  ((second > BENCH_DISTINCT_SECONDS - third && pending > peak_last)) && peak_last=$pending
done
kill "$load" 2>/dev/null || true
wait "$load" 2>/dev/null || true
accepted=$(metric gatherer_events_accepted_total)
flushes=$(metric gatherer_flush_seconds_count)
flush_sum=$(metric gatherer_flush_seconds_sum)
rows=$(metric gatherer_flushed_rows_total)
kill -TERM "$gatherer"
wait "$gatherer"

# The same single-event load with the write-ahead log on: every 200 waits for its fsync
# (batched across concurrent requests).
wal_dir=$(mktemp -d)
DATABASE_URL="mysql://root@$MYSQL_HOST:$MYSQL_PORT/$db" GATHERER__WAL__ENABLED=true GATHERER__WAL__DIR="$wal_dir" \
  RUST_LOG=warn "$bin/gatherer" --port 31298 & gatherer=$!
wait_port 31298
wal_rate=$(run_wrk http://127.0.0.1:31298/gather bench.lua | rate)
kill -TERM "$gatherer"
wait "$gatherer"
rm -rf "$wal_dir"

acknowledged() { # wrk output -> 2xx responses
  local total non2xx
  total=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' <<<"$1")
  non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' <<<"$1")
  echo $((total - ${non2xx:-0}))
}
acked=$(($(acknowledged "$few") + $(acknowledged "$many")))
in_table=$("$mysql_client" -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u root -N -e \
  "SELECT COALESCE(SUM(event_counter), 0) FROM events_count WHERE event_label LIKE 'series%'" "$db")
series_in_table=$("$mysql_client" -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u root -N -e \
  "SELECT COUNT(DISTINCT event_label, entity_id) FROM events_count WHERE event_label LIKE 'series%'" "$db")
"$mysql_client" -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u root -e "DROP DATABASE \`$db\`"

echo
echo "| ingest benchmark (wrk -t2 -c64 -d${duration}s) | figure | baseline in the same run | ratio | target |"
echo "| --- | --- | --- | --- | --- |"
printf '| single-event POST /gather (bench.lua), req/s | %.0f | bare actix handler: %.0f | %.2f | >= 0.8 |\n' \
  "$single_rate" "$bare_rate" "$(echo "$single_rate / $bare_rate" | bc -l)"
printf '| NDJSON batches of 1 000 events, events/s | %.0f | | | >= 2 000 000 |\n' "$(echo "$batch_rate * 1000" | bc -l)"
printf '| NDJSON batches, default configuration against no backlog bound, events/s (3 runs each, in turns; %s refused with 503) | %.0f | no bound: %.0f | %.2f | >= 0.95 |\n' \
  "${refused_503:-0}" "$(echo "$bounded_sum * 1000 / 3" | bc -l)" "$(echo "$unbounded_sum * 1000 / 3" | bc -l)" \
  "$(echo "$bounded_sum / $unbounded_sum" | bc -l)"
printf '| single-event POST /gather, every request with an Idempotency-Key of its own, req/s (2 runs each, in turns; %s keys held after) | %.0f | without the header: %.0f | %.2f | >= 0.9 |\n' \
  "${keys_held%.*}" "$(echo "$keyed_sum / 2" | bc -l)" "$(echo "$keyless_sum / 2" | bc -l)" "$(echo "$keyed_sum / $keyless_sum" | bc -l)"
printf '| single-event POST /gather with the write-ahead log on, req/s | %.0f | WAL off: %.0f | %.2f | cost reported |\n' \
  "$wal_rate" "$single_rate" "$(echo "$wal_rate / $single_rate" | bc -l)"
# Pending rows in buckets' worth (200 000 rows a bucket): the open bucket plus one being
# flushed is 2 at most when the flusher keeps up; a growing backlog would climb past that.
printf '| 200 000 distinct series per bucket for %d s (%d events): peak pending rows in buckets of rows, last third against first | %.2f | %.2f | %.2f | no growing backlog (at most 2: the open bucket and the one being flushed) |\n' \
  "$BENCH_DISTINCT_SECONDS" "${accepted%.*}" "$(echo "$peak_last / 200000" | bc -l)" \
  "$(echo "$peak_first / 200000" | bc -l)" "$(echo "$peak_last / $peak_first" | bc -l)"
# A bucket of 200 000 rows is flushed in several transactions (ingest.max_rows_per_batch).
per_bucket=$(echo "$flush_sum / ($rows / 200000)" | bc -l)
printf '| the same run: flush time per bucket of 200 000 rows (%d rows in %d transactions) | %.2f s | bucket: 2 s | %.2f | well under 2 s |\n' \
  "${rows%.*}" "${flushes%.*}" "$per_bucket" "$(echo "$per_bucket / 2" | bc -l)"
printf '| req/s over 1 000 000 distinct series against over 100 | %.0f | %.0f | %.2f | >= 0.8 |\n' \
  "$many_rate" "$few_rate" "$(echo "$many_rate / $few_rate" | bc -l)"
printf '| RSS idle / after the runs | %d KiB / %d KiB (%d series seen) | | | idle < 30 MB |\n' \
  "$idle_rss" "$peak_rss" "$series_in_table"
# wrk stops with up to one request in flight per connection: the gatherer may have
# accepted those (they are in the table) without wrk counting their replies. So the table
# holds between the acknowledged count and that plus 2 runs x 64 connections; fewer would
# be loss, more would be double counting.
echo "| loss: acknowledged value-1 events / their sum in events_count | $acked / $in_table | | | acknowledged <= table <= acknowledged + 128 in flight |"
if ((in_table < acked || in_table > acked + 128)); then
  echo "MISMATCH: $acked acknowledged, $in_table in the table" >&2
  exit 1
fi
