// Small host budgets: a store asked for 1, 2 or 8 MiB of host RAM (llama.cpp wired to kvtier,
// clients written from the C API contract) opens with the default slab size ("auto") and serves
// blocks, with and without an NVMe tier behind it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "src/store.h"
#include "tests/core/test_util.h"

namespace kvt {
namespace {

struct SmallHost {
  const char* host_bytes;
  uint64_t slab_bytes;  // what "auto" must pick
};

class StoreSmallHostTest : public ::testing::TestWithParam<SmallHost> {};

TEST(SmallHostOptions, AutoSlabAdaptsAndExplicitSlabKeepsItsRule) {
  Options o;
  EXPECT_EQ(o.HostSlabBytes(), 16ull << 20);  // 1 GiB default budget: the default slab
  ASSERT_TRUE(o.Set("host_bytes", "1MiB").ok());
  EXPECT_EQ(o.HostSlabBytes(), 256ull << 10);
  EXPECT_TRUE(o.Validate().ok());
  ASSERT_TRUE(o.Set("host_slab_bytes", "2MiB").ok());  // explicit and larger than the budget
  EXPECT_EQ(o.Validate().code(), Code::kInvalidArgument);
  ASSERT_TRUE(o.Set("host_slab_bytes", "auto").ok());
  EXPECT_TRUE(o.Validate().ok());
  ASSERT_TRUE(o.Set("host_bytes", "1KiB").ok());
  EXPECT_EQ(o.Validate().code(), Code::kInvalidArgument);
}

TEST_P(StoreSmallHostTest, OpensAndServesBlocks) {
  for (bool with_nvme : {false, true}) {
    SCOPED_TRACE(with_nvme ? "with NVMe" : "host only");
    testing::TestDir dir;
    Options o;
    ASSERT_TRUE(o.Set("dir", dir.path()).ok());
    ASSERT_TRUE(o.Set("host_bytes", GetParam().host_bytes).ok());
    ASSERT_TRUE(o.Set("host_mlock", "false").ok());
    if (with_nvme) {
      ASSERT_TRUE(o.Set("nvme_bytes", "8MiB").ok());
      ASSERT_TRUE(o.Set("nvme_segment_bytes", "1MiB").ok());
    }
    auto opened = Store::Open(o);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    std::unique_ptr<Store> s = std::move(opened).value();
    auto stats = nlohmann::json::parse(s->StatsJson());
    EXPECT_EQ(stats["tiers"]["host"]["slab_bytes"].get<uint64_t>(), GetParam().slab_bytes);

    NamespaceDesc d;
    d.model = "small@1";
    d.kv_dtype = "fp16";
    d.layers = 2;
    d.kv_heads = 2;
    d.head_dim = 64;
    d.block_tokens = 64;  // 64 KiB blocks
    auto ns = s->OpenNamespace(d);
    ASSERT_TRUE(ns.ok()) << ns.status().ToString();
    const size_t bytes = (*s->Namespace(*ns))->block_bytes;
    ASSERT_EQ(bytes, 64u << 10);
    // More blocks than the host tier holds: the oldest are evicted (to NVMe when there is one).
    const size_t host_blocks = (stats["tiers"]["host"]["capacity_bytes"].get<uint64_t>()) / bytes;
    const size_t n = host_blocks + 8;
    std::vector<int32_t> toks(n * d.block_tokens);
    for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>(i * 3 + 1);
    std::vector<Hash128> keys;
    ASSERT_TRUE(s->HashTokens(*ns, toks, &keys).ok());
    ASSERT_EQ(keys.size(), n);
    for (size_t i = 0; i < n; ++i) {
      auto data = testing::PatternBytes(keys[i].lo, bytes);
      ASSERT_TRUE(s->Put(*ns, keys[i], i ? keys[i - 1] : Hash128{}, &toks[i * d.block_tokens],
                         data.data(), bytes)
                      .ok())
          << i;
    }
    std::vector<uint8_t> out(bytes);
    size_t hits = 0;
    for (size_t i = 0; i < n; ++i) {
      Status g = s->Get(*ns, keys[i], out.data(), bytes);
      if (!g.ok()) {
        EXPECT_TRUE(g.IsNotFound()) << g.ToString();
        continue;
      }
      ++hits;
      ASSERT_EQ(out, testing::PatternBytes(keys[i].lo, bytes)) << i;
    }
    // Host only: the last blocks stay; with NVMe behind it every block comes back.
    EXPECT_GE(hits, with_nvme ? n : host_blocks / 2) << s->StatsJson();
    EXPECT_GT(hits, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Budgets, StoreSmallHostTest,
                         ::testing::Values(SmallHost{"1MiB", 256u << 10},
                                           SmallHost{"2MiB", 512u << 10},
                                           SmallHost{"8MiB", 2u << 20}),
                         [](const auto& info) {
                           return std::string(info.param.host_bytes);
                         });

}  // namespace
}  // namespace kvt
