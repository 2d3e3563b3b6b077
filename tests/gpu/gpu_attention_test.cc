// GPU paged decode attention against the CPU reference: every compiled head dim, every
// (query, KV) dtype pair, MHA/GQA/MQA with odd and > 16 groups (several head tiles), empty,
// ragged and long contexts (split-K with a merge), fp32 and 16-bit outputs.
//
// Tolerance (paged_attention.h): |gpu - cpu| <= 1e-3 * (1 + |cpu|), plus one ulp of a 16-bit
// output type (both sides round once; they may land on neighbouring values).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/gpu_kernels.h"
#include "kernels/paged_attention.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/kernels/kernel_test_util.h"

namespace kvt {
namespace {

using testing::DeviceBuffer;

class GpuAttention : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = testing::NoGpuReason();
    if (!why.empty()) GTEST_SKIP() << why;
    ASSERT_EQ(cudaStreamCreate(&stream_), cudaSuccess);
  }
  void TearDown() override {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  cudaStream_t stream_ = nullptr;
};

struct Case {
  int32_t d, qh, kvh, bt;
  DType q_t, kv_t, out_t;
  std::vector<int32_t> lens;
};

// Runs one case on both sides; returns the worst |gpu - cpu| / tolerance.
double RunCase(const Case& c, uint32_t seed, cudaStream_t stream) {
  std::mt19937 rng(seed);
  auto ctx = testing::MakePagedContexts(rng, c.kv_t, c.kvh, c.d, c.bt, c.lens);
  const int32_t n = static_cast<int32_t>(c.lens.size());
  auto q = testing::RandomElems(rng, c.q_t, int64_t(n) * c.qh * c.d);
  std::vector<float> scales;
  if (c.kv_t == DType::kFp8E4M3) {
    std::uniform_real_distribution<float> u(0.25f, 1.5f);
    scales.resize(static_cast<size_t>(ctx.num_cache_blocks * c.kvh * 2));
    for (auto& s : scales) s = u(rng);
  }
  PagedAttentionParams p;
  p.num_seqs = n;
  p.num_q_heads = c.qh;
  p.num_kv_heads = c.kvh;
  p.head_dim = c.d;
  p.block_tokens = c.bt;
  p.q_dtype = c.q_t;
  p.kv_dtype = c.kv_t;
  p.out_dtype = c.out_t;
  p.sm_scale = 1.0f / std::sqrt(float(c.d));
  p.num_cache_blocks = ctx.num_cache_blocks;
  p.max_blocks_per_seq = ctx.max_blocks_per_seq;
  p.max_context_len = *std::max_element(c.lens.begin(), c.lens.end());
  p.scale_block_stride = 2 * c.kvh;  // K scales then V scales per block, like the codec's layout
  const size_t out_bytes = size_t(n) * c.qh * c.d * DTypeSize(c.out_t);

  // CPU
  std::vector<uint8_t> out_cpu(out_bytes);
  PagedAttentionParams hp = p;
  hp.q = q.data();
  hp.kv = ctx.Layer();
  hp.block_table = ctx.table.data();
  hp.context_lens = ctx.lens.data();
  hp.k_scales = scales.empty() ? nullptr : scales.data();
  hp.v_scales = scales.empty() ? nullptr : scales.data() + c.kvh;
  hp.out = out_cpu.data();
  EXPECT_TRUE(PagedAttentionRef(hp).ok());

  // GPU
  DeviceBuffer q_d(q.data(), q.size()), k_d(ctx.k_cache.data(), ctx.k_cache.size()),
      v_d(ctx.v_cache.data(), ctx.v_cache.size()), t_d(ctx.table.data(), ctx.table.size() * 4),
      l_d(ctx.lens.data(), ctx.lens.size() * 4), out_d(out_bytes);
  DeviceBuffer s_d = scales.empty() ? DeviceBuffer(size_t{16})
                                    : DeviceBuffer(scales.data(), scales.size() * 4);
  PagedAttentionParams dp = p;
  dp.q = q_d.get();
  dp.kv = ctx.Layer();
  dp.kv.k = k_d.get();
  dp.kv.v = v_d.get();
  dp.block_table = t_d.as<int32_t>();
  dp.context_lens = l_d.as<int32_t>();
  dp.k_scales = scales.empty() ? nullptr : s_d.as<float>();
  dp.v_scales = scales.empty() ? nullptr : s_d.as<float>() + c.kvh;
  dp.out = out_d.get();
  const size_t ws_bytes = PagedAttentionGpuWorkspaceBytes(dp);
  DeviceBuffer ws(ws_bytes);
  const Status st = PagedAttentionGpu(dp, ws.get(), ws_bytes, stream);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  const auto out_gpu = out_d.Download();

  double worst = 0.0;
  for (int64_t i = 0; i < int64_t(out_bytes / DTypeSize(c.out_t)); ++i) {
    const double a = LoadAsF32(out_gpu.data(), i, c.out_t), b = LoadAsF32(out_cpu.data(), i, c.out_t);
    const double tol = 1e-3 * (1.0 + std::fabs(b)) + 2.0 * testing::HalfUlp(c.out_t, b);
    worst = std::max(worst, std::isfinite(a) ? std::fabs(a - b) / tol : 1e30);
  }
  return worst;
}

TEST_F(GpuAttention, MatchesCpuReference) {
  const std::vector<std::pair<DType, DType>> types = {{DType::kFp16, DType::kFp16},
                                                      {DType::kBf16, DType::kBf16},
                                                      {DType::kFp16, DType::kFp8E4M3},
                                                      {DType::kBf16, DType::kFp8E4M3}};
  const std::vector<std::pair<int, int>> heads = {{4, 4}, {8, 2}, {6, 1}, {15, 3}, {40, 2}};
  uint32_t seed = 1;
  int i = 0;
  for (int32_t d : {64, 80, 96, 128, 256}) {
    for (const auto& [q_t, kv_t] : types) {
      for (const auto& [qh, kvh] : heads) {
        const DType out_t = (i++ % 2) ? q_t : DType::kFp32;
        const int32_t bt = (i % 3 == 0) ? 5 : 16;
        const Case c{d, qh, kvh, bt, q_t, kv_t, out_t, {1, 0, 17, 300, 64}};
        SCOPED_TRACE("d" + std::to_string(d) + " q" + std::to_string(qh) + "/kv" +
                     std::to_string(kvh) + " bt" + std::to_string(bt) + " " + DTypeName(q_t) +
                     "/" + DTypeName(kv_t) + " out " + DTypeName(out_t));
        EXPECT_LE(RunCase(c, seed++, stream_), 1.0);
      }
    }
  }
}

TEST_F(GpuAttention, LongContextsSplitAndMerge) {
  // Few sequences and long contexts: the launcher splits the context and merges partitions.
  uint32_t seed = 100;
  for (int32_t d : {64, 128, 256}) {
    for (DType kv_t : {DType::kFp16, DType::kFp8E4M3}) {
      const Case c{d, 8, 1, 16, DType::kFp16, kv_t, DType::kFp32, {5000, 1, 777, 0}};
      SCOPED_TRACE("d" + std::to_string(d) + " " + DTypeName(kv_t));
      EXPECT_LE(RunCase(c, seed++, stream_), 1.0);
    }
  }
}

TEST_F(GpuAttention, RejectsWhatItCannotRun) {
  PagedAttentionParams p;
  p.num_seqs = 1;
  p.num_q_heads = p.num_kv_heads = 1;
  p.head_dim = 72;  // not compiled
  p.block_tokens = 16;
  p.max_blocks_per_seq = 1;
  p.max_context_len = 16;
  p.num_cache_blocks = 1;
  DeviceBuffer buf(1 << 16);
  p.q = p.out = buf.get();
  p.kv.k = p.kv.v = buf.get();
  p.kv.head_stride = 72;
  p.kv.token_stride = 72;
  p.kv.block_stride = 16 * 72;
  p.block_table = p.context_lens = buf.as<int32_t>();
  EXPECT_EQ(PagedAttentionGpu(p, nullptr, 0, stream_).code(), Code::kInvalidArgument);
  p.head_dim = 64;
  p.kv.head_stride = p.kv.token_stride = 66;  // rows not 16-byte aligned
  EXPECT_EQ(PagedAttentionGpu(p, nullptr, 0, stream_).code(), Code::kInvalidArgument);
  // A long context with one sequence needs a workspace.
  p.kv.head_stride = p.kv.token_stride = 64;
  p.max_blocks_per_seq = 1000;
  p.max_context_len = 16000;
  ASSERT_GT(PagedAttentionGpuWorkspaceBytes(p), 0u);
  EXPECT_EQ(PagedAttentionGpu(p, nullptr, 0, stream_).code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace kvt
