// Bit-exact scalar conversions between fp32 and fp16, bf16, fp8-e4m3 and int8 codes.
//
// Used by the CPU references and, through KVT_HD, by the CUDA quantize kernels, so that the GPU
// codec produces the same bytes as the CPU codec (tests compare them exactly). The attention and
// copy kernels use the hardware conversion instructions instead; both are exact in the widening
// direction, so they agree.
//
// Rounding: float -> narrower is round-to-nearest-even everywhere.
//   fp16: overflow (|x| >= 65520) -> +-Inf; subnormals kept; NaN stays NaN (quiet).
//   bf16: overflow -> +-Inf (IEEE rounding); subnormals kept; NaN stays NaN (quiet).
//   fp8 e4m3 (OCP FN: bias 7, max 448, no Inf, NaN = S.1111.111): SATURATING, i.e. every finite
//     value beyond +-448 and +-Inf become +-448 (what cuda_fp8's __NV_SATFINITE does); subnormals
//     (2^-9 steps below 2^-6) kept; NaN -> 0x7F/0xFF.
//   int8 codes: symmetric, clamp to [-127, 127] (-128 unused so the range is symmetric); NaN -> 0.
// Widening conversions (fp16/bf16/fp8 -> fp32) are exact.
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <cstring>

#if !defined(__CUDA_ARCH__)
#include <cmath>
#endif

#include "kernels/dtype.h"
#include "kernels/host_device.h"

namespace kvt {

KVT_HD uint32_t F32Bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
#endif
}

KVT_HD float F32FromBits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
#endif
}

// Rounds the integer m * 2^-shift to nearest, ties to even (1 <= shift <= 31).
KVT_HD uint32_t RoundShiftRne(uint32_t m, int shift) {
  const uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1);
  return q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
}

// ---- fp16 (IEEE binary16) ----
KVT_HD uint16_t F32ToF16Bits(float f) {
  const uint32_t x = F32Bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: Inf
  if (ax < 0x38800000u) {                                              // below 2^-14: subnormal
    const int e = static_cast<int>(ax >> 23);
    const int shift = 126 - e;  // value = m * 2^(e-150); fp16 subnormal unit is 2^-24
    if (shift > 24) return static_cast<uint16_t>(sign);  // < 2^-25 (ties at 2^-25 go to 0)
    const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    return static_cast<uint16_t>(sign | RoundShiftRne(m, shift));  // may carry into 0x400: fine
  }
  uint32_t r = ax - 0x38000000u;  // rebias 127 -> 15
  r += 0xfffu + ((r >> 13) & 1u);
  return static_cast<uint16_t>(sign | (r >> 13));
}

KVT_HD float F16BitsToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu;
  uint32_t m = h & 0x3ffu;
  if (e == 0x1f) return F32FromBits(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    if (m == 0) return F32FromBits(sign);
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;  // m * 2^-24, exact
    return sign ? -v : v;
  }
  return F32FromBits(sign | ((e + 112u) << 23) | (m << 13));
}

// ---- bf16 ----
KVT_HD uint16_t F32ToBf16Bits(float f) {
  const uint32_t x = F32Bits(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

KVT_HD float Bf16BitsToF32(uint16_t b) { return F32FromBits(static_cast<uint32_t>(b) << 16); }

// ---- fp8 e4m3 (OCP FN), saturating ----
constexpr float kFp8E4M3Max = 448.0f;

KVT_HD uint8_t F32ToFp8E4M3(float f) {
  const uint32_t x = F32Bits(f);
  const uint32_t sign = (x >> 24) & 0x80u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<uint8_t>(sign | 0x7fu);  // NaN
  if (ax >= 0x43e00000u) return static_cast<uint8_t>(sign | 0x7eu);  // >= 448 or Inf: saturate
  if (ax < 0x3c800000u) {                                            // below 2^-6: subnormal
    const int e = static_cast<int>(ax >> 23);
    const int shift = 141 - e;  // value = m * 2^(e-150); e4m3 subnormal unit is 2^-9
    if (shift > 24) return static_cast<uint8_t>(sign);
    const uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    return static_cast<uint8_t>(sign | RoundShiftRne(m, shift));
  }
  uint32_t r = ax - 0x3c000000u;  // rebias 127 -> 7
  r += 0x7ffffu + ((r >> 20) & 1u);
  return static_cast<uint8_t>(sign | (r >> 20));  // x < 448 so this stays <= 0x7e
}

KVT_HD float Fp8E4M3ToF32(uint8_t v) {
  const uint32_t sign = static_cast<uint32_t>(v & 0x80u) << 24;
  const uint32_t e = (v >> 3) & 0xfu;
  const uint32_t m = v & 0x7u;
  if ((v & 0x7fu) == 0x7fu) return F32FromBits(sign | 0x7fc00000u);
  if (e == 0) {
    const float s = static_cast<float>(m) * 0.001953125f;  // m * 2^-9, exact
    return sign ? -s : s;
  }
  return F32FromBits(sign | ((e + 120u) << 23) | (m << 20));
}

// ---- int8 codes (symmetric) ----
KVT_HD int8_t F32ToInt8Sat(float f) {
  if (!(f == f)) return 0;  // NaN
#if defined(__CUDA_ARCH__)
  const float r = rintf(f);
#else
  const float r = std::nearbyint(f);  // default rounding mode: nearest-even
#endif
  if (r >= 127.0f) return 127;
  if (r <= -127.0f) return -127;
  return static_cast<int8_t>(r);
}

// ---- generic element access by runtime type (CPU references, quantize kernels) ----
// REQUIRES: t is a KV type or fp32; p points at element i of an array of that type.
KVT_HD float LoadAsF32(const void* p, int64_t i, DType t) {
  switch (t) {
    case DType::kFp16: return F16BitsToF32(static_cast<const uint16_t*>(p)[i]);
    case DType::kBf16: return Bf16BitsToF32(static_cast<const uint16_t*>(p)[i]);
    case DType::kFp8E4M3: return Fp8E4M3ToF32(static_cast<const uint8_t*>(p)[i]);
    case DType::kInt8: return static_cast<float>(static_cast<const int8_t*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

KVT_HD void StoreFromF32(void* p, int64_t i, DType t, float v) {
  switch (t) {
    case DType::kFp16: static_cast<uint16_t*>(p)[i] = F32ToF16Bits(v); break;
    case DType::kBf16: static_cast<uint16_t*>(p)[i] = F32ToBf16Bits(v); break;
    case DType::kFp8E4M3: static_cast<uint8_t*>(p)[i] = F32ToFp8E4M3(v); break;
    case DType::kInt8: static_cast<int8_t*>(p)[i] = F32ToInt8Sat(v); break;
    default: static_cast<float*>(p)[i] = v; break;
  }
}

}  // namespace kvt
