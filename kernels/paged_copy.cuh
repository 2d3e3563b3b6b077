// Gather/scatter between an engine's paged cache and payload slots, device code.
//
// One thread block moves one (entry, layer, tensor) unit: block_tokens x kv_heads x head_dim
// elements. NHD-contiguous pages move as one span; other strides move row by row. Both use 16-byte
// vectors when every address involved is 16-byte aligned (checked per unit on the device, because
// the per-layer base pointers live in device memory) and fall back to element-size copies.
#pragma once

#include <cstdint>

#include "kernels/cuda_common.cuh"
#include "kernels/kv_layout.h"

namespace kvt::cuda {

constexpr int kCopyThreads = 256;

struct CopyArgs {
  BlockLayout geo;
  void* const* k_layers;     // [geo.layers] device pointers, K or MLA latent of block 0
  void* const* v_layers;     // [geo.layers] device pointers, V of block 0 (nullptr for MLA)
  int64_t num_blocks;        // engine blocks per layer
  int64_t block_stride;      // engine strides, elements
  int64_t token_stride;
  int64_t head_stride;
  const int32_t* block_ids;  // [n] engine block per entry; < 0 or >= num_blocks: skip
  uint8_t* payload_base;     // payload slot 0
  int64_t slot_bytes;
  const int32_t* slots;      // [n] slot per entry, or nullptr (entry i = slot i)
  int32_t layer_begin;
  int32_t layer_count;
};

// Copies `units` V-sized units; kToPayload picks the direction (engine -> payload for gather).
template <typename V, bool kToPayload>
__device__ __forceinline__ void CopySpan(uint8_t* __restrict__ pay, uint8_t* __restrict__ eng,
                                         int64_t units) {
  V* p = reinterpret_cast<V*>(pay);
  V* e = reinterpret_cast<V*>(eng);
#pragma unroll 4
  for (int64_t x = threadIdx.x; x < units; x += blockDim.x) {
    if (kToPayload) p[x] = e[x];
    else e[x] = p[x];
  }
}

// Row-strided copy: payload rows are dense [block_tokens][kv_heads]; engine rows are strided.
template <typename V, bool kToPayload>
__device__ __forceinline__ void CopyRows(uint8_t* __restrict__ pay, uint8_t* __restrict__ eng,
                                         int rows, int heads, int row_units,
                                         int64_t token_stride_b, int64_t head_stride_b) {
  const int total = rows * row_units;
#pragma unroll 4
  for (int x = threadIdx.x; x < total; x += blockDim.x) {
    const int row = x / row_units, c = x - row * row_units;
    const int tok = row / heads, h = row - tok * heads;
    V* e = reinterpret_cast<V*>(eng + tok * token_stride_b + h * head_stride_b) + c;
    V* p = reinterpret_cast<V*>(pay) + x;
    if (kToPayload) *p = *e;
    else *e = *p;
  }
}

// grid: x = unit = (entry * layer_count + layer - layer_begin) * tensors + tensor.
// block: kCopyThreads threads striding over the unit's bytes.
template <bool kToPayload>
__global__ void __launch_bounds__(kCopyThreads) PagedCopyKernel(const CopyArgs a) {
  const BlockLayout& g = a.geo;
  const int64_t unit = blockIdx.x;
  const int tensors = g.tensors();
  const int t = static_cast<int>(unit % tensors);
  const int64_t rest = unit / tensors;
  const int l = a.layer_begin + static_cast<int>(rest % a.layer_count);
  const int64_t i = rest / a.layer_count;
  const int32_t id = a.block_ids[i];
  if (id < 0 || id >= a.num_blocks) return;  // skipped entry: destination untouched

  const int64_t eb = g.elem_bytes();
  const int64_t slot = a.slots != nullptr ? a.slots[i] : i;
  uint8_t* pay = a.payload_base + slot * a.slot_bytes + g.offset(l, t, 0, 0) * eb;
  uint8_t* eng = static_cast<uint8_t*>(t == 0 ? a.k_layers[l] : a.v_layers[l]) +
                 static_cast<int64_t>(id) * a.block_stride * eb;
  const int64_t row_b = g.row_bytes();
  const bool aligned = ((reinterpret_cast<uintptr_t>(pay) | reinterpret_cast<uintptr_t>(eng)) & 15u) == 0;

  if (a.head_stride == g.head_dim && a.token_stride == static_cast<int64_t>(g.kv_heads) * g.head_dim) {
    const int64_t bytes = g.tensor_elems() * eb;
    if (aligned && bytes % 16 == 0) CopySpan<uint4, kToPayload>(pay, eng, bytes / 16);
    else CopySpan<uint8_t, kToPayload>(pay, eng, bytes);
    return;
  }
  const int64_t ts = a.token_stride * eb, hs = a.head_stride * eb;
  const int rows = g.block_tokens * g.kv_heads;
  if (aligned && row_b % 16 == 0 && ts % 16 == 0 && hs % 16 == 0) {
    CopyRows<uint4, kToPayload>(pay, eng, rows, g.kv_heads, static_cast<int>(row_b / 16), ts, hs);
  } else {
    CopyRows<uint8_t, kToPayload>(pay, eng, rows, g.kv_heads, static_cast<int>(row_b), ts, hs);
  }
}

}  // namespace kvt::cuda
