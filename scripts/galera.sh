#!/usr/bin/env bash
# A three-node MariaDB Galera cluster on this machine, for the cluster tests and benchmark.
#
#   scripts/galera.sh start    start it (or find it running) and print the nodes' URLs
#   scripts/galera.sh stop     stop every node and remove the data
#   scripts/galera.sh status   each node's cluster size and state
#   scripts/galera.sh stop-node N / start-node N   stop or restart one node (1-3)
#
# Sourced (by test.sh and bench.sh), it defines galera_available, galera_start, galera_stop
# and sets GALERA_URLS (the three nodes' URLs, space-separated) after galera_start.
#
# Nodes listen on 127.0.0.1:3317-3319 (GALERA_PORT_BASE+1..3 chooses others); the Galera
# replication ports are 4567+, the incremental state transfer ports 4577+, all on 127.0.0.1.
# Data lives in a temporary directory (GALERA_DIR, default /tmp/pulse-galera), owned by the
# mysql user: joining nodes receive their state with rsync, whose daemon runs as the node's
# user and cannot write files owned by root. Settings Galera needs: binlog_format=ROW,
# innodb_autoinc_lock_mode=2 (see docs/SCALING.md).

GALERA_DIR=${GALERA_DIR:-/tmp/pulse-galera}
GALERA_PORT_BASE=${GALERA_PORT_BASE:-3316}
GALERA_PROVIDER=${GALERA_PROVIDER:-/usr/lib/galera/libgalera_smm.so}

galera_port() { echo $((GALERA_PORT_BASE + $1)); }

galera_urls() {
  local n urls=()
  for n in 1 2 3; do urls+=("mysql://root@127.0.0.1:$(galera_port "$n")"); done
  echo "${urls[*]}"
}

# Galera and rsync installed, and a mysql user to run the nodes as.
galera_available() {
  [[ -f $GALERA_PROVIDER ]] && command -v rsync >/dev/null && command -v mariadb-install-db >/dev/null \
    && id mysql >/dev/null 2>&1
}

galera_sql() { # node sql
  mariadb --protocol=tcp -h 127.0.0.1 -P "$(galera_port "$1")" -u root -N -B -e "$2" 2>/dev/null
}

galera_status_of() { # node -> "size state" or nothing
  galera_sql "$1" "SELECT (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='wsrep_cluster_size'), (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME='wsrep_local_state_comment')"
}

galera_wait_synced() { # node size seconds
  local i
  for ((i = 0; i < $3 * 5; i++)); do
    [[ "$(galera_status_of "$1")" == "$2"$'\t'Synced ]] && return 0
    sleep 0.2
  done
  echo "Galera node $1 did not reach cluster size $2, Synced, within $3 s (log: $GALERA_DIR/node$1/mariadbd.log)" >&2
  return 1
}

galera_start_node() { # node [--wsrep-new-cluster]
  local n=$1 dir="$GALERA_DIR/node$1"
  local peers="127.0.0.1:4567,127.0.0.1:4568,127.0.0.1:4569"
  if [[ ! -d "$dir/data/mysql" ]]; then
    mkdir -p "$dir"
    chown mysql: "$GALERA_DIR" "$dir"
    mariadb-install-db --no-defaults --datadir="$dir/data" --user=mysql \
      --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1
  fi
  chown -R mysql: "$dir"
  /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$dir/data" \
    --socket="$dir/mysqld.sock" --pid-file="$dir/mariadbd.pid" \
    --bind-address=127.0.0.1 --port="$(galera_port "$n")" \
    --binlog-format=ROW --innodb-autoinc-lock-mode=2 --innodb-flush-log-at-trx-commit=2 \
    --innodb-buffer-pool-size=128M --max-connections=500 \
    --wsrep-on=ON --wsrep-provider="$GALERA_PROVIDER" --wsrep-cluster-name=pulse \
    --wsrep-node-name="node$n" --wsrep-node-address="127.0.0.1:$((4566 + n))" \
    --wsrep-cluster-address="gcomm://$peers" --wsrep-sst-method=rsync \
    --wsrep-sst-receive-address="127.0.0.1:$((4443 + n))" \
    --wsrep-provider-options="gmcast.listen_addr=tcp://127.0.0.1:$((4566 + n));ist.recv_addr=127.0.0.1:$((4576 + n))" \
    "${@:2}" >>"$dir/mariadbd.log" 2>&1 &
}

galera_stop_node() { # node
  local pidfile="$GALERA_DIR/node$1/mariadbd.pid" pid i
  [[ -f $pidfile ]] || return 0
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

galera_start() {
  if ! galera_available; then
    echo "Galera is not installed (apt-get install -y galera-4 rsync)" >&2
    return 1
  fi
  local n running=0
  for n in 1 2 3; do
    [[ "$(galera_status_of "$n")" == 3$'\t'Synced ]] && running=$((running + 1))
  done
  if ((running < 3)); then
    galera_stop
    mkdir -p "$GALERA_DIR"
    echo "starting a three-node Galera cluster on 127.0.0.1:$(galera_port 1)-$(galera_port 3) (data and logs in $GALERA_DIR)" >&2
    galera_start_node 1 --wsrep-new-cluster
    galera_wait_synced 1 1 60 || return 1
    galera_start_node 2
    galera_wait_synced 2 2 120 || return 1
    galera_start_node 3
    galera_wait_synced 3 3 120 || return 1
  fi
  GALERA_URLS=$(galera_urls)
  export GALERA_URLS
}

galera_stop() {
  local n
  for n in 3 2 1; do galera_stop_node "$n"; done
  [[ -d $GALERA_DIR ]] && rm -rf "$GALERA_DIR"
  return 0
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  case ${1:-} in
    start)
      galera_start
      echo "$GALERA_URLS" | tr ' ' '\n'
      ;;
    stop) galera_stop ;;
    status)
      for n in 1 2 3; do
        s=$(galera_status_of "$n" || true)
        echo "node $n  127.0.0.1:$(galera_port "$n")  ${s:-down}"
      done
      ;;
    stop-node) galera_stop_node "${2:?node 1-3}" ;;
    start-node)
      galera_start_node "${2:?node 1-3}"
      galera_wait_synced "$2" 3 120
      ;;
    *)
      echo "usage: scripts/galera.sh start|stop|status|stop-node N|start-node N" >&2
      exit 2
      ;;
  esac
fi
