// GpuCache (kvt_gpu_*) on the CPU path: an engine cache registered as host memory, saved into the
// store and loaded back into other blocks of a cache with another page layout, from every tier.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "src/gpu_cache.h"
#include "tests/core/test_util.h"

namespace kvt {
namespace {

constexpr int32_t kCacheLayers = 3, kHeads = 3, kDim = 64, kTokens = 8, kBlocks = 6;

// One layer's K and V, each [kBlocks] pages of kTokens x kHeads x kDim fp16.
struct Engine {
  std::vector<std::vector<uint16_t>> k, v;
  std::vector<void*> kp, vp;
  Engine(uint64_t seed) {
    for (int32_t l = 0; l < kCacheLayers; ++l) {
      const size_t n = size_t(kBlocks) * kTokens * kHeads * kDim;
      auto kb = testing::PatternBytes(seed * 10 + l, n * 2), vb = testing::PatternBytes(seed * 10 + l + 5, n * 2);
      k.emplace_back(n);
      v.emplace_back(n);
      std::memcpy(k.back().data(), kb.data(), n * 2);
      std::memcpy(v.back().data(), vb.data(), n * 2);
    }
    for (int32_t l = 0; l < kCacheLayers; ++l) {
      kp.push_back(k[l].data());
      vp.push_back(v[l].data());
    }
  }
  // Row (block, token, head) of layer l, K or V, under NHD or HND pages.
  const uint16_t* Row(bool hnd, int32_t l, bool is_v, int32_t b, int32_t t, int32_t h) const {
    const int64_t off = int64_t(b) * kTokens * kHeads * kDim +
                        (hnd ? (int64_t(h) * kTokens + t) : (int64_t(t) * kHeads + h)) * kDim;
    return (is_v ? v[l] : k[l]).data() + off;
  }
};

class GpuCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Options o;
    ASSERT_TRUE(o.Set("dir", dir_.path()).ok());
    ASSERT_TRUE(o.Set("host_bytes", "1MiB").ok());
    ASSERT_TRUE(o.Set("host_slab_bytes", "256KiB").ok());
    ASSERT_TRUE(o.Set("host_mlock", "false").ok());
    ASSERT_TRUE(o.Set("hbm_bytes", "1MiB").ok());
    ASSERT_TRUE(o.Set("nvme_bytes", "16MiB").ok());
    ASSERT_TRUE(o.Set("nvme_segment_bytes", "4MiB").ok());
    store_ = std::move(Store::Open(o)).value();
    NamespaceDesc d;
    d.model = "m@1";
    d.kv_dtype = "bf16";
    d.layers = kCacheLayers;
    d.kv_heads = kHeads;
    d.head_dim = kDim;
    d.block_tokens = kTokens;
    ns_ = *store_->OpenNamespace(d);
  }
  std::unique_ptr<GpuCache> Register(Engine& e, bool hnd) {
    GpuCache::Desc g;
    g.layers = kCacheLayers;
    g.k_layers = e.kp.data();
    g.v_layers = e.vp.data();
    g.num_blocks = kBlocks;
    if (hnd) {
      g.block_stride = int64_t(kTokens) * kHeads * kDim;
      g.token_stride = kDim;
      g.head_stride = int64_t(kTokens) * kDim;
    }
    g.host_memory = true;
    auto c = GpuCache::Register(store_.get(), ns_, g);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? std::move(c).value() : nullptr;
  }
  testing::TestDir dir_;
  std::unique_ptr<Store> store_;
  uint64_t ns_ = 0;
};

