# Sourced by test.sh: what the tests need besides MySQL (scripts/mysql.sh), checked
# (check_prerequisites, for --check) or set up (set_up_prerequisites).
#
# The Rust toolchain with rustfmt and clippy is checked, never installed. The dashboard's
# browser test (crates/analyser/tests/api/dashboard.rs) needs Chromium, Node.js 18 or later
# and npm, installed from Debian when missing, and its npm packages (Playwright), installed
# with npm ci when node_modules is missing or was installed from another package-lock.json.
# The gatherer's NATS tests (crates/gatherer/tests/api/nats.rs) need nats-server: a
# JetStream server on 127.0.0.1:4222 (or TEST_NATS_URL), and the binary itself for a
# private server that takes 16 MiB messages; installed from Debian when missing, and
# started (its store under the target directory) when none answers.

E2E_DIR=crates/analyser/tests/e2e
# Written after a successful npm ci: the package-lock.json node_modules was installed from.
E2E_STAMP=$E2E_DIR/node_modules/.installed-from-package-lock.json

# Sets MISSING_TOOLS (what no installer here provides, with what to run) and
# MISSING_PACKAGES (Debian packages the browser test needs).
find_missing() {
  MISSING_TOOLS=()
  MISSING_PACKAGES=()
  command -v cargo >/dev/null ||
    MISSING_TOOLS+=("cargo: install Rust (https://rustup.rs)")
  if command -v cargo >/dev/null; then
    cargo fmt --version >/dev/null 2>&1 ||
      MISSING_TOOLS+=("rustfmt: rustup component add rustfmt")
    cargo clippy --version >/dev/null 2>&1 ||
      MISSING_TOOLS+=("clippy: rustup component add clippy")
  fi
  if [[ -n "${CHROMIUM:-}" ]]; then
    [[ -x $CHROMIUM ]] || MISSING_TOOLS+=("CHROMIUM=$CHROMIUM is not an executable file")
  elif [[ ! -x /usr/bin/chromium ]]; then
    MISSING_PACKAGES+=(chromium)
  fi
  if ! command -v node >/dev/null; then
    MISSING_PACKAGES+=(nodejs)
  else
    local major
    major=$(node --version | sed 's/^v\([0-9]*\).*/\1/')
    ((major >= 18)) ||
      MISSING_TOOLS+=("node $(node --version) is too old: Playwright needs Node.js 18 or later")
  fi
  command -v npm >/dev/null || MISSING_PACKAGES+=(npm)
  command -v nats-server >/dev/null || MISSING_PACKAGES+=(nats-server)
}

# Whether a NATS server answers where the tests look for one.
nats_answers() {
  [[ -n "${TEST_NATS_URL:-}" ]] || (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null
}

# How this user can run apt-get install: "" (as root), "sudo", or nothing (return 1).
apt_runner() {
  command -v apt-get >/dev/null || return 1
  if ((EUID == 0)); then
    echo ""
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    echo sudo
  else
    return 1
  fi
}

# Why the browser test's npm packages need installing, or nothing when they are current.
npm_ci_reason() {
  if [[ ! -d $E2E_DIR/node_modules ]]; then
    echo "node_modules is missing"
  elif ! cmp -s "$E2E_DIR/package-lock.json" "$E2E_STAMP"; then
    echo "node_modules was installed from another package-lock.json"
  fi
}

check_prerequisites() {
  local ok=true line reason runner
  find_missing
  for line in "${MISSING_TOOLS[@]}"; do
    echo "missing  $line"
    ok=false
  done
  if ((${#MISSING_TOOLS[@]} == 0)); then
    echo "ok       cargo, rustfmt, clippy"
  fi
  if ((${#MISSING_PACKAGES[@]})); then
    if runner=$(apt_runner); then
      echo "install  ${MISSING_PACKAGES[*]} (Debian packages, for the browser and NATS tests): ${runner:+$runner }apt-get install -y ${MISSING_PACKAGES[*]}"
    else
      echo "missing  ${MISSING_PACKAGES[*]} (for the browser and NATS tests): run sudo apt-get install -y ${MISSING_PACKAGES[*]}"
      ok=false
    fi
  else
    echo "ok       chromium, node $(node --version), npm $(npm --version), nats-server"
  fi
  if nats_answers; then
    echo "ok       NATS answers on ${TEST_NATS_URL:-127.0.0.1:4222}"
  else
    echo "start    nats-server -js on 127.0.0.1:4222, its store in the target directory"
  fi
  reason=$(npm_ci_reason)
  if [[ -n $reason ]]; then
    echo "install  the browser test's npm packages ($reason): npm ci in $E2E_DIR"
  else
    echo "ok       the browser test's npm packages ($E2E_DIR/node_modules)"
  fi
  mysql_plan || ok=false
  if command -v cargo-deny >/dev/null; then
    echo "ok       cargo-deny"
  else
    echo "skip     cargo-deny is not installed: its check is skipped (cargo install --locked cargo-deny)"
  fi
  if command -v cargo-machete >/dev/null; then
    echo "ok       cargo-machete"
  else
    echo "skip     cargo-machete is not installed: its check is skipped (cargo install --locked cargo-machete)"
  fi
  if command -v cargo-sqlx >/dev/null; then
    echo "ok       sqlx-cli (the .sqlx/ query data check)"
  else
    echo "skip     sqlx-cli is not installed: the .sqlx/ query data check is skipped (cargo install --locked sqlx-cli --no-default-features --features mysql,rustls)"
  fi
  [[ $ok == true ]]
}

set_up_prerequisites() {
  local line reason runner
  find_missing
  if ((${#MISSING_TOOLS[@]})); then
    for line in "${MISSING_TOOLS[@]}"; do
      echo "missing $line" >&2
    done
    return 1
  fi
  if ((${#MISSING_PACKAGES[@]})); then
    if ! runner=$(apt_runner); then
      echo "The browser and NATS tests need ${MISSING_PACKAGES[*]}: run sudo apt-get install -y ${MISSING_PACKAGES[*]}" >&2
      return 1
    fi
    echo "== installing ${MISSING_PACKAGES[*]} from Debian for the browser and NATS tests (apt-get)"
    $runner apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $runner apt-get install -y -qq "${MISSING_PACKAGES[@]}" >/dev/null
  fi
  reason=$(npm_ci_reason)
  if [[ -n $reason ]]; then
    echo "== installing the browser test's npm packages ($reason): npm ci in $E2E_DIR"
    (cd "$E2E_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$E2E_DIR/package-lock.json" "$E2E_STAMP"
  fi
  if ! nats_answers; then
    local store="${CARGO_TARGET_DIR:-target}/nats"
    echo "== starting nats-server with JetStream on 127.0.0.1:4222 (store $store, log $store/server.log)"
    mkdir -p "$store"
    nats-server -a 127.0.0.1 -p 4222 -js -sd "$store" >"$store/server.log" 2>&1 &
    for _ in $(seq 50); do
      nats_answers && break
      sleep 0.1
    done
    nats_answers || { echo "nats-server did not start: see $store/server.log" >&2; return 1; }
  fi
}
