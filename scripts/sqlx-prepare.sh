#!/usr/bin/env bash
# The query data of the compile-time-checked SQL (`sqlx::query!` and its kin), kept in .sqlx/
# so that a build needs no database (.cargo/config.toml sets SQLX_OFFLINE=true).
#
#   scripts/sqlx-prepare.sh           write .sqlx/ afresh: run it after changing a query
#                                     or a migration, and commit what it writes
#   scripts/sqlx-prepare.sh --check   fail if .sqlx/ is not what the queries need now
#
# The queries are checked against a scratch database holding both services' schemas: every
# migration of migrations/gatherer and then of migrations/analyser (their tables do not
# overlap), applied with the MySQL client. The database is dropped on exit. Needs sqlx-cli
# (cargo install --locked sqlx-cli --no-default-features --features mysql,rustls).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=()
case ${1:-} in
  "") ;;
  --check) mode=(--check) ;;
  *) echo "usage: scripts/sqlx-prepare.sh [--check]" >&2; exit 2 ;;
esac

source scripts/mysql.sh
ensure_mysql
client=$(command -v mariadb || command -v mysql) || {
  echo "the MySQL client (mariadb or mysql) is needed to migrate the scratch database" >&2
  exit 1
}
run=${PULSE_TEST_RUN:-$(printf '%08x' "$(((RANDOM << 16 ^ RANDOM ^ $$ << 8) & 0xffffffff))")}
# Named like the tests' databases, so a run's check of what it left and the hourly sweep
# of a killed run's leftovers both see it.
db="pulse_test_sqlx_${run}_$(date +%s)_$(printf '%08x' "$(((RANDOM << 16 ^ RANDOM) & 0xffffffff))")"
sql() { "$client" -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u root "$@"; }
trap 'sql -e "DROP DATABASE IF EXISTS \`$db\`"' EXIT
sql -e "CREATE DATABASE \`$db\`"
for file in migrations/gatherer/*.sql migrations/analyser/*.sql; do
  sql "$db" <"$file"
done
DATABASE_URL="mysql://root@$MYSQL_HOST:$MYSQL_PORT/$db" \
  cargo sqlx prepare --workspace "${mode[@]}" -- --all-targets --locked
