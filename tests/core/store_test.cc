#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "src/store.h"
#include "test_util.h"

namespace kvt {
namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Open("lru"); }
  void Open(const char* policy, const char* host_bytes = "4MiB") {
    store_.reset();
    Options o;
    ASSERT_TRUE(o.Set("dir", dir_.path()).ok());
    ASSERT_TRUE(o.Set("host_bytes", host_bytes).ok());
    ASSERT_TRUE(o.Set("host_slab_bytes", "256KiB").ok());
    ASSERT_TRUE(o.Set("host_policy", policy).ok());
    ASSERT_TRUE(o.Set("host_mlock", "false").ok());
    auto s = Store::Open(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    ns_ = OpenNs("tenant-a");
  }
  uint64_t OpenNs(const std::string& salt, const std::string& dtype = "fp16",
                  uint32_t heads = 2) {
    NamespaceDesc d;
    d.model = "tiny@1";
    d.kv_dtype = dtype;
    d.tenant_salt = salt;
    d.layers = 2;
    d.kv_heads = heads;
    d.head_dim = 64;
    d.block_tokens = 16;
    auto id = store_->OpenNamespace(d);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return *id;
  }
  size_t BlockBytes(uint64_t ns) { return (*store_->Namespace(ns))->block_bytes; }
  // Stores every full block of tokens under ns; returns the keys.
  std::vector<Hash128> PutPrompt(uint64_t ns, const std::vector<int32_t>& toks) {
    std::vector<Hash128> keys;
    EXPECT_TRUE(store_->HashTokens(ns, toks, &keys).ok());
    for (size_t i = 0; i < keys.size(); ++i) {
      auto data = testing::PatternBytes(keys[i].lo, BlockBytes(ns));
      Hash128 parent = i == 0 ? Hash128{} : keys[i - 1];
      EXPECT_TRUE(store_->Put(ns, keys[i], parent, &toks[i * 16], data.data(), data.size()).ok());
    }
    return keys;
  }
  static std::vector<int32_t> Tokens(size_t n, int32_t base) {
    std::vector<int32_t> t(n);
    for (size_t i = 0; i < n; ++i) t[i] = base + static_cast<int32_t>(i);
    return t;
  }
  nlohmann::json Stats() { return nlohmann::json::parse(store_->StatsJson()); }

  testing::TestDir dir_;
  std::unique_ptr<Store> store_;
  uint64_t ns_ = 0;
};

TEST_F(StoreTest, MatchPrefixFindsSharedPrefixAndReadsBack) {
  auto toks = Tokens(16 * 6, 100);
  auto keys = PutPrompt(ns_, toks);
  ASSERT_EQ(keys.size(), 6u);
  auto other = toks;
  other[16 * 4] = -5;  // differ in block 4
  std::vector<Hash128> k2;
  size_t prefix = 0;
  std::vector<Tier> tiers;
  ASSERT_TRUE(store_->MatchPrefix(ns_, other, &k2, &prefix, &tiers).ok());
  EXPECT_EQ(prefix, 4u);
  EXPECT_EQ(tiers[0], Tier::kHost);
  EXPECT_EQ(tiers[4], Tier::kNone);
  for (size_t i = 0; i < prefix; ++i) {
    std::vector<uint8_t> out(BlockBytes(ns_));
    ASSERT_TRUE(store_->Get(ns_, k2[i], out.data(), out.size()).ok());
    EXPECT_EQ(out, testing::PatternBytes(k2[i].lo, out.size()));
  }
}

