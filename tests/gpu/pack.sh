#!/usr/bin/env bash
# Builds the GPU tests and tools here (CUDA on, Release) and packs them with every shared library
# they need beyond glibc into one archive, for a GPU machine that has the CUDA driver but not the
# Debian libraries (RocksDB, liburing, ...). There: unpack it and run
#   tests/gpu/run.sh --prebuilt DIR
# Usage: tests/gpu/pack.sh [OUT_DIR]   (default <repo>/build-gpu-pack; writes kvt-gpu.tar.gz)
# Env: KVT_GPU_BUILD_DIR (default <repo>/build-gpu), CUDA_ARCH (default 90: H100/H200), JOBS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${KVT_GPU_BUILD_DIR:-$ROOT/build-gpu}"
PACK="${1:-$ROOT/build-gpu-pack}"
ARCH="${CUDA_ARCH:-90}"
GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)
TARGETS=(kvt_kernels_tests kvt_gpu_tests kvt_gpu_bench hbm_tests capi_test kvtier-decode
         kvtier-hbm-bench)
BINS=(tests/kernels/kvt_kernels_tests tests/gpu/kvt_gpu_tests tests/gpu/kvt_gpu_bench
      tests/hbm/hbm_tests tests/capi/capi_test tools/kvtier-decode tools/kvtier-hbm-bench)

cmake -S "$ROOT" -B "$BUILD" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DKVT_WITH_CUDA=ON \
  -DKVT_BUILD_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES="$ARCH" >/dev/null
cmake --build "$BUILD" -j "${JOBS:-$(nproc)}" --target "${TARGETS[@]}"

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/bin" "$STAGE/lib"
for b in "${BINS[@]}"; do
  mkdir -p "$STAGE/bin/$(dirname "$b")"
  strip -o "$STAGE/bin/$b" "$BUILD/$b"
done
# Every library the binaries load except glibc's own (the loader, libc, libm, ...), which must
# come from the target machine.
ldd "${BINS[@]/#/$BUILD/}" | awk '/=> \//{print $3}' | sort -u |
  grep -Ev '/(ld-linux[^/]*|libc|libm|libdl|libpthread|librt)\.so' |
  while read -r lib; do cp -L "$lib" "$STAGE/lib/"; done
echo "git $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo +dirty)," \
     "CUDA arch $ARCH, packed $(date -u +%FT%TZ)" > "$STAGE/BUILD_INFO"
mkdir -p "$PACK"
tar -C "$STAGE" -czf "$PACK/kvt-gpu.tar.gz" .
ls -la "$PACK/kvt-gpu.tar.gz"
