# Sourced by test.sh: what the tests need besides MySQL (scripts/mysql.sh), checked
# (check_prerequisites, for --check) or set up (set_up_prerequisites).
#
# The Rust toolchain with rustfmt and clippy is checked, never installed. The dashboard's
# browser test (crates/analyser/tests/api/dashboard.rs) needs Chromium, Node.js 18 or later
# and npm, installed from Debian when missing, and its npm packages (Playwright), installed
# with npm ci when node_modules is missing or was installed from another package-lock.json.

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
      echo "install  ${MISSING_PACKAGES[*]} (Debian packages, for the dashboard's browser test): ${runner:+$runner }apt-get install -y ${MISSING_PACKAGES[*]}"
    else
      echo "missing  ${MISSING_PACKAGES[*]} (for the dashboard's browser test): run sudo apt-get install -y ${MISSING_PACKAGES[*]}"
      ok=false
    fi
  else
    echo "ok       chromium, node $(node --version), npm $(npm --version)"
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
      echo "The dashboard's browser test needs ${MISSING_PACKAGES[*]}: run sudo apt-get install -y ${MISSING_PACKAGES[*]}" >&2
      return 1
    fi
    echo "== installing ${MISSING_PACKAGES[*]} from Debian for the dashboard's browser test (apt-get)"
    $runner apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $runner apt-get install -y -qq "${MISSING_PACKAGES[@]}" >/dev/null
  fi
  reason=$(npm_ci_reason)
  if [[ -n $reason ]]; then
    echo "== installing the browser test's npm packages ($reason): npm ci in $E2E_DIR"
    (cd "$E2E_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$E2E_DIR/package-lock.json" "$E2E_STAMP"
  fi
}
