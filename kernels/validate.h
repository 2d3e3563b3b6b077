// Argument checks shared by the CPU references and the GPU Status wrappers. They look only at
// host-side values (shapes, dtypes, null pointers), never through the pointers, so they are safe for
// device memory; the CPU references additionally check the block ids they read.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>

#include "base/status.h"
#include "kernels/kv_layout.h"
#include "kernels/paged_attention.h"

namespace kvt {

// Positive sizes, a KV dtype, MLA implies kv_heads == 1.
Status ValidateBlockLayout(const BlockLayout& g);
// Layout, pointer arrays present, strides that keep rows from overlapping.
Status ValidatePagedKvLayout(const PagedKvLayout& e);
// A gather/scatter call: engine layout, n >= 0, ids/slots present when n > 0, slot size, layers.
Status ValidateBlockCopy(const PagedKvLayout& e, const int32_t* block_ids, int64_t n,
                         const PayloadSlots& payloads, LayerRange layers);
// A quantize (q_dtype fp8|int8 from src fp16|bf16) or dequantize (to fp16|bf16|fp32) call.
Status ValidateQuantize(const BlockLayout& src, int64_t num_blocks, const void* in, DType q_dtype,
                        const void* out, const float* scales);
Status ValidateDequantize(const BlockLayout& q, int64_t num_blocks, const void* in,
                          const float* scales, DType out_dtype, const void* out);
// Shapes, dtypes, pointers. Head dims are not restricted here (the GPU wrapper adds its own set).
Status ValidatePagedAttention(const PagedAttentionParams& p);

}  // namespace kvt
