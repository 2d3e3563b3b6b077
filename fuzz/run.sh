#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan, CUDA off, in build-fuzz/; -O1 with line
# tables only, which builds about 15% faster than -O2 -g) and runs each for a short time from its
# committed seed corpus. Any crash, sanitizer report or leak fails the run;
# the input that caused it is kept under build-fuzz/artifacts/.
#   fuzz/run.sh [SECONDS_PER_TARGET]      (default 25; setup.sh test passes 20: 7 targets, ~2.5 min)
#   fuzz/run.sh 600                       a longer soak of every target
#   fuzz/run.sh seeds                     rewrite fuzz/corpus/ with fuzz_make_seeds
# KVT_FUZZ_BUILD_DIR=DIR uses an existing KVT_FUZZ tree instead of build-fuzz/ (setup.sh test
# passes its ASan tree, which is built with KVT_FUZZ=ON so that one build serves the ASan tests
# and the fuzzers). Targets run nproc at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-25}
BUILD=${KVT_FUZZ_BUILD_DIR:-build-fuzz}
TARGETS=(frame_decoder server_session options trace segment_record index_value remote_client)
CXX_BIN=$(command -v clang++ || command -v clang++-14 || true)
CC_BIN=$(command -v clang || command -v clang-14 || true)
if [ -z "$CXX_BIN" ] || [ -z "$CC_BIN" ]; then
  echo "fuzz: clang is not installed; skipping the fuzz run" >&2
  exit 0
fi
if [ ! -f "$BUILD"/build.ninja ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER="$CXX_BIN" -DCMAKE_C_COMPILER="$CC_BIN" \
    -DKVT_FUZZ=ON -DKVT_WITH_CUDA=OFF -DKVT_BUILD_TESTS=OFF -DKVT_BUILD_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" >/dev/null
fi
if [ "$SECONDS_PER_TARGET" = "seeds" ]; then
  cmake --build "$BUILD" --target fuzz_make_seeds
  rm -rf fuzz/corpus
  for t in "${TARGETS[@]}"; do mkdir -p fuzz/corpus/"$t"; done
  "$BUILD"/fuzz/fuzz_make_seeds fuzz
  exit 0
fi
cmake --build "$BUILD" -j "$(nproc)" --target "${TARGETS[@]/#/fuzz_}"
ART="$BUILD"/artifacts
mkdir -p "$ART"

# One target: new inputs go to a scratch directory; the committed corpus is only read.
run_target() {
  local t=$1 work status=0
  work=$(mktemp -d /tmp/kvtier-fuzz-corpus-XXXXXX)
  "$BUILD"/fuzz/fuzz_$t -max_total_time="$SECONDS_PER_TARGET" -timeout=10 \
    -rss_limit_mb=2048 -max_len=32768 -print_final_stats=1 \
    -artifact_prefix="$ART/$t-" "$work" fuzz/corpus/"$t" >"$ART/$t.log" 2>&1 || status=$?
  rm -rf "$work"
  return "$status"
}

# nproc targets at a time (each libFuzzer process uses one core), in groups.
report() {  # report TARGET STATUS
  if [ "$2" -eq 0 ]; then
    echo "fuzz: $1 clean: $(grep -E "stat::number_of_executed_units|stat::new_units_added" \
      "$ART/$1.log" | tr '\n' ' ')"
  else
    tail -n 60 "$ART/$1.log" >&2
    echo "fuzz: $1 FAILED (log and crashing input under $ART/)" >&2
    failed+=("$1")
  fi
}
failed=()
group=$(nproc)
for ((i = 0; i < ${#TARGETS[@]}; i += group)); do
  names=("${TARGETS[@]:i:group}")
  pids=()
  for t in "${names[@]}"; do
    echo "fuzz: $t for ${SECONDS_PER_TARGET}s"
    run_target "$t" &
    pids+=($!)
  done
  for j in "${!names[@]}"; do
    status=0
    wait "${pids[$j]}" || status=$?
    report "${names[$j]}" "$status"
  done
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all targets clean"