TEST_F(GpuCacheTest, SaveFromNhdLoadIntoHndExactFromEveryTier) {
  Engine src(1), dst(2);
  auto a = Register(src, /*hnd=*/false);
  auto b = Register(dst, /*hnd=*/true);
  ASSERT_TRUE(a && b);
  const std::vector<Hash128> keys = {{11, 1}, {12, 1}, {13, 1}};
  const std::vector<int32_t> from = {2, 0, 5}, to = {1, 3, 4};
  ASSERT_TRUE(a->Save(from, keys, nullptr, nullptr, nullptr).ok());
  // Block 0 only in HBM, block 1 only on NVMe, block 2 in host.
  {
    auto t = store_->Prefetch(ns_, std::vector<Hash128>{keys[0]}, Tier::kHbm);
    ASSERT_TRUE(t.ok() && (*t)->Wait(-1).ok());
  }
  ASSERT_TRUE(store_->host()->Remove(ns_, keys[0]).ok());
  ASSERT_TRUE(store_->Flush().ok());
  ASSERT_TRUE(store_->host()->Remove(ns_, keys[1]).ok());
  ASSERT_TRUE(store_->hbm()->Remove(ns_, keys[1]).IsNotFound());
  std::vector<Tier> tiers(3);
  size_t prefix = 0;
  ASSERT_TRUE(store_->Lookup(ns_, keys, &prefix, tiers.data()).ok());
  EXPECT_EQ(tiers, (std::vector<Tier>{Tier::kHbm, Tier::kNvme, Tier::kHost}));

  Engine untouched(2);
  ASSERT_TRUE(b->Load(keys, to, nullptr, nullptr).ok());
  for (int32_t l = 0; l < kCacheLayers; ++l) {
    for (int is_v = 0; is_v < 2; ++is_v) {
      for (int32_t blk = 0; blk < kBlocks; ++blk) {
        const auto it = std::find(to.begin(), to.end(), blk);
        for (int32_t t = 0; t < kTokens; ++t) {
          for (int32_t h = 0; h < kHeads; ++h) {
            const uint16_t* got = dst.Row(true, l, is_v, blk, t, h);
            const uint16_t* want =
                it == to.end() ? untouched.Row(true, l, is_v, blk, t, h)  // not a target: intact
                               : src.Row(false, l, is_v, from[it - to.begin()], t, h);
            ASSERT_EQ(std::memcmp(got, want, kDim * 2), 0)
                << "layer " << l << (is_v ? " V" : " K") << " block " << blk;
          }
        }
      }
    }
  }
}

TEST_F(GpuCacheTest, RejectsBadInputAndMissingKeysLeavingTheCacheUnchanged) {
  Engine e(3);
  auto c = Register(e, false);
  ASSERT_TRUE(c);
  const std::vector<Hash128> keys = {{21, 1}, {22, 1}};
  const std::vector<int32_t> bad = {0, kBlocks};
  EXPECT_EQ(c->Save(bad, keys, nullptr, nullptr, nullptr).code(), Code::kInvalidArgument);
  EXPECT_FALSE(store_->host()->Lookup(ns_, keys[0], nullptr, false));  // nothing stored
  const std::vector<int32_t> ok = {0, 1};
  ASSERT_TRUE(c->Save(std::span<const int32_t>(ok).first(1), std::span<const Hash128>(keys).first(1),
                      nullptr, nullptr, nullptr)
                  .ok());
  Engine before(3);
  EXPECT_TRUE(c->Load(keys, std::vector<int32_t>{4, 5}, nullptr, nullptr).IsNotFound());
  for (int32_t l = 0; l < kCacheLayers; ++l) EXPECT_EQ(e.k[l], before.k[l]);  // nothing copied
  GpuCache::Desc g;
  g.layers = kCacheLayers + 1;
  g.k_layers = e.kp.data();
  g.v_layers = e.vp.data();
  g.num_blocks = kBlocks;
  g.host_memory = true;
  EXPECT_EQ(GpuCache::Register(store_.get(), ns_, g).status().code(), Code::kInvalidArgument);
  g.layers = kCacheLayers;
  g.host_memory = false;  // device memory: needs a GPU
  auto dev = GpuCache::Register(store_.get(), ns_, g);
  if (store_->Device()->emulated()) {
    EXPECT_EQ(dev.status().code(), Code::kUnavailable);
    EXPECT_NE(dev.status().message().find("no GPU"), std::string::npos) << dev.status().ToString();
  }
}

}  // namespace
}  // namespace kvt
