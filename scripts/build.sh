# Sourced by run.sh and pulse: build the services' binaries the way scripts/test.sh builds
# them, so that one build serves both.
#
# `cargo test --workspace` builds every binary with the whole workspace's features, the
# tests' harness (`service/testing`) included; building the same set here finds those
# artefacts up to date instead of rebuilding `service`, the gatherer and the analyser.
# PULSE_PROFILE=release builds optimised binaries in target/release instead (their own
# artefacts, built once).

pulse_profile() {
  case "${PULSE_PROFILE:-debug}" in
    debug | dev) echo debug ;;
    release) echo release ;;
    *) echo "PULSE_PROFILE must be debug or release, not ${PULSE_PROFILE}" >&2; return 2 ;;
  esac
}

# The directory of the binaries build_binaries builds.
pulse_bin_dir() {
  local target=${CARGO_TARGET_DIR:-target}
  [[ $target == /* ]] || target="$PWD/$target"
  echo "$target/$(pulse_profile)"
}

build_binaries() {
  local profile
  profile=$(pulse_profile) || return
  local flags=(--locked --workspace --bins --features service/testing)
  [[ $profile == release ]] && flags+=(--release)
  cargo build "${flags[@]}"
}
