// Gather/scatter CPU reference: byte-exact round trips over awkward sizes, every layout the engine
// may use, skipped ids, single layers, and rejected calls that must leave memory bit-identical.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "kernels/gpu_kernels.h"
#include "kernels/paged_copy.h"
#include "tests/kernels/kernel_test_util.h"

namespace kvt {
namespace {

using testing::RandomBytes;

enum class Pages { kNhd, kHnd, kInterleaved };  // interleaved: FlashInfer [blocks][2][bt][H][d]

struct Engine {
  BlockLayout g;
  Pages pages;
  int64_t num_blocks;
  std::vector<std::vector<uint8_t>> mem;  // one allocation per layer (K and V inside)
  std::vector<void*> k, v;
  PagedKvLayout layout;

  Engine(const BlockLayout& geo, Pages p, int64_t blocks, std::mt19937& rng)
      : g(geo), pages(p), num_blocks(blocks) {
    const int64_t eb = g.elem_bytes(), te = g.tensor_elems();
    for (int l = 0; l < g.layers; ++l) {
      mem.push_back(RandomBytes(rng, static_cast<size_t>(blocks * g.tensors() * te * eb)));
      uint8_t* base = mem.back().data();
      k.push_back(base);
      // Separate K and V regions, or V right after K inside each page (interleaved).
      v.push_back(g.mla ? nullptr : base + (p == Pages::kInterleaved ? te : blocks * te) * eb);
    }
    void* const* vp = g.mla ? nullptr : v.data();
    layout = p == Pages::kHnd ? PagedKvLayout::Hnd(g, k.data(), vp, blocks)
                              : PagedKvLayout::Nhd(g, k.data(), vp, blocks);
    if (p == Pages::kInterleaved) layout.block_stride = g.tensors() * te;
  }

