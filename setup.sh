#!/usr/bin/env bash
# kvtier set-up on a fresh Debian 12 machine (as root, or with sudo available):
#   ./setup.sh run    install what is missing, build, run the main job on its embedded default
#   ./setup.sh test   install what is missing, build, run every test (plain and ASan+UBSan builds)
# Idempotent: a second run installs nothing and rebuilds only what changed. Quiet when all is there.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(build-essential cmake ninja-build pkg-config git
          liburing-dev librocksdb-dev libxxhash-dev libzstd-dev libboost1.81-dev
          nlohmann-json3-dev libssl-dev libgtest-dev libgmock-dev libbenchmark-dev
          clang libclang-rt-14-dev)

install_missing() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

JOBS=$(nproc)
build() {  # build DIR [cmake args...]
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j "$JOBS"
}

mode=${1:-run}
install_missing
case "$mode" in
  run)
    build build
    if [ -x build/tools/kvtier-sim ]; then
      exec build/tools/kvtier-sim
    fi
    exec build/tools/kvtier-demo ./kvtier-data
    ;;
  test)
    build build
    (cd build && ctest --output-on-failure -j "$JOBS")
    # The same tests under AddressSanitizer + UndefinedBehaviorSanitizer (CPU paths only: CUDA
    # off keeps the sanitizer runtime away from the CUDA driver).
    build build-asan -DKVT_SANITIZE=ON -DKVT_WITH_CUDA=OFF -DKVT_BUILD_BENCH=OFF \
      -DCMAKE_BUILD_TYPE=Debug
    (cd build-asan && ctest --output-on-failure -j "$JOBS")
    # libFuzzer targets (wire format decoder, server session) under ASan + UBSan, 20 s each.
    ./fuzz/run.sh 20
    ;;
  *)
    echo "usage: $0 run|test" >&2
    exit 2
    ;;
esac
