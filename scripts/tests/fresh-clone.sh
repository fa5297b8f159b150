#!/usr/bin/env bash
# A fresh clone of this repository's HEAD has the README's two commands, executable, and
# `scripts/test.sh --check` there passes and plans the set-up a clone needs itself (the
# browser test's npm packages), so that the README's test command cannot come to depend on
# a step only CI takes.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! head=$(git rev-parse --verify HEAD 2>/dev/null); then
  echo "not a git checkout: no fresh clone to check"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git clone --quiet --no-checkout "$PWD" "$tmp/pulse"
git -C "$tmp/pulse" checkout --quiet --detach "$head"
cd "$tmp/pulse"
for script in scripts/run.sh scripts/test.sh; do
  [[ -x $script ]] || { echo "FAIL: $script is not executable in a fresh clone"; exit 1; }
done
scripts/run.sh --help >/dev/null || { echo "FAIL: scripts/run.sh --help failed in a fresh clone"; exit 1; }
if ! plan=$(scripts/test.sh --check 2>&1); then
  printf '%s\n' "$plan"
  echo "FAIL: scripts/test.sh --check failed in a fresh clone of $head"
  exit 1
fi
printf '%s\n' "$plan" | sed 's/^/  /'
if ! grep -q "^install  the browser test's npm packages (node_modules is missing)" <<<"$plan"; then
  echo "FAIL: in a fresh clone, scripts/test.sh --check does not plan the npm packages' install"
  exit 1
fi
echo "ok: a fresh clone of $head sets itself up"
