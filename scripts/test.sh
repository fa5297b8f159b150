#!/usr/bin/env bash
# The test gate: formatting, clippy with warnings as errors, and every test of the
# workspace against the real MySQL (each test creates and drops its own database).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/mysql.sh
ensure_mysql
export TEST_MYSQL_URL="${TEST_MYSQL_URL:-mysql://root@$MYSQL_HOST:$MYSQL_PORT}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
if command -v cargo-deny >/dev/null; then
  echo "== cargo deny (licences, bans, sources)"
  cargo deny --log-level error check licenses bans sources
fi
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
