// CPU reference of paged decode attention: for each (sequence, query head), scores over the whole
// context, a max-subtracted softmax, then the weighted sum of V rows, all in fp32. Also what the
// store runs when there is no GPU, so it favours plain loops over cleverness.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/float_convert.h"
#include "kernels/paged_attention.h"
#include "kernels/validate.h"

namespace kvt {
namespace {

// Every block id the call will read, checked before anything is written.
Status CheckTable(const PagedAttentionParams& p) {
  const int64_t cap = static_cast<int64_t>(p.max_blocks_per_seq) * p.block_tokens;
  for (int32_t s = 0; s < p.num_seqs; ++s) {
    const int32_t len = p.context_lens[s];
    if (len < 0 || len > p.max_context_len || len > cap) {
      return Status::InvalidArgument("paged attention: context_lens[" + std::to_string(s) +
                                     "] = " + std::to_string(len) + " outside [0, " +
                                     std::to_string(p.max_context_len) + "]");
    }
    const int32_t nblocks = (len + p.block_tokens - 1) / p.block_tokens;
    for (int32_t b = 0; b < nblocks; ++b) {
      const int32_t id = p.block_table[static_cast<int64_t>(s) * p.max_blocks_per_seq + b];
      if (id < 0 || id >= p.num_cache_blocks) {
        return Status::InvalidArgument("paged attention: block_table[" + std::to_string(s) +
                                       "][" + std::to_string(b) + "] = " + std::to_string(id) +
                                       " outside [0, " + std::to_string(p.num_cache_blocks) + ")");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Status PagedAttentionRef(const PagedAttentionParams& p) {
  KVT_RETURN_IF_ERROR(ValidatePagedAttention(p));
  KVT_RETURN_IF_ERROR(CheckTable(p));
  const int32_t group = p.num_q_heads / p.num_kv_heads;
  const int32_t d = p.head_dim;
  const bool fp8 = p.kv_dtype == DType::kFp8E4M3;
  std::vector<float> q(d), acc(d), scores, vscale;
  for (int32_t s = 0; s < p.num_seqs; ++s) {
    const int32_t len = p.context_lens[s];
    const int32_t* table = p.block_table + static_cast<int64_t>(s) * p.max_blocks_per_seq;
    scores.assign(len, 0.0f);
    vscale.assign(len, 1.0f);
    for (int32_t h = 0; h < p.num_q_heads; ++h) {
      const int32_t g = h / group;
      const int64_t qrow = (static_cast<int64_t>(s) * p.num_q_heads + h) * d;
      for (int32_t i = 0; i < d; ++i) q[i] = LoadAsF32(p.q, qrow + i, p.q_dtype);
      float mx = -INFINITY;
      for (int32_t t = 0; t < len; ++t) {
        const int64_t blk = table[t / p.block_tokens];
        const int64_t row = p.kv.offset(blk, t % p.block_tokens, g);
        float dot = 0.0f;
        for (int32_t i = 0; i < d; ++i) dot += q[i] * LoadAsF32(p.kv.k, row + i, p.kv_dtype);
        if (fp8) {
          dot *= p.k_scales[blk * p.scale_stride() + g];
          vscale[t] = p.v_scales[blk * p.scale_stride() + g];
        }
        scores[t] = dot * p.sm_scale;
        mx = std::fmax(mx, scores[t]);
      }
      float sum = 0.0f;
      for (int32_t t = 0; t < len; ++t) {
        scores[t] = std::exp(scores[t] - mx);
        sum += scores[t];
      }
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int32_t t = 0; t < len; ++t) {
        const int64_t blk = table[t / p.block_tokens];
        const int64_t row = p.kv.offset(blk, t % p.block_tokens, g);
        const float w = scores[t] * vscale[t];
        for (int32_t i = 0; i < d; ++i) acc[i] += w * LoadAsF32(p.kv.v, row + i, p.kv_dtype);
      }
      const float inv = len > 0 ? 1.0f / sum : 0.0f;
      for (int32_t i = 0; i < d; ++i) StoreFromF32(p.out, qrow + i, p.out_dtype, acc[i] * inv);
    }
  }
  return Status::Ok();
}

}  // namespace kvt
