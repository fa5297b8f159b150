#!/usr/bin/env bash
# Scores crates/detect on the Numenta Anomaly Benchmark development set.
#
#   scripts/nab.sh [METHOD]        METHOD: auto (default), three_sigma, last_point
#
# Builds detect-csv (release), runs it over every series listed in
# $NAB_DIR/data/labels/combined_windows.json (NAB_DIR defaults to ../shared/nab, relative to
# the repository), writes target/nab/<detector>/<category>/<detector>_<file>.csv, scores them
# with $NAB_DIR/nab_score.py and prints the three profiles' scores and the detector's speed.
# Extra arguments for detect-csv can be passed in DETECT_ARGS (e.g. DETECT_ARGS="--window 60").
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
NAB_DIR="${NAB_DIR:-$repo/../shared/nab}"
NAB_DIR="$(cd "$NAB_DIR" && pwd)"
method="${1:-auto}"
case "$method" in
  auto) detector=pulse ;;
  three_sigma|last_point) detector="pulse_${method}" ;;
  *) echo "unknown method: $method" >&2; exit 2 ;;
esac

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
cargo build --quiet --release -p detect --bin detect-csv
bin="$target_dir/release/detect-csv"

data="$NAB_DIR/data/data"
labels="$NAB_DIR/data/labels/combined_windows.json"
out="$repo/target/nab/$detector"
rm -rf "$out"
mkdir -p "$out"

mapfile -t files < <(python3 -c 'import json,sys; print("\n".join(sorted(json.load(open(sys.argv[1])))))' "$labels")
inputs=()
for f in "${files[@]}"; do inputs+=("$data/$f"); done

# One process over all files: detector time is measured inside, apart from CSV parsing.
# shellcheck disable=SC2086
if ! bench="$("$bin" --method "$method" --root "$data" --out-dir "$out" --prefix "${detector}_" \
  --bench ${DETECT_ARGS:-} "${inputs[@]}" 2>&1 >/dev/null)"; then
  echo "$bench" >&2
  exit 1
fi

echo "series: ${#files[@]}"
python3 "$NAB_DIR/nab_score.py" "$out" --data-root "$NAB_DIR/data" --json "$out/scores.json"
echo "speed: $bench"
