#!/usr/bin/env bash
# Long fuzzing of the gatherer's parsers with cargo-fuzz (libFuzzer). Not part of
# scripts/test.sh: the tests run proptests that feed the same parsers arbitrary input.
#
#   scripts/fuzz.sh            # every target, 5 minutes each
#   scripts/fuzz.sh 3600 ingest_parse_body
#
# Needs `cargo install cargo-fuzz`. cargo-fuzz wants a nightly toolchain; on stable,
# RUSTC_BOOTSTRAP=1 unlocks the same flags. Findings land in fuzz/artifacts/<target>/; the
# growing corpus in fuzz/corpus/<target>/ (both ignored by git; the seeds in fuzz/seeds/
# are committed and tiny).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(ingest_parse_body export_query_parse wal_read_segment)
fi
if ! command -v cargo-fuzz >/dev/null; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
  exit 1
fi
if ! rustc --version | grep -q nightly; then
  export RUSTC_BOOTSTRAP=1
fi
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  echo "== fuzzing $target for ${seconds}s"
  cargo fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10
done
