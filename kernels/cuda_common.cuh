// Device helpers shared by the kvtier kernels: dispatch macros, 16-byte chunk conversions, cp.async
// wrappers and warp reductions. Device-side only (include from .cu/.cuh).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace kvt::cuda {

// ---- dispatch: runtime values -> template parameters --------------------------------------------
// Usage: KVT_DISPATCH_HEAD_DIM(p.head_dim, HEAD_DIM, { return Launch<HEAD_DIM>(...); });
// An unsupported value makes the enclosing function return cudaErrorInvalidValue.
#define KVT_DISPATCH_HEAD_DIM(head_dim, HEAD_DIM, ...)       \
  switch (head_dim) {                                        \
    case 64: { constexpr int HEAD_DIM = 64; __VA_ARGS__ }    \
    case 80: { constexpr int HEAD_DIM = 80; __VA_ARGS__ }    \
    case 96: { constexpr int HEAD_DIM = 96; __VA_ARGS__ }    \
    case 128: { constexpr int HEAD_DIM = 128; __VA_ARGS__ }  \
    case 256: { constexpr int HEAD_DIM = 256; __VA_ARGS__ }  \
    default: return cudaErrorInvalidValue;                   \
  }

// (query dtype, KV dtype) pairs paged attention supports: KV equal to the query type, or fp8-e4m3.
#define KVT_DISPATCH_Q_KV(q_dtype, kv_dtype, QT, KVT, ...)                           \
  if ((q_dtype) == DType::kFp16 && (kv_dtype) == DType::kFp16) {                     \
    using QT = __half; using KVT = __half; __VA_ARGS__                                \
  } else if ((q_dtype) == DType::kBf16 && (kv_dtype) == DType::kBf16) {              \
    using QT = __nv_bfloat16; using KVT = __nv_bfloat16; __VA_ARGS__                  \
  } else if ((q_dtype) == DType::kFp16 && (kv_dtype) == DType::kFp8E4M3) {           \
    using QT = __half; using KVT = __nv_fp8_e4m3; __VA_ARGS__                         \
  } else if ((q_dtype) == DType::kBf16 && (kv_dtype) == DType::kFp8E4M3) {           \
    using QT = __nv_bfloat16; using KVT = __nv_fp8_e4m3; __VA_ARGS__                  \
  } else {                                                                           \
    return cudaErrorInvalidValue;                                                    \
  }

// ---- element conversions ------------------------------------------------------------------------
__device__ __forceinline__ float ToF32(__half x) { return __half2float(x); }
__device__ __forceinline__ float ToF32(__nv_bfloat16 x) { return __bfloat162float(x); }

// 16 bytes of KV elements -> 16 / sizeof(T) floats (exact).
template <typename T>
__device__ __forceinline__ void ChunkToF32(const uint4& c, float* f);

template <>
__device__ __forceinline__ void ChunkToF32<__half>(const uint4& c, float* f) {
  const __half2* h = reinterpret_cast<const __half2*>(&c);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 t = __half22float2(h[i]);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}

template <>
__device__ __forceinline__ void ChunkToF32<__nv_bfloat16>(const uint4& c, float* f) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&c);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 t = __bfloat1622float2(h[i]);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}

template <>
__device__ __forceinline__ void ChunkToF32<__nv_fp8_e4m3>(const uint4& c, float* f) {
  // fp8 -> fp16 is exact and a single cvt per pair on sm_89+; fp16 -> fp32 is exact too.
  const __nv_fp8x2_storage_t* p = reinterpret_cast<const __nv_fp8x2_storage_t*>(&c);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const __half2 h(__nv_cvt_fp8x2_to_halfraw2(p[i], __NV_E4M3));
    const float2 t = __half22float2(h);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}

// Stores one output value in the output dtype (fp32, fp16 or bf16; round to nearest even).
__device__ __forceinline__ void StoreOut(void* out, int64_t i, DType t, float v) {
  if (t == DType::kFp32) {
    static_cast<float*>(out)[i] = v;
  } else if (t == DType::kFp16) {
    static_cast<__half*>(out)[i] = __float2half_rn(v);
  } else {
    static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16_rn(v);
  }
}

// ---- asynchronous global -> shared copies -------------------------------------------------------
// 16 bytes; when !pred nothing is read and the destination is zero-filled (masked tail tokens must
// read as 0, not stale data, because p * garbage could be NaN).
__device__ __forceinline__ void CpAsync16(void* smem, const void* gmem, bool pred) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int src_bytes = pred ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem),
               "r"(src_bytes));
#else
  *static_cast<uint4*>(smem) = pred ? *static_cast<const uint4*>(gmem) : make_uint4(0, 0, 0, 0);
#endif
}

__device__ __forceinline__ void CpAsyncCommit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

// ---- reductions ---------------------------------------------------------------------------------
__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

constexpr int Pow2Ceil(int x) {
  int p = 1;
  while (p < x) p <<= 1;
  return p;
}
constexpr int Pow2Floor(int x) {
  int p = 1;
  while (p * 2 <= x) p <<= 1;
  return p;
}

}  // namespace kvt::cuda