  // Byte address of element 0 of row (layer, tensor, block, token, head), written out by hand.
  const uint8_t* Row(int l, int t, int64_t b, int tok, int h) const {
    const int64_t eb = g.elem_bytes(), d = g.head_dim, H = g.kv_heads, bt = g.block_tokens;
    const uint8_t* base = static_cast<const uint8_t*>(t == 0 ? k[l] : v[l]);
    int64_t e;
    switch (pages) {
      case Pages::kNhd: e = ((b * bt + tok) * H + h) * d; break;
      case Pages::kHnd: e = ((b * H + h) * bt + tok) * d; break;
      default: e = b * g.tensors() * bt * H * d + (tok * H + h) * d; break;
    }
    return base + e * eb;
  }
};

// Payload row offset (bytes) written out from C_API.md, independent of BlockLayout::offset.
int64_t PayloadRow(const BlockLayout& g, int l, int t, int tok, int h) {
  return (((int64_t(l) * g.tensors() + t) * g.block_tokens + tok) * g.kv_heads + h) * g.head_dim *
         g.elem_bytes();
}

struct Case {
  int32_t head_dim, kv_heads, n;
  DType dtype;
  Pages pages;
  bool mla;
};

std::string Name(const Case& c) {
  return "d" + std::to_string(c.head_dim) + " H" + std::to_string(c.kv_heads) + " n" +
         std::to_string(c.n) + " " + DTypeName(c.dtype) + " pages" +
         std::to_string(int(c.pages)) + (c.mla ? " mla" : "");
}

void RunCase(const Case& c, uint32_t seed) {
  SCOPED_TRACE(Name(c));
  std::mt19937 rng(seed);
  BlockLayout g{3, c.mla ? 1 : c.kv_heads, c.head_dim, 5, c.dtype, c.mla};
  const int64_t blocks = 2 * c.n + 3;
  Engine src(g, c.pages, blocks, rng);
  // Ids: a shuffled subset of engine blocks; every third entry skipped (negative).
  std::vector<int32_t> pool(static_cast<size_t>(blocks));
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  std::vector<int32_t> ids(c.n), slots(c.n);
  for (int i = 0; i < c.n; ++i) ids[i] = (i % 3 == 1) ? -1 - i : pool[i];
  std::iota(slots.begin(), slots.end(), 0);
  std::shuffle(slots.begin(), slots.end(), rng);
  const int64_t slot_bytes = g.block_bytes() + 48;  // padding after each slot must stay untouched
  std::vector<uint8_t> payloads(static_cast<size_t>(c.n * slot_bytes), 0xAB);
  PayloadSlots ps{payloads.data(), slot_bytes, slots.data()};

  ASSERT_TRUE(GatherBlocksRef(src.layout, ids.data(), c.n, ps, LayerRange::All(g)).ok());
  const size_t row = static_cast<size_t>(g.row_bytes());
  for (int i = 0; i < c.n; ++i) {
    const uint8_t* pay = payloads.data() + slots[i] * slot_bytes;
    for (int64_t x = g.block_bytes(); x < slot_bytes; ++x) ASSERT_EQ(pay[x], 0xAB) << "padding";
    if (ids[i] < 0) {
      for (int64_t x = 0; x < g.block_bytes(); ++x) ASSERT_EQ(pay[x], 0xAB) << "skipped entry";
      continue;
    }
    for (int l = 0; l < g.layers; ++l)
      for (int t = 0; t < g.tensors(); ++t)
        for (int tok = 0; tok < g.block_tokens; ++tok)
          for (int h = 0; h < g.kv_heads; ++h)
            ASSERT_EQ(0, std::memcmp(pay + PayloadRow(g, l, t, tok, h),
                                     src.Row(l, t, ids[i], tok, h), row))
                << "entry " << i << " layer " << l << " tensor " << t << " tok " << tok;
  }

  // Scatter into a fresh engine, one layer at a time (the prefetch pipeline's granularity).
  Engine dst(g, c.pages, blocks, rng);
  const auto before = dst.mem;
  for (int l = 0; l < g.layers; ++l) {
    ASSERT_TRUE(ScatterBlocksRef(ps, dst.layout, ids.data(), c.n, LayerRange::One(l)).ok());
  }
  std::vector<bool> written(static_cast<size_t>(blocks), false);
  for (int i = 0; i < c.n; ++i) if (ids[i] >= 0) written[ids[i]] = true;
  for (int l = 0; l < g.layers; ++l)
    for (int t = 0; t < g.tensors(); ++t)
      for (int64_t b = 0; b < blocks; ++b)
        for (int tok = 0; tok < g.block_tokens; ++tok)
          for (int h = 0; h < g.kv_heads; ++h) {
            const uint8_t* got = dst.Row(l, t, b, tok, h);
            const int64_t off = got - dst.mem[l].data();
            const uint8_t* want = written[b] ? src.Row(l, t, b, tok, h) : before[l].data() + off;
            ASSERT_EQ(0, std::memcmp(got, want, row)) << "block " << b << " layer " << l;
          }
}

TEST(PagedCopyRef, RoundTripAwkwardSizesEveryHeadDim) {
  uint32_t seed = 1;
  for (int32_t d : {64, 80, 96, 128, 256}) {
    for (int32_t n : {1, 3, 7, 17}) {
      for (int32_t h : {1, 3, 5}) {
        RunCase({d, h, n, (n & 1) ? DType::kFp16 : DType::kFp8E4M3, Pages::kNhd, false}, seed++);
      }
    }
  }
}

TEST(PagedCopyRef, RoundTripEveryPageLayoutAndDtype) {
  uint32_t seed = 100;
  for (Pages p : {Pages::kNhd, Pages::kHnd, Pages::kInterleaved}) {
    for (DType t : {DType::kFp16, DType::kBf16, DType::kFp8E4M3, DType::kInt8}) {
      RunCase({80, 3, 7, t, p, false}, seed++);
      RunCase({40, 7, 3, t, p, false}, seed++);  // odd rows: 40 elements, not a 16-byte multiple
    }
  }
}

TEST(PagedCopyRef, RoundTripMla) {
  RunCase({576, 1, 7, DType::kBf16, Pages::kNhd, true}, 7);
  RunCase({576, 1, 17, DType::kFp8E4M3, Pages::kHnd, true}, 8);
}

TEST(PagedCopyRef, RejectedCallsChangeNothing) {
  std::mt19937 rng(3);
  BlockLayout g{2, 3, 64, 4, DType::kFp16, false};
  Engine e(g, Pages::kNhd, 5, rng);
  std::vector<uint8_t> payloads(static_cast<size_t>(3 * g.block_bytes()), 0x5C);
  PayloadSlots ps{payloads.data(), g.block_bytes(), nullptr};
  const auto pay_before = payloads;
  const auto eng_before = e.mem;
  std::vector<int32_t> ids = {1, 5, 2};  // 5 is out of range: nothing may be copied
  Status s = GatherBlocksRef(e.layout, ids.data(), 3, ps, LayerRange::All(g));
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_EQ(payloads, pay_before);
  s = ScatterBlocksRef(ps, e.layout, ids.data(), 3, LayerRange::All(g));
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(e.mem, eng_before);
  ids = {1, 0, 2};
  EXPECT_EQ(GatherBlocksRef(e.layout, ids.data(), 3, ps, LayerRange{1, 2}).code(),
            Code::kInvalidArgument);  // layers [1, 3) of 2
  PayloadSlots small{payloads.data(), g.block_bytes() - 2, nullptr};
  EXPECT_EQ(GatherBlocksRef(e.layout, ids.data(), 3, small, LayerRange::All(g)).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(payloads, pay_before);
  EXPECT_TRUE(GatherBlocksRef(e.layout, ids.data(), 0, ps, LayerRange::All(g)).ok());  // n = 0
}

TEST(KvLayout, PayloadGeometryMatchesCApi) {
  BlockLayout g{32, 8, 128, 16, DType::kBf16, false};
  EXPECT_EQ(g.block_bytes(), 32LL * 2 * 16 * 8 * 128 * 2);  // layers x (K,V) x tokens x heads x dim x 2
  EXPECT_EQ(g.offset(1, 0, 0, 0), g.layer_elems());
  EXPECT_EQ(g.offset(0, 1, 0, 0), 16 * 8 * 128);
  BlockLayout m{61, 1, 576, 64, DType::kFp8E4M3, true};
  EXPECT_EQ(m.block_bytes(), 61LL * 64 * 576);
  EXPECT_EQ(m.scales_per_block(), 61);
}

// The GPU entry points exist in every build; without CUDA they say so instead of failing to link.
TEST(GpuKernelsApi, PresentInEveryBuild) {
  PagedAttentionParams p;
#if defined(KVT_WITH_CUDA)
  EXPECT_TRUE(GpuKernelsBuilt());
  EXPECT_TRUE(GpuAttentionSupportsHeadDim(80));
  EXPECT_FALSE(GpuAttentionSupportsHeadDim(72));
  EXPECT_EQ(PagedAttentionGpu(p, nullptr, 0, nullptr).code(), Code::kInvalidArgument);  // host check
#else
  EXPECT_FALSE(GpuKernelsBuilt());
  const Status s = PagedAttentionGpu(p, nullptr, 0, nullptr);
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_NE(s.message().find("without CUDA"), std::string::npos) << s.message();
#endif
}

}  // namespace
}  // namespace kvt
