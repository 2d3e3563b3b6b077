// Paged decode attention: one query token per sequence, grouped-query attention, K and V read from
// a paged cache through a block table.
//
// For sequence s and query head h (kv head g = h / (num_q_heads / num_kv_heads)):
//   score_t = sm_scale * dot(q[s][h], K_t)             t in [0, context_lens[s])
//   out[s][h] = sum_t softmax(score)_t * V_t           (all zeros when context_lens[s] == 0)
// where token t lives in cache block block_table[s][t / block_tokens], row t % block_tokens, head g.
// With fp8-e4m3 KV, K_t = k_scale(block, g) * fp8 value (and likewise V): per-block, per-head scales
// as written by the quantizing codec (kernels/quantize.h).
//
// Precision: q, K and V are widened to fp32 exactly; dot products, softmax and the weighted sum
// accumulate in fp32. The output is fp32 or the query dtype (rounded once, nearest-even, at the end).
// The CPU reference uses exp(); the GPU kernel uses exp2() with log2(e) folded into the scale and
// another summation order: GPU and CPU agree within |d| <= 1e-3 * (1 + |ref|) for fp32 output, plus
// one ulp of the output type for fp16/bf16 output (tests/gpu).
//
// Thread safety: stateless; concurrent calls on disjoint outputs are safe.
#pragma once

#include <cstdint>

#include "base/status.h"
#include "kernels/kv_layout.h"

namespace kvt {

struct PagedAttentionParams {
  int32_t num_seqs = 0;
  int32_t num_q_heads = 0;   // a multiple of num_kv_heads
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;      // CPU: any; GPU: 64, 80, 96, 128, 256
  int32_t block_tokens = 0;
  DType q_dtype = DType::kFp16;    // fp16 | bf16
  DType kv_dtype = DType::kFp16;   // == q_dtype, or fp8_e4m3 (then k_scales and v_scales are required)
  DType out_dtype = DType::kFp32;  // fp32 | q_dtype
  float sm_scale = 0.0f;           // usually 1 / sqrt(head_dim)

  const void* q = nullptr;         // [num_seqs][num_q_heads][head_dim] of q_dtype
  PagedLayer kv;                   // one layer; row (block, token, head) = head_dim kv_dtype elements
  int64_t num_cache_blocks = 0;    // valid block ids: [0, num_cache_blocks)
  const float* k_scales = nullptr; // fp8 only: scale of (block b, kv head g) at [b * scale_block_stride + g]
  const float* v_scales = nullptr; // fp8 only: same indexing
  int64_t scale_block_stride = 0;  // floats between blocks' scales; 0 means num_kv_heads
  const int32_t* block_table = nullptr;   // [num_seqs][max_blocks_per_seq] cache block ids
  int32_t max_blocks_per_seq = 0;
  const int32_t* context_lens = nullptr;  // [num_seqs]; 0 <= len <= max_blocks_per_seq * block_tokens
  int32_t max_context_len = 0;     // >= every context_lens[s]; the GPU launcher plans its split with it
  void* out = nullptr;             // [num_seqs][num_q_heads][head_dim] of out_dtype

  int64_t scale_stride() const { return scale_block_stride != 0 ? scale_block_stride : num_kv_heads; }
};

// CPU reference. Checks the parameters and every block id it reads (InvalidArgument, naming the
// field, before writing anything), then computes `out` as stated above.
Status PagedAttentionRef(const PagedAttentionParams& p);

}  // namespace kvt
