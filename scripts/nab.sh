#!/usr/bin/env bash
# Scores crates/detect on the Numenta Anomaly Benchmark development set.
#
#   scripts/nab.sh [METHOD]        METHOD: auto (default), three_sigma, last_point
#   scripts/nab.sh --cv            leave-one-category-out table for auto, with the published
#                                  leaders beside it, plus the Microsoft cloud-monitoring
#                                  corpus (auto and three_sigma) and the stress families
#
# Builds detect-csv (release), runs it over every series listed in
# $NAB_DIR/data/labels/combined_windows.json (NAB_DIR defaults to ../shared/nab, relative to
# the repository), writes target/nab/<detector>/<category>/<detector>_<file>.csv, scores them
# with $NAB_DIR/nab_score.py and prints the three profiles' scores and the detector's speed.
# --cv also needs MS_DIR (default ../shared/corpora/ms-cloud-monitoring); FAMILY_SEEDS (default
# 4) is the number of series per stress family (one window of 16 seeds is a quarter of one of 4).
# Extra arguments for detect-csv can be passed in DETECT_ARGS (e.g. DETECT_ARGS="--window 60").
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
NAB_DIR="${NAB_DIR:-$repo/../shared/nab}"
NAB_DIR="$(cd "$NAB_DIR" && pwd)"
cv=0
method="${1:-auto}"
if [ "$method" = "--cv" ]; then
  cv=1
  method=auto
fi
case "$method" in
  auto) detector=pulse ;;
  three_sigma|last_point) detector="pulse_${method}" ;;
  *) echo "unknown method: $method" >&2; exit 2 ;;
esac

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
cargo build --quiet --release -p detect --bin detect-csv
bin="$target_dir/release/detect-csv"

# run_corpus ROOT METHOD DETECTOR OUT: scores every labelled series of the corpus at ROOT
# (NAB layout) into OUT/<category>/<detector>_<file>.csv; prints detect-csv's speed line.
run_corpus() {
  local root="$1" method="$2" detector="$3" out="$4"
  local files inputs=()
  mapfile -t files < <(python3 -c 'import json,sys; print("\n".join(sorted(json.load(open(sys.argv[1])))))' \
    "$root/labels/combined_windows.json")
  for f in "${files[@]}"; do inputs+=("$root/data/$f"); done
  rm -rf "$out"
  mkdir -p "$out"
  # One process over all files: detector time is measured inside, apart from CSV parsing.
  # shellcheck disable=SC2086
  "$bin" --method "$method" --root "$root/data" --out-dir "$out" --prefix "${detector}_" \
    --bench ${DETECT_ARGS:-} "${inputs[@]}" 2>&1 >/dev/null
}

out="$repo/target/nab/$detector"
if ! bench="$(run_corpus "$NAB_DIR/data" "$method" "$detector" "$out")"; then
  echo "$bench" >&2
  exit 1
fi

if [ "$cv" = 1 ]; then
  MS_DIR="${MS_DIR:-$repo/../shared/corpora/ms-cloud-monitoring}"
  MS_DIR="$(cd "$MS_DIR" && pwd)"
  families="$repo/target/nab/families"
  rm -rf "$families"
  "$bin" --write-families "$families" --seeds "${FAMILY_SEEDS:-4}"
  run_corpus "$MS_DIR" auto pulse "$repo/target/nab/ms/pulse" >/dev/null
  run_corpus "$MS_DIR" three_sigma pulse_three_sigma "$repo/target/nab/ms/pulse_three_sigma" >/dev/null
  run_corpus "$families" auto pulse "$repo/target/nab/families-results/pulse" >/dev/null
  run_corpus "$families" last_point pulse_last_point "$repo/target/nab/families-results/pulse_last_point" >/dev/null
  python3 "$repo/scripts/nab_cv.py" --nab-dir "$NAB_DIR" "$out" \
    --corpus "ms-cloud-monitoring: auto" "$MS_DIR" "$repo/target/nab/ms/pulse" \
    --corpus "ms-cloud-monitoring: three_sigma (window 30)" "$MS_DIR" "$repo/target/nab/ms/pulse_three_sigma" \
    --corpus "stress families: auto" "$families" "$repo/target/nab/families-results/pulse" \
    --corpus "stress families: rolling z-score (30 steps)" "$families" "$repo/target/nab/families-results/pulse_last_point" \
    --by-category "stress families: auto" --by-category "stress families: rolling z-score (30 steps)" \
    --held-out "ms-cloud-monitoring: auto" --held-out "stress families: auto"
  echo "speed (NAB development set): $bench"
  exit 0
fi

echo "series: $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$NAB_DIR/data/labels/combined_windows.json")"
python3 "$NAB_DIR/nab_score.py" "$out" --data-root "$NAB_DIR/data" --json "$out/scores.json"
echo "speed: $bench"
