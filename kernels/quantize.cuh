// Quantizing codec, device code. Uses the same scalar arithmetic as the CPU reference
// (quant_math.h, float_convert.h), so both produce identical bytes and scales.
#pragma once

#include <cstdint>

#include "kernels/cuda_common.cuh"
#include "kernels/kv_layout.h"
#include "kernels/quant_math.h"

namespace kvt::cuda {

constexpr int kQuantThreads = 128;

struct QuantArgs {
  BlockLayout g;       // payload layout; g.dtype is the source (quantize) or quantized (dequantize) type
  const void* in;      // [num_blocks][g.block_elems()]
  void* out;           // [num_blocks][g.block_elems()] of `other`
  float* scales;       // [num_blocks][g.scales_per_block()]
  DType other;         // quantize: fp8_e4m3 | int8; dequantize: fp16 | bf16 | fp32
};

// Element index of element x (in [0, block_tokens * head_dim)) of group (b, l, t, h).
__device__ __forceinline__ int64_t GroupElem(const BlockLayout& g, int64_t base, int x) {
  const int tok = x / g.head_dim, d = x - tok * g.head_dim;
  return base + static_cast<int64_t>(tok) * g.kv_heads * g.head_dim + d;
}

// grid: x = group = ((block * layers + layer) * tensors + tensor) * kv_heads + head.
// block: kQuantThreads threads; pass 1 finds the group's finite |max|, pass 2 encodes.
__global__ void __launch_bounds__(kQuantThreads) QuantizeKernel(const QuantArgs a) {
  const BlockLayout& g = a.g;
  int64_t grp = blockIdx.x;
  const int h = static_cast<int>(grp % g.kv_heads);
  grp /= g.kv_heads;
  const int t = static_cast<int>(grp % g.tensors());
  grp /= g.tensors();
  const int l = static_cast<int>(grp % g.layers);
  const int64_t b = grp / g.layers;
  const int64_t base = b * g.block_elems() + g.offset(l, t, 0, h);
  const int n = g.block_tokens * g.head_dim;

  float amax = 0.0f;
  for (int x = threadIdx.x; x < n; x += kQuantThreads) {
    const float v = fabsf(LoadAsF32(a.in, GroupElem(g, base, x), g.dtype));
    if (IsFiniteF32(v) && v > amax) amax = v;
  }
  __shared__ float warp_max[kQuantThreads / 32];
  amax = WarpMax(amax);
  if (threadIdx.x % 32 == 0) warp_max[threadIdx.x / 32] = amax;
  __syncthreads();
  amax = warp_max[0];
#pragma unroll
  for (int w = 1; w < kQuantThreads / 32; ++w) amax = fmaxf(amax, warp_max[w]);

  if (threadIdx.x == 0) a.scales[b * g.scales_per_block() + g.scale_index(l, t, h)] = QuantScale(a.other, amax);
  const float inv = QuantInvScale(a.other, amax);
  for (int x = threadIdx.x; x < n; x += kQuantThreads) {
    const int64_t e = GroupElem(g, base, x);
    QuantizeStore(a.out, e, a.other, LoadAsF32(a.in, e, g.dtype), inv);
  }
}

// grid: x = group as above. block: kQuantThreads threads over the group's elements.
__global__ void __launch_bounds__(kQuantThreads) DequantizeKernel(const QuantArgs a) {
  const BlockLayout& g = a.g;
  int64_t grp = blockIdx.x;
  const int h = static_cast<int>(grp % g.kv_heads);
  grp /= g.kv_heads;
  const int t = static_cast<int>(grp % g.tensors());
  grp /= g.tensors();
  const int l = static_cast<int>(grp % g.layers);
  const int64_t b = grp / g.layers;
  const int64_t base = b * g.block_elems() + g.offset(l, t, 0, h);
  const float s = a.scales[b * g.scales_per_block() + g.scale_index(l, t, h)];
  const int n = g.block_tokens * g.head_dim;
  for (int x = threadIdx.x; x < n; x += kQuantThreads) {
    const int64_t e = GroupElem(g, base, x);
    StoreFromF32(a.out, e, a.other, DequantizeLoad(a.in, e, g.dtype, s));
  }
}

}  // namespace kvt::cuda
