// CPU reference of the quantizing codec: two passes per (block, layer, tensor, head) group, first
// the absolute maximum, then the encode, with the same arithmetic as the CUDA codec. The element
// types are template parameters (one dispatch per call, not a switch per element), which makes
// the loops several times faster; the remote tier's fp8 wire codec runs this code on every block.
#include <array>

#include "kernels/quant_math.h"
#include "kernels/quantize.h"
#include "kernels/validate.h"

namespace kvt {

namespace {

template <DType kIn, DType kQ>
void Quantize(const BlockLayout& g, int64_t num_blocks, const void* in, void* out, float* scales) {
  constexpr DType q_dtype = kQ;
  for (int64_t b = 0; b < num_blocks; ++b) {
    const int64_t base = b * g.block_elems();
    for (int32_t l = 0; l < g.layers; ++l) {
      for (int32_t t = 0; t < g.tensors(); ++t) {
        for (int32_t h = 0; h < g.kv_heads; ++h) {
          // The finite absolute maximum, found on the 16-bit patterns: with the sign cleared,
          // fp16 and bf16 patterns order as their values do, and the finite ones are those
          // whose exponent is not all ones. Integer max, no branch: the compiler vectorizes it.
          constexpr uint16_t kExp = kIn == DType::kFp16 ? 0x7c00 : 0x7f80;
          uint16_t amax_bits = 0;
          const auto* bits = static_cast<const uint16_t*>(in);
          for (int32_t tok = 0; tok < g.block_tokens; ++tok) {
            const uint16_t* p = bits + base + g.offset(l, t, tok, h);
            for (int32_t d = 0; d < g.head_dim; ++d) {
              const uint16_t a = p[d] & 0x7fff;
              const uint16_t finite = (a & kExp) != kExp ? a : 0;
              amax_bits = finite > amax_bits ? finite : amax_bits;
            }
          }
          const float amax = LoadAsF32(&amax_bits, 0, kIn);
          scales[b * g.scales_per_block() + g.scale_index(l, t, h)] = QuantScale(q_dtype, amax);
          const float inv = QuantInvScale(q_dtype, amax);
          for (int32_t tok = 0; tok < g.block_tokens; ++tok) {
            const int64_t row = base + g.offset(l, t, tok, h);
            for (int32_t d = 0; d < g.head_dim; ++d) {
              QuantizeStore(out, row + d, q_dtype, LoadAsF32(in, row + d, kIn), inv);
            }
          }
        }
      }
    }
  }
}

template <DType kQ, DType kOut>
void Dequantize(const BlockLayout& q, int64_t num_blocks, const void* in, const float* scales,
                void* out) {
  constexpr DType out_dtype = kOut;
  for (int64_t b = 0; b < num_blocks; ++b) {
    const int64_t base = b * q.block_elems();
    for (int32_t l = 0; l < q.layers; ++l) {
      for (int32_t t = 0; t < q.tensors(); ++t) {
        for (int32_t tok = 0; tok < q.block_tokens; ++tok) {
          for (int32_t h = 0; h < q.kv_heads; ++h) {
            const float s = scales[b * q.scales_per_block() + q.scale_index(l, t, h)];
            const int64_t row = base + q.offset(l, t, tok, h);
            if constexpr (kQ == DType::kFp8E4M3) {
              // The 256 fp8 values decoded once (the same floats Fp8E4M3ToF32 gives).
              static const auto kTable = [] {
                std::array<float, 256> t{};
                for (int v = 0; v < 256; ++v) t[v] = Fp8E4M3ToF32(static_cast<uint8_t>(v));
                return t;
              }();
              const auto* codes = static_cast<const uint8_t*>(in) + row;
              for (int32_t d = 0; d < q.head_dim; ++d) {
                const float v = kTable[codes[d]];
                StoreFromF32(out, row + d, out_dtype, v == v ? v * s : v);  // as DequantizeLoad
              }
            } else {
              for (int32_t d = 0; d < q.head_dim; ++d) {
                StoreFromF32(out, row + d, out_dtype, DequantizeLoad(in, row + d, kQ, s));
              }
            }
          }
        }
      }
    }
  }
}

// Calls f.template operator()<A>() for the runtime type a (one of `types`).
template <DType... kTypes, typename F>
void Dispatch(DType a, F&& f) {
  ((a == kTypes ? (f.template operator()<kTypes>(), true) : false) || ...);
}

}  // namespace

Status QuantizeBlocksRef(const BlockLayout& src, int64_t num_blocks, const void* in, DType q_dtype,
                         void* out, float* scales) {
  KVT_RETURN_IF_ERROR(ValidateQuantize(src, num_blocks, in, q_dtype, out, scales));
  Dispatch<DType::kFp16, DType::kBf16>(src.dtype, [&]<DType kIn>() {
    Dispatch<DType::kFp8E4M3, DType::kInt8>(q_dtype, [&]<DType kQ>() {
      Quantize<kIn, kQ>(src, num_blocks, in, out, scales);
    });
  });
  return Status::Ok();
}

Status DequantizeBlocksRef(const BlockLayout& q, int64_t num_blocks, const void* in,
                           const float* scales, DType out_dtype, void* out) {
  KVT_RETURN_IF_ERROR(ValidateDequantize(q, num_blocks, in, scales, out_dtype, out));
  Dispatch<DType::kFp8E4M3, DType::kInt8>(q.dtype, [&]<DType kQ>() {
    Dispatch<DType::kFp16, DType::kBf16, DType::kFp32>(out_dtype, [&]<DType kOut>() {
      Dequantize<kQ, kOut>(q, num_blocks, in, scales, out);
    });
  });
  return Status::Ok();
}

}  // namespace kvt
