// Scalar conversions checked against a brute-force "nearest representable value, ties to even"
// over every code of the target format, on every midpoint between adjacent codes (and the floats
// next to it) plus random values: the places where a rounding bug shows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/float_convert.h"

namespace kvt {
namespace {

struct Format {
  int bits;
  float (*decode)(uint32_t);
  uint32_t (*encode)(float);
  bool saturating;       // fp8: beyond max -> max; else beyond max -> Inf (code after max)
};

float DecF16(uint32_t c) { return F16BitsToF32(static_cast<uint16_t>(c)); }
float DecBf16(uint32_t c) { return Bf16BitsToF32(static_cast<uint16_t>(c)); }
float DecFp8(uint32_t c) { return Fp8E4M3ToF32(static_cast<uint8_t>(c)); }
uint32_t EncF16(float f) { return F32ToF16Bits(f); }
uint32_t EncBf16(float f) { return F32ToBf16Bits(f); }
uint32_t EncFp8(float f) { return F32ToFp8E4M3(f); }

const Format kF16{16, DecF16, EncF16, false};
const Format kBf16{16, DecBf16, EncBf16, false};
const Format kFp8{8, DecFp8, EncFp8, true};

// Non-negative finite codes sorted by value (codes of one sign are monotonic in value).
std::vector<std::pair<double, uint32_t>> PositiveCodes(const Format& f) {
  std::vector<std::pair<double, uint32_t>> v;
  const uint32_t half = 1u << (f.bits - 1);
  for (uint32_t c = 0; c < half; ++c) {
    const float x = f.decode(c);
    if (std::isfinite(x)) v.emplace_back(x, c);
  }
  return v;
}

// Brute-force reference for |x| (sign handled by the caller).
uint32_t Nearest(const Format& f, const std::vector<std::pair<double, uint32_t>>& codes, double ax) {
  const auto& top = codes.back();
  if (ax >= top.first) {
    if (f.saturating) return top.second;
    // IEEE: round as if the exponent were unbounded; the next value up is the Inf code.
    const double next = top.first + (top.first - codes[codes.size() - 2].first);
    if (ax < (top.first + next) / 2) return top.second;
    if (ax == (top.first + next) / 2) return (top.second & 1u) ? top.second + 1 : top.second;
    return top.second + 1;
  }
  auto it = std::lower_bound(codes.begin(), codes.end(), std::make_pair(ax, 0u));
  if (it->first == ax) return it->second;
  const auto lo = *(it - 1), hi = *it;
  const double dl = ax - lo.first, dh = hi.first - ax;
  if (dl < dh) return lo.second;
  if (dh < dl) return hi.second;
  return (lo.second & 1u) ? hi.second : lo.second;
}

void CheckFormat(const Format& f, const char* name) {
  const auto codes = PositiveCodes(f);
  const uint32_t sign = 1u << (f.bits - 1);
  std::vector<float> probes;
  for (size_t i = 0; i + 1 < codes.size(); ++i) {
    const float mid = static_cast<float>((codes[i].first + codes[i + 1].first) / 2);
    probes.insert(probes.end(), {static_cast<float>(codes[i].first), mid,
                                 std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)});
  }
  const float top = static_cast<float>(codes.back().first);
  probes.insert(probes.end(), {top, std::nextafter(top, INFINITY), top * 1.0625f, top * 1.5f,
                               top * 4.0f, 3.0e38f, 1e-45f, 1e-30f, 0.0f});
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> bits(0, 0x7f7fffffu);  // every finite float magnitude
  for (int i = 0; i < 200000; ++i) {
    uint32_t b = bits(rng);
    float x;
    std::memcpy(&x, &b, 4);
    probes.push_back(x);
  }
  int64_t bad = 0;
  for (float x : probes) {
    for (float sx : {x, -x}) {
      const uint32_t want = Nearest(f, codes, std::fabs(double(sx))) | (std::signbit(sx) ? sign : 0u);
      const uint32_t got = f.encode(sx);
      if (got != want && bad++ < 5) {
        ADD_FAILURE() << name << " encode(" << sx << ") = 0x" << std::hex << got << " want 0x" << want;
      }
    }
  }
  EXPECT_EQ(bad, 0) << name;
  // Every non-NaN code decodes and re-encodes to itself.
  for (uint32_t c = 0; c < (1u << f.bits); ++c) {
    const float x = f.decode(c);
    if (std::isnan(x)) {
      EXPECT_TRUE(std::isnan(f.decode(f.encode(x)))) << name << " NaN code " << c;
      continue;
    }
    ASSERT_EQ(f.encode(x), c) << name << " round trip of code " << c;
  }
}

TEST(FloatConvert, Fp16NearestEvenOverflowSubnormals) { CheckFormat(kF16, "fp16"); }
TEST(FloatConvert, Bf16NearestEvenOverflowSubnormals) { CheckFormat(kBf16, "bf16"); }
TEST(FloatConvert, Fp8E4M3NearestEvenSaturating) { CheckFormat(kFp8, "fp8_e4m3"); }

TEST(FloatConvert, SpecialValues) {
  // fp16: Inf, NaN, largest finite, smallest subnormal.
  EXPECT_EQ(F32ToF16Bits(INFINITY), 0x7c00);
  EXPECT_EQ(F32ToF16Bits(-INFINITY), 0xfc00);
  EXPECT_TRUE(std::isnan(F16BitsToF32(F32ToF16Bits(NAN))));
  EXPECT_EQ(F16BitsToF32(0x7bff), 65504.0f);
  EXPECT_EQ(F16BitsToF32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(F32ToF16Bits(65519.99f), 0x7bff);
  EXPECT_EQ(F32ToF16Bits(65520.0f), 0x7c00);
  // bf16
  EXPECT_EQ(F32ToBf16Bits(INFINITY), 0x7f80);
  EXPECT_TRUE(std::isnan(Bf16BitsToF32(F32ToBf16Bits(NAN))));
  EXPECT_EQ(F32ToBf16Bits(1.0f + std::ldexp(1.0f, -8)), 0x3f80);  // tie -> even
  // fp8 e4m3: no Inf; saturates; NaN code 0x7f; subnormal 2^-9.
  EXPECT_EQ(F32ToFp8E4M3(INFINITY), 0x7e);
  EXPECT_EQ(F32ToFp8E4M3(-INFINITY), 0xfe);
  EXPECT_EQ(F32ToFp8E4M3(1e6f), 0x7e);
  EXPECT_EQ(F32ToFp8E4M3(NAN) & 0x7f, 0x7f);
  EXPECT_EQ(Fp8E4M3ToF32(0x7e), 448.0f);
  EXPECT_EQ(Fp8E4M3ToF32(0x01), std::ldexp(1.0f, -9));
  EXPECT_TRUE(std::isnan(Fp8E4M3ToF32(0xff)));
  // int8 codes: nearest-even, symmetric clamp, NaN -> 0.
  EXPECT_EQ(F32ToInt8Sat(2.5f), 2);
  EXPECT_EQ(F32ToInt8Sat(-3.5f), -4);
  EXPECT_EQ(F32ToInt8Sat(1000.0f), 127);
  EXPECT_EQ(F32ToInt8Sat(-1000.0f), -127);
  EXPECT_EQ(F32ToInt8Sat(NAN), 0);
}

}  // namespace
}  // namespace kvt
