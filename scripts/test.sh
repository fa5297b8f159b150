#!/usr/bin/env bash
# The test gate: formatting, clippy with warnings as errors, cargo deny, cargo machete, the
# compile-time-checked SQL's query data, and every test of the workspace against the real
# MySQL (each test creates and drops its own database).
# It sets up what the tests need first, on a fresh clone too; see --help.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<'TXT'
usage: scripts/test.sh [--check]

Runs the gate: cargo fmt --check, clippy -D warnings, cargo deny, cargo machete and
cargo sqlx prepare --check (scripts/sqlx-prepare.sh; each of the three when installed),
every test of the workspace, then checks of the scripts themselves (a fresh clone's
--check, scripts/run.sh on other ports and SIGTERM, the demo's databases dropped on exit)
and that the run left no test database behind.

First it sets up what the tests need, saying so in one line for each thing it installs:
  - MySQL on 127.0.0.1:3306 (or TEST_MYSQL_URL / DATABASE_URL): a private MariaDB in
    var/mysql when none answers (scripts/mysql.sh);
  - Chromium, Node.js and npm for the dashboard's browser test: apt-get install when
    missing (as root, or with sudo that needs no password), else it says what to run;
  - the browser test's npm packages: npm ci in crates/analyser/tests/e2e when
    node_modules is missing or was installed from another package-lock.json;
  - a three-node Galera cluster (scripts/galera.sh) for the cluster tests, stopped at the
    end, when galera-4 and rsync are installed and this runs as root; else those tests
    say that they did not run.

  --check    dry run: report each prerequisite and what would be installed, install and
             run nothing; exit 1 if something is missing that this script cannot install
  -h, --help this text

Environment: TEST_MYSQL_URL (server for the tests' databases), CHROMIUM (browser binary,
default /usr/bin/chromium), CARGO_TARGET_DIR.
TXT
}

check_only=false
for arg in "$@"; do
  case $arg in
    --check) check_only=true ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

source scripts/mysql.sh
source scripts/prerequisites.sh
source scripts/galera.sh

if [[ $check_only == true ]]; then
  check_prerequisites
  exit
fi

set_up_prerequisites
ensure_mysql
export TEST_MYSQL_URL="${TEST_MYSQL_URL:-mysql://root@$MYSQL_HOST:$MYSQL_PORT}"
# Every test database of this run carries this id, so that the end of the run can tell
# whether it left any behind, whatever other runs share the server.
PULSE_TEST_RUN=$(printf '%08x' "$(((RANDOM << 16 ^ RANDOM ^ $$ << 8) & 0xffffffff))")
export PULSE_TEST_RUN

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
if command -v cargo-deny >/dev/null; then
  echo "== cargo deny (licences, bans, sources)"
  cargo deny --log-level error check licenses bans sources
else
  echo "== cargo deny: not installed, skipped (cargo install --locked cargo-deny)"
fi
if command -v cargo-machete >/dev/null; then
  echo "== cargo machete (dependencies no crate uses)"
  cargo machete
else
  echo "== cargo machete: not installed, skipped (cargo install --locked cargo-machete)"
fi
if command -v cargo-sqlx >/dev/null; then
  echo "== cargo sqlx prepare --check (.sqlx/ matches the queries, against both services' schemas)"
  scripts/sqlx-prepare.sh --check
else
  echo "== cargo sqlx prepare --check: sqlx-cli not installed, skipped (cargo install --locked sqlx-cli --no-default-features --features mysql,rustls)"
fi

status=0
if galera_available && [[ $(id -u) == 0 ]]; then
  echo "== a three-node Galera cluster for the cluster tests"
  if galera_start; then
    export PULSE_GALERA_URLS=$GALERA_URLS GALERA_DIR
    trap galera_stop EXIT
  else
    echo "the Galera cluster did not start; its tests will say that they did not run" >&2
    status=1
  fi
else
  echo "== Galera cluster tests: skipped (they need galera-4 and rsync installed, and root: apt-get install -y galera-4 rsync)"
fi
echo "== cargo test (run $PULSE_TEST_RUN)"
cargo test --workspace --locked --no-fail-fast || status=1

# The binaries the tests just built serve the scripts' checks: scripts/run.sh builds the
# same set (scripts/build.sh), so its build below finds everything up to date.
echo "== a fresh clone: scripts/test.sh --check"
scripts/tests/fresh-clone.sh || status=1
echo "== scripts/run.sh on other ports, stopped by SIGTERM"
scripts/tests/run-ports.sh || status=1
echo "== scripts/run.sh --demo drops its databases on exit, keeps them with --keep"
scripts/tests/demo-databases.sh || status=1

echo "== test databases left behind"
"$(source scripts/build.sh && pulse_bin_dir)/test-databases" left "$PULSE_TEST_RUN" || status=1
exit $status
