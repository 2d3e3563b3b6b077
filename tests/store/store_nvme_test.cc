// The store with an NVMe tier: blocks flow host -> NVMe on eviction (write-back) or on put
// (write-through), come back on a hit (promotion), and survive a reopen after flush.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "src/store.h"
#include "tests/core/test_util.h"

namespace kvt {
namespace {

class StoreNvmeTest : public ::testing::TestWithParam<const char*> {
 protected:
  std::unique_ptr<Store> Open(const char* write_policy, const char* codec = "none") {
    Options o;
    EXPECT_TRUE(o.Set("dir", dir_.path()).ok());
    EXPECT_TRUE(o.Set("host_bytes", "1MiB").ok());
    EXPECT_TRUE(o.Set("host_slab_bytes", "256KiB").ok());
    EXPECT_TRUE(o.Set("host_mlock", "false").ok());
    EXPECT_TRUE(o.Set("nvme_bytes", "32MiB").ok());
    EXPECT_TRUE(o.Set("nvme_segment_bytes", "4MiB").ok());
    EXPECT_TRUE(o.Set("write_policy", write_policy).ok());
    EXPECT_TRUE(o.Set("nvme_codec", codec).ok());
    auto s = Store::Open(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }
  uint64_t Ns(Store* s) {
    NamespaceDesc d;
    d.model = "tiny@1";
    d.kv_dtype = "bf16";
    d.layers = 2;
    d.kv_heads = 2;
    d.head_dim = 64;
    d.block_tokens = 16;
    return *s->OpenNamespace(d);
  }
  static std::vector<int32_t> Tokens(size_t n) {
    std::vector<int32_t> t(n);
    for (size_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>(i * 7 + 3);
    return t;
  }
  testing::TestDir dir_;
};

TEST_P(StoreNvmeTest, ManyBlocksThroughASmallHostTierReadBackExact) {
  auto s = Open(GetParam());
  ASSERT_TRUE(s);
  const uint64_t ns = Ns(s.get());
  const size_t bytes = (*s->Namespace(ns))->block_bytes;  // 16 KiB; 64 fit in host
  auto toks = Tokens(16 * 300);
  std::vector<Hash128> keys;
  ASSERT_TRUE(s->HashTokens(ns, toks, &keys).ok());
  for (size_t i = 0; i < keys.size(); ++i) {
    auto d = testing::PatternBytes(keys[i].lo, bytes);
    ASSERT_TRUE(s->Put(ns, keys[i], i ? keys[i - 1] : Hash128{}, &toks[i * 16], d.data(), bytes).ok());
  }
  std::vector<Hash128> k2;
  size_t prefix = 0;
  std::vector<Tier> tiers;
  ASSERT_TRUE(s->MatchPrefix(ns, toks, &k2, &prefix, &tiers).ok());
  EXPECT_EQ(prefix, keys.size()) << s->StatsJson();
  EXPECT_EQ(tiers.front(), Tier::kNvme);  // long evicted from host
  EXPECT_EQ(tiers.back(), Tier::kHost);
  std::vector<uint8_t> out(bytes);
  for (size_t i = 0; i < keys.size(); ++i) {
    ASSERT_TRUE(s->Get(ns, keys[i], out.data(), bytes).ok()) << i;
    ASSERT_EQ(out, testing::PatternBytes(keys[i].lo, bytes)) << i;
  }
  auto j = nlohmann::json::parse(s->StatsJson());
  EXPECT_GT(j["store"]["promotions"].get<uint64_t>(), 200u);
  EXPECT_LE(j["tiers"]["host"]["used_bytes"].get<uint64_t>(), 1u << 20);
  EXPECT_LE(j["tiers"]["nvme"]["used_bytes"].get<uint64_t>(), 32u << 20);
}

TEST_P(StoreNvmeTest, FlushedBlocksSurviveReopen) {
  auto toks = Tokens(16 * 100);
  std::vector<Hash128> keys;
  size_t bytes = 0;
  {
    auto s = Open(GetParam(), "zstd");
    ASSERT_TRUE(s);
    const uint64_t ns = Ns(s.get());
    bytes = (*s->Namespace(ns))->block_bytes;
    ASSERT_TRUE(s->HashTokens(ns, toks, &keys).ok());
    for (size_t i = 0; i < keys.size(); ++i) {
      auto d = testing::PatternBytes(keys[i].lo, bytes);
      ASSERT_TRUE(s->Put(ns, keys[i], i ? keys[i - 1] : Hash128{}, &toks[i * 16], d.data(), bytes).ok());
    }
    ASSERT_TRUE(s->Flush().ok());
  }
  auto s = Open(GetParam(), "zstd");
  ASSERT_TRUE(s);
  const uint64_t ns = Ns(s.get());
  std::vector<Hash128> k2;
  size_t prefix = 0;
  ASSERT_TRUE(s->MatchPrefix(ns, toks, &k2, &prefix, nullptr).ok());
  // Flush made every acknowledged block durable: demoted on eviction, written through on put,
  // or (write-back) written at flush.
  EXPECT_EQ(prefix, keys.size()) << s->StatsJson();
  std::vector<uint8_t> out(bytes);
  for (size_t i = 0; i < prefix; ++i) {
    ASSERT_TRUE(s->Get(ns, keys[i], out.data(), bytes).ok());
    ASSERT_EQ(out, testing::PatternBytes(keys[i].lo, bytes));
  }
}

TEST_P(StoreNvmeTest, RemoveAndDropReachTheNvmeTier) {
  auto s = Open(GetParam());
  ASSERT_TRUE(s);
  const uint64_t ns = Ns(s.get());
  const size_t bytes = (*s->Namespace(ns))->block_bytes;
  auto toks = Tokens(16 * 100);
  std::vector<Hash128> keys;
  ASSERT_TRUE(s->HashTokens(ns, toks, &keys).ok());
  for (size_t i = 0; i < keys.size(); ++i) {
    auto d = testing::PatternBytes(keys[i].lo, bytes);
    ASSERT_TRUE(s->Put(ns, keys[i], i ? keys[i - 1] : Hash128{}, nullptr, d.data(), bytes).ok());
  }
  ASSERT_TRUE(s->Remove(ns, keys[0]).ok());
  EXPECT_TRUE(s->Remove(ns, keys[0]).IsNotFound());
  std::vector<uint8_t> out(bytes);
  EXPECT_TRUE(s->Get(ns, keys[0], out.data(), bytes).IsNotFound());
  ASSERT_TRUE(s->DropNamespace(ns).ok());
  for (const auto& k : keys) EXPECT_TRUE(s->Get(ns, k, out.data(), bytes).IsNotFound());
}

INSTANTIATE_TEST_SUITE_P(WritePolicies, StoreNvmeTest,
                         ::testing::Values("write_back", "write_through"));

}  // namespace
}  // namespace kvt
