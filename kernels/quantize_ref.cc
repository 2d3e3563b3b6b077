// CPU reference of the quantizing codec: two passes per (block, layer, tensor, head) group, first
// the absolute maximum, then the encode, with the same arithmetic as the CUDA codec.
#include "kernels/quant_math.h"
#include "kernels/quantize.h"
#include "kernels/validate.h"

namespace kvt {

Status QuantizeBlocksRef(const BlockLayout& src, int64_t num_blocks, const void* in, DType q_dtype,
                         void* out, float* scales) {
  KVT_RETURN_IF_ERROR(ValidateQuantize(src, num_blocks, in, q_dtype, out, scales));
  const BlockLayout& g = src;
  for (int64_t b = 0; b < num_blocks; ++b) {
    const int64_t base = b * g.block_elems();
    for (int32_t l = 0; l < g.layers; ++l) {
      for (int32_t t = 0; t < g.tensors(); ++t) {
        for (int32_t h = 0; h < g.kv_heads; ++h) {
          float amax = 0.0f;
          for (int32_t tok = 0; tok < g.block_tokens; ++tok) {
            const int64_t row = base + g.offset(l, t, tok, h);
            for (int32_t d = 0; d < g.head_dim; ++d) {
              const float x = LoadAsF32(in, row + d, g.dtype);
              const float a = x < 0.0f ? -x : x;
              if (IsFiniteF32(x) && a > amax) amax = a;
            }
          }
          scales[b * g.scales_per_block() + g.scale_index(l, t, h)] = QuantScale(q_dtype, amax);
          const float inv = QuantInvScale(q_dtype, amax);
          for (int32_t tok = 0; tok < g.block_tokens; ++tok) {
            const int64_t row = base + g.offset(l, t, tok, h);
            for (int32_t d = 0; d < g.head_dim; ++d) {
              QuantizeStore(out, row + d, q_dtype, LoadAsF32(in, row + d, g.dtype), inv);
            }
          }
        }
      }
    }
  }
  return Status::Ok();
}

Status DequantizeBlocksRef(const BlockLayout& q, int64_t num_blocks, const void* in,
                           const float* scales, DType out_dtype, void* out) {
  KVT_RETURN_IF_ERROR(ValidateDequantize(q, num_blocks, in, scales, out_dtype, out));
  for (int64_t b = 0; b < num_blocks; ++b) {
    const int64_t base = b * q.block_elems();
    for (int32_t l = 0; l < q.layers; ++l) {
      for (int32_t t = 0; t < q.tensors(); ++t) {
        for (int32_t tok = 0; tok < q.block_tokens; ++tok) {
          for (int32_t h = 0; h < q.kv_heads; ++h) {
            const float s = scales[b * q.scales_per_block() + q.scale_index(l, t, h)];
            const int64_t row = base + q.offset(l, t, tok, h);
            for (int32_t d = 0; d < q.head_dim; ++d) {
              StoreFromF32(out, row + d, out_dtype, DequantizeLoad(in, row + d, q.dtype, s));
            }
          }
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace kvt
