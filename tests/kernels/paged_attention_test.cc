// Paged decode attention CPU reference against a naive dense attention (double precision) over the
// same tokens, for every head dim, MHA/GQA/MQA and odd groups, empty and ragged contexts, several
// block sizes and output types; then fp8 KV error, reported and bounded.
//
// Tolerance (paged fp32 vs dense double): |d| <= 2e-5 * (1 + |ref|); fp16/bf16 outputs add half an
// ulp of the output type. Contexts here are <= 300 tokens with |v| ~ N(0, 1).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "kernels/paged_attention.h"
#include "kernels/quantize.h"
#include "tests/kernels/kernel_test_util.h"

namespace kvt {
namespace {

using testing::DenseAttention;
using testing::MakePagedContexts;
using testing::PagedContexts;

struct AttnCase {
  PagedContexts ctx;
  std::vector<uint8_t> q;
  std::vector<float> qf;
  PagedAttentionParams p;
};

AttnCase Make(std::mt19937& rng, DType dt, int32_t qh, int32_t kvh, int32_t d, int32_t bt,
           const std::vector<int32_t>& lens, DType out_t) {
  AttnCase s;
  s.ctx = MakePagedContexts(rng, dt, kvh, d, bt, lens);
  const int64_t nq = static_cast<int64_t>(lens.size()) * qh * d;
  s.q = testing::RandomElems(rng, dt, nq);
  s.qf.resize(nq);
  for (int64_t i = 0; i < nq; ++i) s.qf[i] = LoadAsF32(s.q.data(), i, dt);
  PagedAttentionParams& p = s.p;
  p.num_seqs = static_cast<int32_t>(lens.size());
  p.num_q_heads = qh;
  p.num_kv_heads = kvh;
  p.head_dim = d;
  p.block_tokens = bt;
  p.q_dtype = dt;
  p.kv_dtype = dt;
  p.out_dtype = out_t;
  p.sm_scale = 1.0f / std::sqrt(static_cast<float>(d));
  p.q = s.q.data();
  p.kv = s.ctx.Layer();
  p.num_cache_blocks = s.ctx.num_cache_blocks;
  p.block_table = s.ctx.table.data();
  p.max_blocks_per_seq = s.ctx.max_blocks_per_seq;
  p.context_lens = s.ctx.lens.data();
  p.max_context_len = *std::max_element(lens.begin(), lens.end());
  return s;
}

// Max |paged - dense| / tolerance over all outputs (<= 1 passes).
double CompareWithDense(const AttnCase& s, const std::vector<uint8_t>& out, double rel_tol) {
  const PagedAttentionParams& p = s.p;
  double worst = 0.0;
  const int32_t group = p.num_q_heads / p.num_kv_heads;
  for (int32_t seq = 0; seq < p.num_seqs; ++seq) {
    for (int32_t h = 0; h < p.num_q_heads; ++h) {
      const int64_t row = (int64_t(seq) * p.num_q_heads + h) * p.head_dim;
      std::vector<float> q(s.qf.begin() + row, s.qf.begin() + row + p.head_dim);
      const auto ref = DenseAttention(q, s.ctx.dense_k[seq], s.ctx.dense_v[seq], s.ctx.lens[seq],
                                      p.num_kv_heads, h / group, p.head_dim, p.sm_scale);
      for (int32_t i = 0; i < p.head_dim; ++i) {
        const double got = LoadAsF32(out.data(), row + i, p.out_dtype);
        const double tol = rel_tol * (1.0 + std::fabs(ref[i])) + testing::HalfUlp(p.out_dtype, ref[i]);
        worst = std::max(worst, std::fabs(got - ref[i]) / tol);
      }
    }
  }
  return worst;
}

TEST(PagedAttentionRef, EqualsDenseAttention) {
  std::mt19937 rng(11);
  int cases = 0;
  for (int32_t d : {64, 80, 96, 128, 256}) {
    for (auto [qh, kvh] : std::vector<std::pair<int, int>>{{4, 4}, {8, 2}, {6, 1}, {15, 3}}) {
      for (int32_t bt : {16, 5}) {
        const DType dt = (cases & 1) ? DType::kBf16 : DType::kFp16;
        const DType out_t = (cases & 2) ? dt : DType::kFp32;
        SCOPED_TRACE("d" + std::to_string(d) + " q" + std::to_string(qh) + "/kv" +
                     std::to_string(kvh) + " bt" + std::to_string(bt) + " " + DTypeName(dt) +
                     " out " + DTypeName(out_t));
        AttnCase s = Make(rng, dt, qh, kvh, d, bt, {1, 0, 17, 5, 300, 16}, out_t);
        std::vector<uint8_t> out(s.p.num_seqs * qh * d * DTypeSize(out_t), 0xEE);
        s.p.out = out.data();
        ASSERT_TRUE(PagedAttentionRef(s.p).ok());
        EXPECT_LE(CompareWithDense(s, out, 2e-5), 1.0);
        ++cases;
      }
    }
  }
}

// The HBM pool holds payload slots; attention reads one layer of them in place (PoolLayerView),
// with fp8 K/V quantized per (block, head) by the codec. The error against fp16 KV is printed.
TEST(PagedAttentionRef, Fp8KvFromQuantizedPoolErrorBounded) {
  std::mt19937 rng(5);
  for (int32_t d : {64, 128}) {
    const int32_t qh = 8, kvh = 2, bt = 16, layers = 2, layer = 1;
    AttnCase s = Make(rng, DType::kFp16, qh, kvh, d, bt, {200, 33, 1, 64}, DType::kFp32);
    // Build a pool of payload slots holding the same tokens in layer `layer`.
    BlockLayout g{layers, kvh, d, bt, DType::kFp16, false};
    const int64_t nb = s.ctx.num_cache_blocks;
    std::vector<uint8_t> pool = testing::RandomElems(rng, DType::kFp16, nb * g.block_elems());
    const int64_t tensor_bytes = g.tensor_elems() * 2;
    for (int64_t b = 0; b < nb; ++b) {
      std::memcpy(&pool[b * g.block_bytes() + g.offset(layer, 0, 0, 0) * 2], &s.ctx.k_cache[b * tensor_bytes], tensor_bytes);
      std::memcpy(&pool[b * g.block_bytes() + g.offset(layer, 1, 0, 0) * 2], &s.ctx.v_cache[b * tensor_bytes], tensor_bytes);
    }
    // fp16 through the pool view must equal the plain cache result exactly.
    std::vector<float> ref(s.p.num_seqs * qh * d), via_pool(ref.size()), fp8(ref.size());
    s.p.out = ref.data();
    ASSERT_TRUE(PagedAttentionRef(s.p).ok());
    PagedAttentionParams p = s.p;
    p.kv = PoolLayerView(g, pool.data(), g.block_bytes(), layer);
    p.out = via_pool.data();
    ASSERT_TRUE(PagedAttentionRef(p).ok());
    EXPECT_EQ(ref, via_pool);

    BlockLayout qg = g;
    qg.dtype = DType::kFp8E4M3;
    std::vector<uint8_t> qpool(nb * qg.block_bytes());
    std::vector<float> scales(nb * g.scales_per_block());
    ASSERT_TRUE(QuantizeBlocksRef(g, nb, pool.data(), DType::kFp8E4M3, qpool.data(), scales.data()).ok());
    p.kv_dtype = DType::kFp8E4M3;
    p.kv = PoolLayerView(qg, qpool.data(), qg.block_bytes(), layer);
    p.k_scales = scales.data() + g.scale_index(layer, 0, 0);
    p.v_scales = scales.data() + g.scale_index(layer, 1, 0);
    p.scale_block_stride = g.scales_per_block();
    p.out = fp8.data();
    ASSERT_TRUE(PagedAttentionRef(p).ok());
    double max_err = 0, max_ref = 0, sum_sq = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      max_err = std::max(max_err, double(std::fabs(ref[i] - fp8[i])));
      max_ref = std::max(max_ref, double(std::fabs(ref[i])));
      sum_sq += double(ref[i] - fp8[i]) * (ref[i] - fp8[i]);
    }
    const double rms = std::sqrt(sum_sq / ref.size());
    std::printf("[fp8 kv] d=%d: max |err| = %.4f (%.2f%% of max |out| %.3f), rms err = %.5f\n", d,
                max_err, 100 * max_err / max_ref, max_ref, rms);
    // fp8-e4m3 keeps 3 mantissa bits (<= 6.25% per element); averaged by attention the output
    // error stays far below that. Bound: 5% of the largest output.
    EXPECT_LE(max_err, 0.05 * max_ref);
  }
}

TEST(PagedAttentionRef, RejectsBadTablesAndWritesNothing) {
  std::mt19937 rng(9);
  AttnCase s = Make(rng, DType::kFp16, 4, 2, 64, 16, {20, 40}, DType::kFp32);
  std::vector<float> out(2 * 4 * 64, 123.0f);
  s.p.out = out.data();
  s.ctx.table[1] = static_cast<int32_t>(s.ctx.num_cache_blocks);  // seq 0, block 1: out of range
  Status st = PagedAttentionRef(s.p);
  EXPECT_EQ(st.code(), Code::kInvalidArgument) << st.ToString();
  EXPECT_EQ(out, std::vector<float>(out.size(), 123.0f));
  s.ctx.table[1] = 0;
  s.ctx.lens[1] = 41;  // beyond max_context_len
  EXPECT_EQ(PagedAttentionRef(s.p).code(), Code::kInvalidArgument);
  s.ctx.lens[1] = 40;
  s.p.num_q_heads = 5;  // not a multiple of num_kv_heads
  EXPECT_EQ(PagedAttentionRef(s.p).code(), Code::kInvalidArgument);
  s.p.num_q_heads = 4;
  s.p.out_dtype = DType::kBf16;  // neither fp32 nor the query type
  EXPECT_EQ(PagedAttentionRef(s.p).code(), Code::kInvalidArgument);
  EXPECT_EQ(out, std::vector<float>(out.size(), 123.0f));
}

}  // namespace
}  // namespace kvt
