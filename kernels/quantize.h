// Quantizing codec for block payloads: fp16/bf16 <-> fp8-e4m3 or int8, one scale per
// (block, layer, K/V, head). Used when blocks are demoted with a quantizing codec, and to build the
// fp8 KV that paged attention reads. Arithmetic and error bounds: kernels/quant_math.h.
//
// Scales layout: [num_blocks][layers][tensors][kv_heads] floats (BlockLayout::scale_index), so
// the K scales of layer l for attention are scales + scale_index(l, 0, 0) with a block stride of
// scales_per_block().
//
// Thread safety: stateless; concurrent calls on disjoint outputs are safe.
#pragma once

#include <cstdint>

#include "base/status.h"
#include "kernels/kv_layout.h"

namespace kvt {

// CPU reference. Quantizes num_blocks consecutive payloads.
//   src.dtype: fp16 | bf16 (the layout of the input payloads)
//   in     : [num_blocks][src.block_elems()] of src.dtype
//   q_dtype: fp8_e4m3 | int8
//   out    : [num_blocks][src.block_elems()] of q_dtype
//   scales : [num_blocks][src.scales_per_block()] floats
// Returns InvalidArgument (and writes nothing) for a bad layout, dtype or null pointer.
Status QuantizeBlocksRef(const BlockLayout& src, int64_t num_blocks, const void* in, DType q_dtype,
                         void* out, float* scales);

// CPU reference, the inverse.
//   q.dtype : fp8_e4m3 | int8 (the layout of the quantized payloads)
//   in      : [num_blocks][q.block_elems()] of q.dtype
//   scales  : [num_blocks][q.scales_per_block()]
//   out_dtype: fp16 | bf16 | fp32;  out: [num_blocks][q.block_elems()] of out_dtype
Status DequantizeBlocksRef(const BlockLayout& q, int64_t num_blocks, const void* in,
                           const float* scales, DType out_dtype, void* out);

}  // namespace kvt
