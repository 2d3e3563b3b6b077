#!/usr/bin/env bash
# GPU check for a machine with an NVIDIA GPU, in one call:
#   build with CUDA (arch of the visible GPU) unless given prebuilt binaries, run the CPU kernel
#   tests, the GPU kernel tests (CUDA kernels vs CPU references), the HBM tier / prefetch / C API
#   tests (now on the GPU), then print every figure: the kernel benchmark (block H2D/D2H vs plain
#   cudaMemcpyAsync, gather/scatter, paged attention GB/s vs the device's bandwidth, fp8 vs fp16),
#   the store-path block transfers (prefetch H2D, HBM reads D2H) vs a plain copy of the same bytes
#   from pinned memory, and the decode harness's overlap figures (with and without NVMe).
# Every step runs even when an earlier one failed (device time is scarce: one call must show every
# failure); each step has a time limit; the summary lists the failed steps.
#
# Usage: tests/gpu/run.sh [--quick] [--prebuilt DIR]
#   --quick         smaller benchmarks
#   --prebuilt DIR  use binaries packed by tests/gpu/pack.sh (DIR/bin/<build-tree path>, DIR/lib):
#                   for a GPU machine that has the CUDA toolkit but not the Debian libraries
# Env: KVT_GPU_BUILD_DIR (default <repo>/build-gpu), CUDA_ARCH (default: from nvidia-smi, else 90),
#      JOBS (default: nproc), KVT_GPU_LOG (default: $OUT/gpu-run.log when OUT is set, else
#      <build dir>/gpu-run.log): the whole log.
# Exit: 0 all passed; 77 no GPU visible (nothing run); 1 some step failed (listed at the end).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${KVT_GPU_BUILD_DIR:-$ROOT/build-gpu}"
JOBS="${JOBS:-$(nproc)}"
QUICK=()
PREBUILT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=(--quick); shift ;;
    --prebuilt) PREBUILT="$(cd "$2" && pwd)"; shift 2 ;;
    *) echo "usage: $0 [--quick] [--prebuilt DIR]" >&2; exit 2 ;;
  esac
done

mkdir -p "$BUILD"
LOG="${KVT_GPU_LOG:-${OUT:-$BUILD}/gpu-run.log}"
exec > >(tee "$LOG") 2>&1
echo "run.sh: log in $LOG; $(date -u +%FT%TZ)"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "run.sh: no NVIDIA GPU visible (nvidia-smi missing or failing); nothing to do"
  exit 77
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm,clocks.max.mem \
  --format=csv

FAILED=()
step() {  # step NAME TIMEOUT_S CMD...: runs CMD with a time limit, records a failure
  local name=$1 limit=$2; shift 2
  echo
  echo "== $name"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  echo "-- $name: exit $rc, $((SECONDS - t0)) s"
  [[ $rc -eq 0 ]] || FAILED+=("$name (exit $rc)")
}

if [[ -n "$PREBUILT" ]]; then
  BIN="$PREBUILT/bin"
  export LD_LIBRARY_PATH="$PREBUILT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  echo "run.sh: prebuilt binaries from $PREBUILT ($(cat "$PREBUILT/BUILD_INFO" 2>/dev/null))"
else
  BIN="$BUILD"
  ARCH="${CUDA_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '. ')}"
  ARCH="${ARCH:-90}"
  if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
    export CUDACXX=/usr/local/cuda/bin/nvcc
  fi
  GEN=()
  command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)
  echo "== configure ($BUILD, CUDA arch $ARCH)"
  cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DKVT_WITH_CUDA=ON \
    -DKVT_BUILD_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES="$ARCH" >/dev/null || exit 1
  echo "== build"
  cmake --build "$BUILD" -j "$JOBS" --target kvt_kernels_tests kvt_gpu_tests kvt_gpu_bench \
    hbm_tests capi_test kvtier-decode kvtier-hbm-bench || exit 1
fi

SCRATCH="$(mktemp -d /tmp/kvt-gpu.XXXXXX)"
trap 'rm -rf "$SCRATCH"' EXIT
export TMPDIR="$SCRATCH"

step "CPU kernel tests" 60 "$BIN/tests/kernels/kvt_kernels_tests" --gtest_brief=1
# A GPU test that skips although nvidia-smi sees a GPU is a failure: the point is to run them.
gpu_tests() {
  "$BIN/tests/gpu/kvt_gpu_tests" 2>&1 | tee "$SCRATCH/gpu_tests.log"
  local rc=${PIPESTATUS[0]}
  if grep -q "SKIPPED \]" "$SCRATCH/gpu_tests.log"; then
    echo "run.sh: GPU tests were skipped although nvidia-smi sees a GPU"
    return 1
  fi
  return "$rc"
}
export BIN SCRATCH
export -f gpu_tests
step "GPU kernel tests (vs CPU references)" 120 bash -c gpu_tests
step "HBM tier, prefetch pipeline and GPU cache tests (on the GPU)" 150 \
  "$BIN/tests/hbm/hbm_tests" --gtest_brief=1
step "C API test" 60 "$BIN/tests/capi/capi_test"
step "GPU benchmark (transfers, gather/scatter, paged attention fp16 and fp8)" 150 \
  "$BIN/tests/gpu/kvt_gpu_bench" "${QUICK[@]}"
step "store-path block transfers vs plain cudaMemcpyAsync from pinned memory" 90 \
  "$BIN/tools/kvtier-hbm-bench" --blocks "$([[ ${#QUICK[@]} -gt 0 ]] && echo 64 || echo 256)"
for args in "--preset default --nvme-fraction 0" "--preset llama8b --nvme-fraction 0" \
            "--preset llama8b --nvme-fraction 0.5"; do
  # shellcheck disable=SC2086
  step "decode harness $args" 90 "$BIN/tools/kvtier-decode" $args --dir "$SCRATCH/decode"
done

echo
if [[ ${#FAILED[@]} -eq 0 ]]; then
  echo "run.sh: all GPU steps passed"
  exit 0
fi
echo "run.sh: ${#FAILED[@]} step(s) failed:"
printf '  %s\n' "${FAILED[@]}"
exit 1
