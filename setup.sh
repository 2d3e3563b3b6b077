#!/usr/bin/env bash
# kvtier set-up on a fresh Debian 12 machine (as root, or with sudo available):
#   ./setup.sh run    install what is missing, build, run the main job on its embedded default
#   ./setup.sh test   install what is missing, build, run every test (plain and ASan+UBSan builds),
#                     the concurrency tests under TSan, and every fuzzer for 20 s
# Idempotent: a second run installs nothing and rebuilds only what changed. Quiet when all is there.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(build-essential cmake ninja-build pkg-config git
          liburing-dev librocksdb-dev libxxhash-dev libzstd-dev libboost1.81-dev
          nlohmann-json3-dev libssl-dev libgtest-dev libgmock-dev libbenchmark-dev
          clang libclang-rt-14-dev openssl
          python3 python3-numpy python3-torch python3-pytest)

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
build() {  # build DIR [cmake args...] [-- TARGETS...]
  local dir=$1; shift
  local args=() targets=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do args+=("$1"); shift; done
  [ $# -gt 0 ] && shift && targets=("$@")
  cmake -S . -B "$dir" -G Ninja "${args[@]}" >/dev/null
  cmake --build "$dir" -j "$JOBS" ${targets[@]+--target "${targets[@]}"}
}

# The tests that exercise kvtier's threads (NVMe writers and reclaim, store paths, prefetch
# pipeline, kvtierd and the remote client), run under ThreadSanitizer.
TSAN_TESTS=(kvt_nvme_concurrency_test store_nvme_tests hbm_tests remote_loopback_test core_tests
            capi_concurrency_test)
tsan_tests() {
  build build-tsan -DKVT_TSAN=ON -DKVT_WITH_CUDA=OFF -DKVT_BUILD_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" -- "${TSAN_TESTS[@]}"
  # Races inside Debian's uninstrumented RocksDB are suppressed (tests/tsan.supp, by library
  # only); any other report fails the test binary (exitcode 66).
  local opts="suppressions=$PWD/tests/tsan.supp halt_on_error=1 exitcode=66 second_deadlock_stack=1"
  local t bin failed=0
  for t in "${TSAN_TESTS[@]}"; do
    bin=$(find build-tsan/tests -type f -name "$t" -perm -u+x | head -n 1)
    echo "tsan: $t"
    # Each binary's status is checked here: set -e does not reach into a function called
    # from a || list.
    if ! (cd "$(dirname "$bin")" && TSAN_OPTIONS="$opts" timeout 900 "./$t" --gtest_brief=1); then
      echo "tsan: $t FAILED"
      failed=1
    fi
  done
  return "$failed"
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
    # off keeps the sanitizer runtime away from the CUDA driver). One clang tree with KVT_FUZZ
    # (ASan + UBSan + libFuzzer coverage) serves these tests and the fuzzers: a single
    # sanitizer build instead of two keeps the command inside CI's time budget.
    # A tree left by the former gcc ASan build cannot switch compilers in place.
    if [ -f build-asan/CMakeCache.txt ] && ! grep -q '^KVT_FUZZ:BOOL=ON' build-asan/CMakeCache.txt
    then rm -rf build-asan; fi
    build build-asan -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DKVT_FUZZ=ON \
      -DKVT_WITH_CUDA=OFF -DKVT_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
      -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only"
    (cd build-asan && ctest --output-on-failure -j "$JOBS")
    # The concurrency tests under ThreadSanitizer (KVT_SKIP_TSAN=1 skips them).
    if [ "${KVT_SKIP_TSAN:-0}" != 1 ]; then tsan_tests; fi
    # libFuzzer targets (wire format, server session, options, trace lines, segment records,
    # index values, remote client against a hostile server) from the same tree, 20 s each.
    KVT_FUZZ_BUILD_DIR=build-asan ./fuzz/run.sh 20
    ;;
  *)
    echo "usage: $0 run|test" >&2
    exit 2
    ;;
esac