TEST_F(StoreTest, NamespacesNeverShareBlocks) {
  auto toks = Tokens(16 * 3, 7);
  auto keys = PutPrompt(ns_, toks);
  for (uint64_t other : {OpenNs("tenant-b"), OpenNs("tenant-a", "bf16"), OpenNs("tenant-a", "fp16", 4)}) {
    ASSERT_NE(other, ns_);
    std::vector<Hash128> k2;
    size_t prefix = 99;
    ASSERT_TRUE(store_->MatchPrefix(other, toks, &k2, &prefix, nullptr).ok());
    EXPECT_EQ(prefix, 0u);
    // Even asking with the first namespace's keys finds nothing.
    ASSERT_TRUE(store_->Lookup(other, keys, &prefix, nullptr).ok());
    EXPECT_EQ(prefix, 0u);
    std::vector<uint8_t> out(BlockBytes(other));
    EXPECT_TRUE(store_->Get(other, keys[0], out.data(), out.size()).IsNotFound());
  }
}

TEST_F(StoreTest, WrongParentOrTokensIsACollisionMiss) {
  auto toks = Tokens(16 * 2, 1);
  auto keys = PutPrompt(ns_, toks);
  // Lookup with block 1's key after a different block 0: the stored parent differs.
  std::vector<Hash128> chain = {Hash128{42, 42}, keys[1]};
  std::vector<Tier> tiers(2);
  size_t prefix = 0;
  ASSERT_TRUE(store_->Lookup(ns_, chain, &prefix, tiers.data()).ok());
  EXPECT_EQ(tiers[1], Tier::kNone);
  EXPECT_EQ(Stats()["store"]["collisions"].get<uint64_t>(), 1u);
  // A block stored under key K with other tokens than the caller's: verified miss.
  auto data = testing::PatternBytes(3, BlockBytes(ns_));
  std::vector<int32_t> wrong(16, 999);
  std::vector<Hash128> k3;
  ASSERT_TRUE(store_->HashTokens(ns_, Tokens(16, 500), &k3).ok());
  ASSERT_TRUE(store_->Put(ns_, k3[0], {}, wrong.data(), data.data(), data.size()).ok());
  ASSERT_TRUE(store_->MatchPrefix(ns_, Tokens(16, 500), &k3, &prefix, nullptr).ok());
  EXPECT_EQ(prefix, 0u);
  EXPECT_EQ(Stats()["store"]["collisions"].get<uint64_t>(), 2u);
}

