# Sourced by run.sh, test.sh and .ci/run: make sure a MySQL-compatible server answers.
#
# ensure_mysql sets MYSQL_HOST and MYSQL_PORT. In order: the host and port of
# DATABASE_URL if it is set, else 127.0.0.1:3306 if it answers, else the system's MariaDB
# started as a daemon (with CI=true or PULSE_SYSTEM_MYSQL=1), else a private mariadbd in
# var/mysql, else it says exactly what to install. mysql_plan says which, doing nothing.

mysql_answers() { # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

wait_for_mysql() { # host port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    mysql_answers "$1" "$2" && return 0
    sleep 0.1
  done
  echo "MySQL at $1:$2 did not answer within $3 s" >&2
  return 1
}

ensure_mysql() {
  MYSQL_HOST=127.0.0.1
  MYSQL_PORT=3306
  if [[ -n "${DATABASE_URL:-}" ]]; then
    local hostport=${DATABASE_URL#*://}
    hostport=${hostport#*@}
    hostport=${hostport%%/*}
    MYSQL_HOST=${hostport%%:*}
    [[ $hostport == *:* ]] && MYSQL_PORT=${hostport##*:}
    wait_for_mysql "$MYSQL_HOST" "$MYSQL_PORT" 30
    return
  fi
  mysql_answers "$MYSQL_HOST" "$MYSQL_PORT" && return 0
  if [[ ! -x /usr/sbin/mariadbd ]]; then
    if [[ "${CI:-}" == true ]] && command -v apt-get >/dev/null; then
      echo "installing MariaDB (apt-get install mariadb-server)" >&2
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
    else
      echo "No MySQL answers on 127.0.0.1:3306 and MariaDB is not installed." >&2
      echo "Install it (Debian/Ubuntu: sudo apt-get install -y mariadb-server), or set" >&2
      echo "DATABASE_URL=mysql://USER:PASSWORD@HOST:PORT/pulse to use a server you have." >&2
      return 1
    fi
  fi
  if [[ "${CI:-}" == true || "${PULSE_SYSTEM_MYSQL:-}" == 1 ]]; then
    echo "starting the system MariaDB" >&2
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_for_mysql "$MYSQL_HOST" "$MYSQL_PORT" 60
    return
  fi
  local dir="$PWD/var/mysql"
  if [[ ! -d "$dir/data/mysql" ]]; then
    echo "creating a private MariaDB in $dir" >&2
    mkdir -p "$dir"
    mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
      --skip-test-db >"$dir/install.log" 2>&1
  fi
  echo "starting a private MariaDB on 127.0.0.1:3306 (data in $dir, log in $dir/mariadbd.log)" >&2
  /usr/sbin/mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/mysqld.sock" \
    --pid-file="$dir/mariadbd.pid" --bind-address=127.0.0.1 --port=3306 \
    --user="$(id -un)" >"$dir/mariadbd.log" 2>&1 &
  wait_for_mysql "$MYSQL_HOST" "$MYSQL_PORT" 60
}

# One line: what ensure_mysql would do; returns 1 when it could not get a server.
mysql_plan() {
  if [[ -n "${DATABASE_URL:-}" ]]; then
    local hostport=${DATABASE_URL#*://}
    hostport=${hostport#*@}
    hostport=${hostport%%/*}
    local host=${hostport%%:*} port=3306
    [[ $hostport == *:* ]] && port=${hostport##*:}
    if mysql_answers "$host" "$port"; then
      echo "ok       MySQL at $host:$port (DATABASE_URL)"
    else
      echo "missing  MySQL at $host:$port (DATABASE_URL) does not answer"
      return 1
    fi
  elif mysql_answers 127.0.0.1 3306; then
    echo "ok       MySQL at 127.0.0.1:3306"
  elif [[ ! -x /usr/sbin/mariadbd ]]; then
    if [[ "${CI:-}" == true ]] && command -v apt-get >/dev/null; then
      echo "install  MariaDB (apt-get install mariadb-server), then start it"
    else
      echo "missing  MySQL: none answers on 127.0.0.1:3306 and MariaDB is not installed: run sudo apt-get install -y mariadb-server, or set DATABASE_URL"
      return 1
    fi
  elif [[ "${CI:-}" == true || "${PULSE_SYSTEM_MYSQL:-}" == 1 ]]; then
    echo "start    the system MariaDB"
  else
    echo "start    a private MariaDB on 127.0.0.1:3306 with its data in var/mysql"
  fi
}
