#!/usr/bin/env bash
# GPU check for a machine with an NVIDIA GPU:
#   configure + build with CUDA (arch of the visible GPU), run the CPU kernel tests, the GPU kernel
#   tests (CUDA kernels vs CPU references), the HBM tier / prefetch / C API tests (now on the GPU),
#   then print: the kernel benchmark (block H2D/D2H vs plain cudaMemcpyAsync, gather/scatter,
#   paged attention GB/s vs the device's bandwidth), the store-path block transfers (prefetch
#   H2D, HBM reads D2H) vs a plain copy of the same bytes from pinned memory, and the decode
#   harness's overlap figures.
# Usage: tests/gpu/run.sh [--quick]      (--quick: smaller benchmark)
# Env: KVT_GPU_BUILD_DIR (default <repo>/build-gpu), CUDA_ARCH (default: from nvidia-smi, else 90),
#      JOBS (default: nproc).
# Exit: 0 all passed; 77 no GPU visible (nothing run); other: the failing step's status.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${KVT_GPU_BUILD_DIR:-$ROOT/build-gpu}"
JOBS="${JOBS:-$(nproc)}"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "run.sh: no NVIDIA GPU visible (nvidia-smi missing or failing); nothing to do" >&2
  exit 77
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader

ARCH="${CUDA_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '. ')}"
ARCH="${ARCH:-90}"
if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export CUDACXX=/usr/local/cuda/bin/nvcc
fi
GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)

echo "== configure ($BUILD, CUDA arch $ARCH)"
cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DKVT_WITH_CUDA=ON \
  -DKVT_BUILD_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES="$ARCH" >/dev/null
echo "== build"
cmake --build "$BUILD" -j "$JOBS" --target kvt_kernels_tests kvt_gpu_tests kvt_gpu_bench \
  hbm_tests capi_test kvtier-decode kvtier-hbm-bench

echo "== CPU kernel tests"
"$BUILD/tests/kernels/kvt_kernels_tests" --gtest_brief=1
echo "== GPU kernel tests (vs CPU references)"
LOG="$BUILD/kvt_gpu_tests.log"
"$BUILD/tests/gpu/kvt_gpu_tests" 2>&1 | tee "$LOG"
if grep -q "SKIPPED \]" "$LOG"; then
  echo "run.sh: GPU tests were skipped although nvidia-smi sees a GPU" >&2
  exit 1
fi
echo "== HBM tier, prefetch pipeline and C API tests (HBM tier on the GPU)"
HBM_LOG="$BUILD/hbm_tests.log"
"$BUILD/tests/hbm/hbm_tests" --gtest_brief=1 2>&1 | tee "$HBM_LOG"
"$BUILD/tests/capi/capi_test" | tail -1
echo "== GPU benchmark"
"$BUILD/tests/gpu/kvt_gpu_bench" "$@"
echo "== store-path block transfers vs plain cudaMemcpyAsync from pinned memory"
"$BUILD/tools/kvtier-hbm-bench" --blocks "$([[ "${1:-}" == --quick ]] && echo 64 || echo 256)"
echo "== decode harness: layer-wise prefetch overlapped with paged attention"
"$BUILD/tools/kvtier-decode" --preset default --nvme-fraction 0
"$BUILD/tools/kvtier-decode" --preset llama8b --nvme-fraction 0
"$BUILD/tools/kvtier-decode" --preset llama8b --nvme-fraction 0.5
