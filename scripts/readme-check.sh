#!/usr/bin/env bash
# Runs the README's shell examples, as written, against scripts/run.sh --demo.
#
#   scripts/readme-check.sh [FILE.md]     (default README.md)
#
# Every block fenced as ```sh runs, in order, in one bash with -euo pipefail, from the
# repository's root; curl fails on an HTTP error (--fail-with-body), so a 4xx is a failed
# example, not a reply that merely looks like one. A block fenced as ```sh no-run is shown
# and skipped (the README's own two commands: they would start a second system, or this
# check inside itself). The demo runs with its settings, logs and run.env in a directory of
# its own, on 31115 and 31116, or on two free ports (written into the examples) when
# something else has those. It waits for the demo's first alarm before the examples run (a
# few minutes), and the demo's databases are dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
readme=${1:-README.md}
command -v jq >/dev/null || { echo "the README's examples use jq: install it (sudo apt-get install -y jq)" >&2; exit 1; }

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    answers "$port" || { echo "$port"; return; }
  done
}
gport=31115 aport=31116
if answers $gport || answers $aport; then
  gport=$(free_port)
  aport=$(free_port)
  echo "31115 or 31116 is taken: the demo runs on $gport and $aport, and the examples with them"
fi

tmp=$(mktemp -d)
export PULSE_VAR_DIR=$tmp/var
run_pid=""
finish() {
  if [[ -n $run_pid ]]; then
    kill -TERM "$run_pid" 2>/dev/null || true
    for _ in $(seq 600); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$run_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap finish EXIT
GATHERER__SERVER__PORT=$gport ANALYSER__SERVER__PORT=$aport setsid scripts/run.sh --demo >"$tmp/run.out" 2>&1 &
run_pid=$!

wait_for() { # seconds what command...
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)) || ! kill -0 "$run_pid" 2>/dev/null; then
      echo "FAIL: no $what; scripts/run.sh --demo said:" >&2
      cat "$tmp/run.out" >&2
      exit 1
    fi
    sleep 1
  done
}
wait_for 600 "demo (build, start)" grep -q "^  analyser   http://" "$tmp/run.out"
echo "demo started; waiting for its first alarm (the first anomaly starts 90 s after the backfill)"
alarm() {
  local password
  password=$(scripts/pulse password)
  [[ $(curl -sf -u "analyst:$password" "localhost:$aport/api/v1/state?severity=alarm&limit=1" |
    jq '.data | length') -gt 0 ]]
}
wait_for 600 "alarm from the demo within 10 minutes" alarm

# The sh blocks, each as "LINE<TAB>info" then its lines, separated by NUL.
blocks=$tmp/blocks
mkdir -p "$blocks"
awk -v dir="$blocks" '
  /^```sh/ { n++; info = substr($0, 6); file = sprintf("%s/%03d", dir, n);
             print NR "\t" info > (file ".meta"); inside = 1; next }
  /^```/ && inside { inside = 0; close(file); next }
  inside { print > file }
' "$readme"

curl_fails_on_http_errors='curl() { command curl --fail-with-body "$@"; }'
ran=0 skipped=0 failed=0
for meta in "$blocks"/*.meta; do
  block=${meta%.meta}
  IFS=$'\t' read -r line info <"$meta"
  if [[ $info == *no-run* ]]; then
    echo "skip  $readme:$line (no-run)"
    skipped=$((skipped + 1))
    continue
  fi
  sed -i "s/:31115\b/:$gport/g; s/:31116\b/:$aport/g" "$block"
  if output=$(bash -euo pipefail -c "$curl_fails_on_http_errors
$(cat "$block")" 2>&1); then
    echo "ok    $readme:$line"
    ran=$((ran + 1))
  else
    echo "FAIL  $readme:$line"
    sed 's/^/      | /' "$block"
    echo "      output:"
    printf '%s\n' "$output" | tail -n 15 | sed 's/^/      > /'
    failed=$((failed + 1))
  fi
done
echo "$ran examples ran, $failed failed, $skipped not run"
((failed == 0 && ran > 0))
