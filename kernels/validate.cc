#include "kernels/validate.h"

#include <string>

namespace kvt {
namespace {

Status Bad(const std::string& what) { return Status::InvalidArgument(what); }

}  // namespace

Status ValidateBlockLayout(const BlockLayout& g) {
  if (g.layers <= 0 || g.kv_heads <= 0 || g.head_dim <= 0 || g.block_tokens <= 0) {
    return Bad("block layout: layers, kv_heads, head_dim and block_tokens must be positive (got " +
               std::to_string(g.layers) + ", " + std::to_string(g.kv_heads) + ", " +
               std::to_string(g.head_dim) + ", " + std::to_string(g.block_tokens) + ")");
  }
  if (!IsKvDType(g.dtype)) return Bad("block layout: dtype must be fp16, bf16, fp8_e4m3 or int8");
  if (g.mla && g.kv_heads != 1) return Bad("block layout: MLA blocks have kv_heads == 1");
  return Status::Ok();
}

Status ValidatePagedKvLayout(const PagedKvLayout& e) {
  KVT_RETURN_IF_ERROR(ValidateBlockLayout(e.geo).WithContext("engine layout"));
  if (e.k_layers == nullptr) return Bad("engine layout: k_layers is null");
  if (!e.geo.mla && e.v_layers == nullptr) return Bad("engine layout: v_layers is null (not MLA)");
  if (e.num_blocks < 0) return Bad("engine layout: num_blocks is negative");
  if (e.head_stride < 0 || e.token_stride < 0 || e.block_stride < 0) {
    return Bad("engine layout: negative stride");
  }
  // Rows must not overlap, or a scatter would be order dependent.
  if (e.geo.kv_heads > 1 && e.head_stride < e.geo.head_dim) {
    return Bad("engine layout: head_stride < head_dim (rows overlap)");
  }
  if (e.geo.block_tokens > 1 && e.token_stride < e.geo.head_dim) {
    return Bad("engine layout: token_stride < head_dim (rows overlap)");
  }
  if (e.num_blocks > 1 && e.block_stride == 0) return Bad("engine layout: block_stride is 0");
  return Status::Ok();
}

Status ValidateBlockCopy(const PagedKvLayout& e, const int32_t* block_ids, int64_t n,
                         const PayloadSlots& payloads, LayerRange layers) {
  KVT_RETURN_IF_ERROR(ValidatePagedKvLayout(e));
  if (n < 0) return Bad("block copy: n is negative");
  if (layers.begin < 0 || layers.count < 0 || layers.begin + layers.count > e.geo.layers) {
    return Bad("block copy: layer range [" + std::to_string(layers.begin) + ", +" +
               std::to_string(layers.count) + ") outside [0, " + std::to_string(e.geo.layers) +
               ")");
  }
  if (n == 0) return Status::Ok();
  if (block_ids == nullptr) return Bad("block copy: block_ids is null");
  if (payloads.base == nullptr) return Bad("block copy: payload base is null");
  if (payloads.slot_bytes < e.geo.block_bytes()) {
    return Bad("block copy: slot_bytes " + std::to_string(payloads.slot_bytes) +
               " < block bytes " + std::to_string(e.geo.block_bytes()));
  }
  return Status::Ok();
}

Status ValidateQuantize(const BlockLayout& src, int64_t num_blocks, const void* in, DType q_dtype,
                        const void* out, const float* scales) {
  KVT_RETURN_IF_ERROR(ValidateBlockLayout(src).WithContext("quantize"));
  if (!IsHalfDType(src.dtype)) return Bad("quantize: source dtype must be fp16 or bf16");
  if (!IsQuantDType(q_dtype)) return Bad("quantize: target dtype must be fp8_e4m3 or int8");
  if (num_blocks < 0) return Bad("quantize: num_blocks is negative");
  if (num_blocks > 0 && (in == nullptr || out == nullptr || scales == nullptr)) {
    return Bad("quantize: null in, out or scales");
  }
  return Status::Ok();
}

Status ValidateDequantize(const BlockLayout& q, int64_t num_blocks, const void* in,
                          const float* scales, DType out_dtype, const void* out) {
  KVT_RETURN_IF_ERROR(ValidateBlockLayout(q).WithContext("dequantize"));
  if (!IsQuantDType(q.dtype)) return Bad("dequantize: source dtype must be fp8_e4m3 or int8");
  if (!IsHalfDType(out_dtype) && out_dtype != DType::kFp32) {
    return Bad("dequantize: target dtype must be fp16, bf16 or fp32");
  }
  if (num_blocks < 0) return Bad("dequantize: num_blocks is negative");
  if (num_blocks > 0 && (in == nullptr || out == nullptr || scales == nullptr)) {
    return Bad("dequantize: null in, out or scales");
  }
  return Status::Ok();
}

Status ValidatePagedAttention(const PagedAttentionParams& p) {
  if (p.num_seqs < 0) return Bad("paged attention: num_seqs is negative");
  if (p.num_q_heads <= 0 || p.num_kv_heads <= 0 || p.head_dim <= 0 || p.block_tokens <= 0) {
    return Bad("paged attention: num_q_heads, num_kv_heads, head_dim, block_tokens must be positive");
  }
  if (p.num_q_heads % p.num_kv_heads != 0) {
    return Bad("paged attention: num_q_heads " + std::to_string(p.num_q_heads) +
               " is not a multiple of num_kv_heads " + std::to_string(p.num_kv_heads));
  }
  if (!IsHalfDType(p.q_dtype)) return Bad("paged attention: q_dtype must be fp16 or bf16");
  if (p.kv_dtype != p.q_dtype && p.kv_dtype != DType::kFp8E4M3) {
    return Bad("paged attention: kv_dtype must equal q_dtype or be fp8_e4m3");
  }
  if (p.out_dtype != DType::kFp32 && p.out_dtype != p.q_dtype) {
    return Bad("paged attention: out_dtype must be fp32 or q_dtype");
  }
  if (p.max_blocks_per_seq < 0 || p.max_context_len < 0 || p.num_cache_blocks < 0) {
    return Bad("paged attention: negative max_blocks_per_seq, max_context_len or num_cache_blocks");
  }
  if (static_cast<int64_t>(p.max_context_len) >
      static_cast<int64_t>(p.max_blocks_per_seq) * p.block_tokens) {
    return Bad("paged attention: max_context_len exceeds max_blocks_per_seq * block_tokens");
  }
  if (p.num_seqs == 0) return Status::Ok();
  if (p.q == nullptr || p.out == nullptr || p.block_table == nullptr ||
      p.context_lens == nullptr) {
    return Bad("paged attention: null q, out, block_table or context_lens");
  }
  if (p.max_context_len > 0 && (p.kv.k == nullptr || p.kv.v == nullptr)) {
    return Bad("paged attention: null K or V cache");
  }
  if (p.kv_dtype == DType::kFp8E4M3 && (p.k_scales == nullptr || p.v_scales == nullptr)) {
    return Bad("paged attention: fp8 KV needs k_scales and v_scales");
  }
  if (p.scale_block_stride < 0) return Bad("paged attention: negative scale_block_stride");
  return Status::Ok();
}

}  // namespace kvt