TEST_F(StoreTest, BadInputChangesNothing) {
  auto keys = PutPrompt(ns_, Tokens(16, 1));
  const std::string before = Stats().dump();
  std::vector<uint8_t> buf(BlockBytes(ns_) + 1);
  EXPECT_EQ(store_->Put(ns_, keys[0], {}, nullptr, buf.data(), buf.size()).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(store_->Get(ns_, keys[0], buf.data(), buf.size()).code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->Get(12345, keys[0], buf.data(), buf.size() - 1).code(),
            Code::kInvalidArgument);
  EXPECT_EQ(store_->Remove(12345, keys[0]).code(), Code::kInvalidArgument);
  EXPECT_EQ(Stats().dump(), before);
}

TEST_F(StoreTest, PrefetchToHostPinsAndCompletes) {
  auto keys = PutPrompt(ns_, Tokens(16 * 3, 1));
  auto t = store_->Prefetch(ns_, keys, Tier::kHost);
  ASSERT_TRUE(t.ok());
  for (uint32_t l = 0; l < 2; ++l) EXPECT_TRUE((*t)->WaitLayer(l, -1).ok());
  EXPECT_EQ((*t)->WaitLayer(2, 0).code(), Code::kInvalidArgument);
  EXPECT_TRUE((*t)->Wait(-1).ok());
  // While the ticket lives its blocks survive any pressure.
  for (int32_t p = 0; p < 200; ++p) PutPrompt(ns_, Tokens(16, 10000 + p * 16));
  size_t prefix = 0;
  ASSERT_TRUE(store_->Lookup(ns_, keys, &prefix, nullptr).ok());
  EXPECT_EQ(prefix, 3u);
  t->reset();
  std::vector<Hash128> missing = {Hash128{1, 2}};
  auto t2 = store_->Prefetch(ns_, missing, Tier::kHost);
  ASSERT_TRUE(t2.ok());
  EXPECT_TRUE((*t2)->Wait(-1).IsNotFound());
  EXPECT_EQ(store_->Prefetch(ns_, keys, Tier::kHbm).status().code(), Code::kUnavailable);
}

TEST_F(StoreTest, DropNamespaceEmptiesButKeepsId) {
  auto keys = PutPrompt(ns_, Tokens(16 * 2, 1));
  ASSERT_TRUE(store_->DropNamespace(ns_).ok());
  size_t prefix = 9;
  ASSERT_TRUE(store_->Lookup(ns_, keys, &prefix, nullptr).ok());
  EXPECT_EQ(prefix, 0u);
  PutPrompt(ns_, Tokens(16, 1));
  ASSERT_TRUE(store_->Lookup(ns_, keys, &prefix, nullptr).ok());
  EXPECT_EQ(prefix, 1u);
}

TEST_F(StoreTest, SecondOpenOfADirectoryIsBusy) {
  Options o;
  ASSERT_TRUE(o.Set("dir", dir_.path()).ok());
  ASSERT_TRUE(o.Set("host_bytes", "1MiB").ok());
  ASSERT_TRUE(o.Set("host_slab_bytes", "256KiB").ok());
  EXPECT_EQ(Store::Open(o).status().code(), Code::kBusy);
}

TEST_F(StoreTest, OtherFormatVersionRefused) {
  store_.reset();
  {
    std::ofstream f(dir_.path() + "/KVTIER_FORMAT", std::ios::trunc);
    f << "kvtier-format 99\n";
  }
  Options o;
  ASSERT_TRUE(o.Set("dir", dir_.path()).ok());
  ASSERT_TRUE(o.Set("host_bytes", "1MiB").ok());
  ASSERT_TRUE(o.Set("host_slab_bytes", "256KiB").ok());
  auto s = Store::Open(o);
  EXPECT_EQ(s.status().code(), Code::kCorruption);
  EXPECT_NE(s.status().message().find("99"), std::string::npos);
}

// Several threads put, get, look up and evict overlapping keys in a tier far smaller than the
// working set. Every successful read must return exactly the bytes written for that key.
void Hammer(Store* store, uint64_t ns, size_t bytes) {
  std::atomic<uint64_t> bad{0}, hits{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint8_t> out(bytes);
      uint64_t x = t + 1;
      for (int i = 0; i < 1500; ++i) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        const uint64_t k = (x >> 33) % 400;  // shared key space, larger than the tier
        Hash128 key{k + 1, k * 7 + 3};
        auto data = testing::PatternBytes(k, bytes);
        switch ((x >> 20) % 4) {
          case 0:
          case 1: {
            Status s = store->Put(ns, key, {}, nullptr, data.data(), bytes);
            if (!s.ok() && s.code() != Code::kBusy) bad++;
            break;
          }
          case 2: {
            Status s = store->Get(ns, key, out.data(), bytes);
            if (s.ok()) {
              hits++;
              if (out != data) bad++;
            } else if (!s.IsNotFound()) {
              bad++;
            }
            break;
          }
          default: {
            Status s = store->Remove(ns, key);
            if (!s.ok() && !s.IsNotFound()) bad++;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(hits.load(), 0u);
}

TEST_F(StoreTest, ConcurrentPutGetEvictNeverTornLru) { Hammer(store_.get(), ns_, BlockBytes(ns_)); }

TEST_F(StoreTest, ConcurrentPutGetEvictNeverTornS3Fifo) {
  Open("s3fifo", "2MiB");
  Hammer(store_.get(), ns_, BlockBytes(ns_));
}

TEST_F(StoreTest, ConcurrentPutGetEvictNeverTornChainLru) {
  Open("chain_lru", "2MiB");
  Hammer(store_.get(), ns_, BlockBytes(ns_));
}

}  // namespace
}  // namespace kvt
