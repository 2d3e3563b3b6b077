// Per-(block, layer, K/V, head) symmetric quantization arithmetic, shared by the CPU codec and the
// CUDA codec so both produce identical bytes.
//
// For each group of block_tokens x head_dim values x:
//   amax  = max |x| over the group's finite values (NaN/Inf ignored)
//   scale = amax / qmax        (qmax = 448 for fp8-e4m3, 127 for int8; scale = 1 when amax == 0)
//   q     = Encode(x * (qmax / amax))   fp8: RNE, saturating; int8: RNE, clamp to +-127
//   x'    = q * scale
// Error bound for a finite x (|x| <= amax by construction), as returned by QuantErrorBound:
//   int8: |x - x'| <= scale / 2                       (= amax / 254)
//   fp8 : |x - x'| <= max(|x| * 2^-4, scale * 2^-10)  (3 mantissa bits: half an ulp is 2^-4
//                                                      relative; below 2^-6 the subnormal step
//                                                      2^-9 gives half-step 2^-10 absolute)
// each times (1 + 2^-20) plus |x| * 2^-20 for the fp32 rounding of x*inv and q*scale.
// Dequantizing into fp16/bf16 adds that type's own rounding (half an ulp: 2^-11 relative for fp16,
// 2^-8 for bf16). +-Inf inputs saturate to +-amax; NaN becomes NaN (fp8) or 0 (int8).
//
// Thread safety: pure functions.
#pragma once

#include "kernels/dtype.h"
#include "kernels/float_convert.h"
#include "kernels/host_device.h"

namespace kvt {

KVT_HD float QuantMax(DType q) { return q == DType::kFp8E4M3 ? kFp8E4M3Max : 127.0f; }

KVT_HD bool IsFiniteF32(float x) { return (F32Bits(x) & 0x7f800000u) != 0x7f800000u; }

// The stored scale of a group whose finite absolute maximum is amax.
KVT_HD float QuantScale(DType q, float amax) { return amax > 0.0f ? amax / QuantMax(q) : 1.0f; }
// The multiplier applied before encoding. Computed by division (not 1/scale) on both sides so the
// CPU and GPU agree bit for bit.
KVT_HD float QuantInvScale(DType q, float amax) { return amax > 0.0f ? QuantMax(q) / amax : 1.0f; }

// NaN is handled before any arithmetic: GPUs return a canonical NaN from x * y while x86 keeps
// the operand's payload and sign, and the two codecs must produce the same bytes.
KVT_HD void QuantizeStore(void* dst, int64_t i, DType q, float x, float inv_scale) {
  if (!(x == x)) {
    if (q == DType::kFp8E4M3) static_cast<uint8_t*>(dst)[i] = 0x7fu;
    else static_cast<int8_t*>(dst)[i] = 0;
    return;
  }
  const float y = x * inv_scale;
  if (q == DType::kFp8E4M3) {
    static_cast<uint8_t*>(dst)[i] = F32ToFp8E4M3(y);
  } else {
    static_cast<int8_t*>(dst)[i] = F32ToInt8Sat(y);
  }
}

KVT_HD float DequantizeLoad(const void* src, int64_t i, DType q, float scale) {
  const float v = LoadAsF32(src, i, q);
  return v == v ? v * scale : v;  // NaN passes through unmultiplied (see QuantizeStore)
}

// The bound stated above, for one value.
KVT_HD float QuantErrorBound(DType q, float abs_x, float scale) {
  float b;
  if (q == DType::kFp8E4M3) {
    const float rel = abs_x * 0.0625f;            // 2^-4
    const float sub = scale * 0.0009765625f;      // 2^-10
    b = rel > sub ? rel : sub;
  } else {
    b = 0.5f * scale;
  }
  return b * (1.0f + 9.5367431640625e-7f) + abs_x * 9.5367431640625e-7f;  // 2^-20 slack
}

}  // namespace kvt
