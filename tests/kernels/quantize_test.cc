// Quantizing codec CPU reference: every value within the stated bound (quant_math.h), scales as
// documented, special values handled, and the observed error printed next to the bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/quant_math.h"
#include "kernels/quantize.h"
#include "tests/kernels/kernel_test_util.h"

namespace kvt {
namespace {

// Random payloads whose groups have very different magnitudes (1e-3 .. 1e2) and a few outliers.
std::vector<uint8_t> MakePayloads(std::mt19937& rng, const BlockLayout& g, int64_t blocks) {
  std::vector<uint8_t> out(static_cast<size_t>(blocks * g.block_bytes()));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> mag(-3.0f, 2.0f);
  for (int64_t b = 0; b < blocks; ++b)
    for (int l = 0; l < g.layers; ++l)
      for (int t = 0; t < g.tensors(); ++t)
        for (int h = 0; h < g.kv_heads; ++h) {
          const float sigma = std::pow(10.0f, mag(rng));
          for (int tok = 0; tok < g.block_tokens; ++tok)
            for (int d = 0; d < g.head_dim; ++d) {
              float x = nd(rng) * sigma;
              if (rng() % 97 == 0) x *= 8.0f;  // outliers set the scale
              StoreFromF32(out.data(), b * g.block_elems() + g.offset(l, t, tok, h) + d, g.dtype, x);
            }
        }
  return out;
}

void CheckBound(DType src_t, DType q_t, int32_t head_dim) {
  SCOPED_TRACE(std::string(DTypeName(src_t)) + " -> " + DTypeName(q_t) + " d" + std::to_string(head_dim));
  std::mt19937 rng(head_dim * 7 + int(q_t));
  BlockLayout g{2, 3, head_dim, 16, src_t, false};
  const int64_t blocks = 3;
  const auto in = MakePayloads(rng, g, blocks);
  BlockLayout qg = g;
  qg.dtype = q_t;
  std::vector<uint8_t> q(static_cast<size_t>(blocks * qg.block_bytes()));
  std::vector<float> scales(static_cast<size_t>(blocks * g.scales_per_block()));
  ASSERT_TRUE(QuantizeBlocksRef(g, blocks, in.data(), q_t, q.data(), scales.data()).ok());
  std::vector<float> back32(static_cast<size_t>(blocks * g.block_elems()));
  std::vector<uint8_t> back16(static_cast<size_t>(blocks * g.block_bytes()));
  ASSERT_TRUE(DequantizeBlocksRef(qg, blocks, q.data(), scales.data(), DType::kFp32, back32.data()).ok());
  ASSERT_TRUE(DequantizeBlocksRef(qg, blocks, q.data(), scales.data(), src_t, back16.data()).ok());

  double worst = 0.0, max_rel = 0.0;
  for (int64_t b = 0; b < blocks; ++b)
    for (int l = 0; l < g.layers; ++l)
      for (int t = 0; t < g.tensors(); ++t)
        for (int h = 0; h < g.kv_heads; ++h) {
          const float scale = scales[b * g.scales_per_block() + g.scale_index(l, t, h)];
          float amax = 0.0f;
          for (int tok = 0; tok < g.block_tokens; ++tok)
            for (int d = 0; d < g.head_dim; ++d)
              amax = std::max(amax, std::fabs(LoadAsF32(in.data(), b * g.block_elems() + g.offset(l, t, tok, h) + d, src_t)));
          ASSERT_EQ(scale, amax / QuantMax(q_t));
          for (int tok = 0; tok < g.block_tokens; ++tok)
            for (int d = 0; d < g.head_dim; ++d) {
              const int64_t i = b * g.block_elems() + g.offset(l, t, tok, h) + d;
              const float x = LoadAsF32(in.data(), i, src_t);
              const float bound = QuantErrorBound(q_t, std::fabs(x), scale);
              const double err = std::fabs(double(x) - back32[i]);
              ASSERT_LE(err, bound) << "x=" << x << " scale=" << scale;
              worst = std::max(worst, err / bound);
              max_rel = std::max(max_rel, err / amax);
              // Into fp16/bf16: plus that type's half ulp.
              const double err16 = std::fabs(double(x) - LoadAsF32(back16.data(), i, src_t));
              ASSERT_LE(err16, bound + testing::HalfUlp(src_t, back32[i]) * 1.0001);
            }
        }
  std::printf("[quant] %s -> %s d=%d: max error / bound = %.3f, max error / group amax = %.2e\n",
              DTypeName(src_t), DTypeName(q_t), head_dim, worst, max_rel);
}

TEST(QuantizeRef, ErrorWithinStatedBound) {
  for (DType s : {DType::kFp16, DType::kBf16})
    for (DType q : {DType::kFp8E4M3, DType::kInt8})
      for (int32_t d : {64, 128}) CheckBound(s, q, d);
}

TEST(QuantizeRef, SpecialValues) {
  BlockLayout g{1, 1, 8, 2, DType::kFp16, true};  // MLA: one tensor, 16 elements
  std::vector<float> xs = {0, 0, 0, 0, 0, 0, 0, 0, 1.0f, -2.0f, INFINITY, -INFINITY, NAN, 0.5f, -0.25f, 0};
  std::vector<uint8_t> in(32);
  for (int i = 0; i < 16; ++i) StoreFromF32(in.data(), i, DType::kFp16, xs[i]);
  for (DType q : {DType::kFp8E4M3, DType::kInt8}) {
    std::vector<uint8_t> out(16);
    float scale = 0;
    ASSERT_TRUE(QuantizeBlocksRef(g, 1, in.data(), q, out.data(), &scale).ok());
    EXPECT_EQ(scale, 2.0f / QuantMax(q)) << "Inf and NaN are ignored by amax";
    std::vector<float> back(16);
    BlockLayout qg = g;
    qg.dtype = q;
    ASSERT_TRUE(DequantizeBlocksRef(qg, 1, out.data(), &scale, DType::kFp32, back.data()).ok());
    EXPECT_FLOAT_EQ(back[9], -2.0f);
    EXPECT_FLOAT_EQ(back[10], 2.0f) << "+Inf saturates to +amax";
    EXPECT_FLOAT_EQ(back[11], -2.0f);
    if (q == DType::kFp8E4M3) EXPECT_TRUE(std::isnan(back[12]));
    else EXPECT_EQ(back[12], 0.0f);
  }
  // An all-zero group: scale 1, codes 0.
  std::vector<uint8_t> zeros(32, 0), out(16, 0xFF);
  float scale = 0;
  ASSERT_TRUE(QuantizeBlocksRef(g, 1, zeros.data(), DType::kInt8, out.data(), &scale).ok());
  EXPECT_EQ(scale, 1.0f);
  EXPECT_EQ(out, std::vector<uint8_t>(16, 0));
}

TEST(QuantizeRef, RejectsBadTypes) {
  BlockLayout g{1, 1, 8, 2, DType::kFp16, true};  // MLA: one tensor, 16 elements
  std::vector<uint8_t> buf(64);
  float s;
  EXPECT_EQ(QuantizeBlocksRef(g, 1, buf.data(), DType::kBf16, buf.data(), &s).code(), Code::kInvalidArgument);
  g.dtype = DType::kInt8;
  EXPECT_EQ(QuantizeBlocksRef(g, 1, buf.data(), DType::kFp8E4M3, buf.data(), &s).code(), Code::kInvalidArgument);
  EXPECT_EQ(DequantizeBlocksRef(g, 1, buf.data(), nullptr, DType::kFp16, buf.data()).code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace kvt
