#!/usr/bin/env bash
# Benchmarks: each starts what it measures and prints its figures as ratios against a
# baseline measured in the same run. Needs MySQL (see scripts/mysql.sh).
#
#   scripts/bench.sh            everything
#   scripts/bench.sh export     one part
#   scripts/bench.sh galera     the Galera cluster (not in "everything": it needs galera-4)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mysql.sh
ensure_mysql
export BENCH_MYSQL_URL="${BENCH_MYSQL_URL:-mysql://root@$MYSQL_HOST:$MYSQL_PORT}"
parts=("$@")
[[ $# -eq 0 ]] && parts=(aggregate ingest instructions nats export analyser detect)

for part in "${parts[@]}"; do
  case $part in
    aggregate)
      echo "== aggregate: events/s per core through the aggregator, heap bytes per open series"
      cargo bench -p gatherer --bench aggregate
      ;;
    instructions)
      echo "== instructions: per request under callgrind, against the bare handler and as series grow"
      scripts/bench/instructions.sh
      ;;
    export)
      echo "== export: rows/s, page cost by depth, cost of the ordering lock"
      cargo bench -p gatherer --bench export
      ;;
    ingest)
      echo "== ingest: the gatherer against a bare actix handler, batches, series, memory, loss"
      scripts/bench/ingest.sh
      ;;
    nats)
      echo "== nats: events/s from JetStream into MySQL against HTTP NDJSON"
      scripts/bench/nats.sh
      ;;
    analyser)
      echo "== analyser: pull throughput, /api/v1/state latency, live detection latency"
      cargo bench -p analyser --bench analyser
      ;;
    galera)
      echo "== galera: events/s and flushes/s with writers on one node and on three of a Galera cluster, beside single-node MariaDB"
      scripts/bench/galera.sh
      ;;
    detect)
      echo "== detect: points/s of auto and three_sigma against a plain EWMA baseline"
      cargo bench -p detect --bench detect
      ;;
    *)
      echo "unknown part: $part" >&2
      exit 2
      ;;
  esac
done
