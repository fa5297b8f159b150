#!/usr/bin/env bash
# Galera benchmark: committed events/s and flushes/s of three gatherers under the same
# wrk load (NDJSON bodies of 1 000 events, scripts/bench/ndjson.lua, 64 connections split
# over the three), in one run: all three on a single-node MariaDB started with the nodes'
# settings but without wsrep (the baseline, 127.0.0.1:3320, private to this run), all
# three on node 1 of a three-node Galera cluster, and one on each node. For the cluster rounds it shows
# the certification failures and brute-force aborts (wsrep_local_cert_failures,
# wsrep_local_bf_aborts, summed over the nodes) per committed flush; each one is a flush
# transaction rolled back with a deadlock error and retried by its gatherer. Starts the
# cluster with scripts/galera.sh when it is not running (and stops it after). Called by
# scripts/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/mysql.sh
source scripts/galera.sh

if ! command -v wrk >/dev/null; then
  echo "installing wrk (apt-get install wrk)" >&2
  apt-get install -y -qq wrk >/dev/null
fi
if ! galera_available; then
  echo "Galera is not installed: apt-get install -y galera-4 rsync" >&2
  exit 1
fi
started_cluster=false
if [[ "$(galera_status_of 1 || true)" != 3$'\t'Synced ]]; then
  galera_start
  started_cluster=true
fi
mysql_client=$(command -v mariadb || command -v mysql)
duration=${BENCH_SECONDS:-20}
cargo build --release -q -p gatherer --bin gatherer
bin=${CARGO_TARGET_DIR:-target}/release
ports=(31291 31292 31293)
wait_port() { until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do sleep 0.1; done; }
sql() { # port database sql
  "$mysql_client" -h 127.0.0.1 -P "$1" -u root -N -B -e "$3" "$2" 2>/dev/null
}
wsrep_conflicts() { # sum over the nodes of cert failures + bf aborts: "cert bf"
  local n cert=0 bf=0 c b
  for n in 1 2 3; do
    read -r c b < <(sql "$(galera_port "$n")" "" \
      "SELECT SUM(IF(VARIABLE_NAME='WSREP_LOCAL_CERT_FAILURES', VARIABLE_VALUE, 0)), SUM(IF(VARIABLE_NAME='WSREP_LOCAL_BF_ABORTS', VARIABLE_VALUE, 0)) FROM information_schema.GLOBAL_STATUS")
    cert=$((cert + c))
    bf=$((bf + b))
  done
  echo "$cert $bf"
}

# round NAME READ_PORT SERVER_PORT... : three gatherers, gatherer i on SERVER_PORT i;
# prints "events/s flushes/s total-flushes" committed in the steady middle of the run, read on READ_PORT.
round() {
  local read_port=$1
  shift
  local db="pulse_bench_galera_$(date +%s%N)" pids=() loads=() i
  for i in 0 1 2; do
    env DATABASE_URL="mysql://root@127.0.0.1:$1/$db" RUST_LOG=error \
      "$bin/gatherer" --port "${ports[$i]}" >&2 &
    pids+=($!)
    wait_port "${ports[$i]}"
    shift
  done
  for i in 0 1 2; do
    wrk -t1 -c21 -d"${duration}s" -s scripts/bench/ndjson.lua "http://127.0.0.1:${ports[$i]}/gather" >/dev/null &
    loads+=($!)
  done
  sleep 3
  local e0 f0 t0 e1 f1 t1
  read -r e0 f0 < <(sql "$read_port" "$db" "SELECT (SELECT COALESCE(SUM(events), 0) FROM events_count), (SELECT COUNT(*) FROM flush_batches)")
  t0=$(date +%s.%N)
  sleep $((duration - 4))
  read -r e1 f1 < <(sql "$read_port" "$db" "SELECT (SELECT COALESCE(SUM(events), 0) FROM events_count), (SELECT COUNT(*) FROM flush_batches)")
  t1=$(date +%s.%N)
  wait "${loads[@]}"
  kill -TERM "${pids[@]}"
  wait "${pids[@]}"
  local flushes
  flushes=$(sql "$read_port" "$db" "SELECT COUNT(*) FROM flush_batches")
  sql "$read_port" "" "DROP DATABASE \`$db\`"
  echo "$(echo "($e1 - $e0) / ($t1 - $t0)" | bc -l) $(echo "($f1 - $f0) / ($t1 - $t0)" | bc -l) $flushes"
}

# The baseline: one MariaDB with the nodes' settings, wsrep off.
single_dir="$GALERA_DIR/single"
single_port=$((GALERA_PORT_BASE + 4))
rm -rf "$single_dir"
mkdir -p "$single_dir"
mariadb-install-db --no-defaults --datadir="$single_dir/data" --auth-root-authentication-method=normal \
  --skip-test-db >"$single_dir/install.log" 2>&1
/usr/sbin/mariadbd --no-defaults --user=root --datadir="$single_dir/data" --socket="$single_dir/mysqld.sock" \
  --pid-file="$single_dir/mariadbd.pid" --bind-address=127.0.0.1 --port="$single_port" \
  --binlog-format=ROW --innodb-autoinc-lock-mode=2 --innodb-flush-log-at-trx-commit=2 \
  --innodb-buffer-pool-size=128M --max-connections=500 >"$single_dir/mariadbd.log" 2>&1 &
single_pid=$!
wait_for_mysql 127.0.0.1 "$single_port" 60
n1=$(galera_port 1)
read -r single_events single_flushes _ < <(round "$single_port" "$single_port" "$single_port" "$single_port")
kill "$single_pid"
wait "$single_pid" || true
rm -rf "$single_dir"
before=$(wsrep_conflicts)
read -r one_events one_flushes one_total < <(round "$n1" "$n1" "$n1" "$n1")
after=$(wsrep_conflicts)
read -r one_cert one_bf < <(paste -d' ' <(echo "$after") <(echo "$before") | awk '{print $1 - $3, $2 - $4}')
before=$after
read -r three_events three_flushes three_total < <(round "$n1" "$n1" "$(galera_port 2)" "$(galera_port 3)")
after=$(wsrep_conflicts)
read -r three_cert three_bf < <(paste -d' ' <(echo "$after") <(echo "$before") | awk '{print $1 - $3, $2 - $4}')
$started_cluster && galera_stop

fmt() { printf '%.0f' "$1"; }
per_flush() { # conflicts flushes -> conflicts per 100 committed flushes
  echo "$1 * 100 / $2" | bc -l | xargs printf '%.1f'
}
echo "three gatherers, wrk -t1 -c21 each, ${duration} s, NDJSON bodies of 1 000 events:"
printf '  %-34s %10s events/s %7.1f flushes/s\n' \
  "one MariaDB, no wsrep (baseline)" "$(fmt "$single_events")" "$single_flushes"
printf '  %-34s %10s events/s %7.1f flushes/s  %.2fx  cert failures %s, bf aborts %s (%s per 100 committed flushes)\n' \
  "Galera, all writers on node 1" "$(fmt "$one_events")" "$one_flushes" \
  "$(echo "$one_events / $single_events" | bc -l)" "$one_cert" "$one_bf" \
  "$(per_flush $((one_cert + one_bf)) "$one_total")"
printf '  %-34s %10s events/s %7.1f flushes/s  %.2fx  cert failures %s, bf aborts %s (%s per 100 committed flushes)\n' \
  "Galera, one writer on each node" "$(fmt "$three_events")" "$three_flushes" \
  "$(echo "$three_events / $single_events" | bc -l)" "$three_cert" "$three_bf" \
  "$(per_flush $((three_cert + three_bf)) "$three_total")"
