#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "test_util.h"
#include "tiers/host/host_tier.h"
#include "base/copy_checksum.h"
#include "base/hash.h"

namespace kvt {
namespace {

BlockMeta Meta(uint64_t i, uint32_t bytes) {
  BlockMeta m;
  m.ns = 7;
  m.key = {i, i * 3 + 1};
  m.payload_bytes = bytes;
  return m;
}

std::unique_ptr<HostTier> MakeTier(const char* policy, uint64_t budget = 1 << 20,
                                   uint64_t slab = 256 << 10) {
  HostTierOptions o;
  o.budget_bytes = budget;
  o.slab_bytes = slab;
  o.try_lock = false;
  o.policy = policy;
  o.verify_reads = true;
  auto t = HostTier::Create(o);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::move(t).value();
}

TEST(HostTier, PutReadRoundTripAndChecksum) {
  auto t = MakeTier("lru");
  auto data = testing::PatternBytes(1, 10000);
  ASSERT_TRUE(t->Put(Meta(1, 10000), data.data(), false).ok());
  std::vector<uint8_t> out(10000);
  BlockMeta m;
  ASSERT_TRUE(t->Read(7, {1, 4}, out.data(), out.size(), &m).ok());
  EXPECT_EQ(out, data);
  EXPECT_EQ(m.checksum, Checksum64(data.data(), data.size()));
  EXPECT_EQ(t->Read(7, {1, 4}, out.data(), 9999, nullptr).code(), Code::kInvalidArgument);
  EXPECT_TRUE(t->Read(8, {1, 4}, out.data(), out.size(), nullptr).IsNotFound());
}

// The batch answers exactly what Lookup answers for the keys still to do, and only for them.
TEST(HostTier, LookupBatchAnswersOnlyTheKeysToDo) {
  auto t = MakeTier("lru");
  std::vector<Hash128> keys;
  for (uint64_t i = 0; i < 6; ++i) {
    keys.push_back(Meta(i, 0).key);
    if (i % 2 == 0) {
      auto d = testing::PatternBytes(i, 4096);
      ASSERT_TRUE(t->Put(Meta(i, 4096), d.data(), false).ok());
    }
  }
  std::vector<uint8_t> todo = {1, 1, 1, 1, 0, 0};  // 4 held but not asked; 5 neither
  std::vector<BlockMeta> metas(keys.size());
  ASSERT_TRUE(t->LookupBatch(7, keys, todo, metas).ok());
  EXPECT_EQ(todo, (std::vector<uint8_t>{0, 1, 0, 1, 0, 0}));
  EXPECT_EQ(metas[0].key, keys[0]);
  EXPECT_EQ(metas[2].key, keys[2]);
  EXPECT_EQ(metas[2].payload_bytes, 4096u);
  EXPECT_EQ(metas[4].payload_bytes, 0u);  // not asked: untouched
  std::vector<uint8_t> other_ns = {1, 1, 1, 1, 1, 1};
  ASSERT_TRUE(t->LookupBatch(8, keys, other_ns, metas).ok());
  EXPECT_EQ(other_ns, (std::vector<uint8_t>(6, 1)));  // another namespace holds none of them
}

TEST(HostTier, StaysInsideBudgetUnderPressure) {
  // 1 MiB budget, 64 KiB blocks: 16 fit. Put 100; only the most recent 16 remain.
  auto t = MakeTier("lru");
  for (uint64_t i = 0; i < 100; ++i) {
    auto d = testing::PatternBytes(i, 65536);
    ASSERT_TRUE(t->Put(Meta(i, 65536), d.data(), false).ok());
  }
  nlohmann::json j;
  t->StatsJson(&j);
  EXPECT_LE(j["used_bytes"].get<uint64_t>(), 1u << 20);
  EXPECT_EQ(j["blocks"].get<uint64_t>(), 16u);
  EXPECT_EQ(j["evictions"].get<uint64_t>(), 84u);
  std::vector<uint8_t> out(65536);
  for (uint64_t i = 84; i < 100; ++i) {
    ASSERT_TRUE(t->Read(7, Meta(i, 0).key, out.data(), out.size(), nullptr).ok());
    EXPECT_EQ(out, testing::PatternBytes(i, 65536));
  }
  EXPECT_TRUE(t->Read(7, Meta(0, 0).key, out.data(), out.size(), nullptr).IsNotFound());
}

TEST(HostTier, AllPinnedMeansBusyNotGrowth) {
  auto t = MakeTier("s3fifo");
  std::vector<PinnedBlock> pins;
  for (uint64_t i = 0; i < 16; ++i) {
    auto d = testing::PatternBytes(i, 65536);
    ASSERT_TRUE(t->Put(Meta(i, 65536), d.data(), false).ok());
    PinnedBlock b;
    ASSERT_TRUE(t->Pin(7, Meta(i, 0).key, &b));
    pins.push_back(b);
  }
  auto d = testing::PatternBytes(99, 65536);
  Status s = t->Put(Meta(99, 65536), d.data(), false);
  EXPECT_EQ(s.code(), Code::kBusy) << s.ToString();
  nlohmann::json j;
  t->StatsJson(&j);
  EXPECT_EQ(j["rejections"].get<uint64_t>(), 1u);
  EXPECT_EQ(j["blocks"].get<uint64_t>(), 16u);
  // Pinned bytes are intact; after unpinning one, the put goes through.
  for (size_t i = 0; i < pins.size(); ++i) {
    EXPECT_EQ(std::memcmp(pins[i].data, testing::PatternBytes(i, 65536).data(), 65536), 0);
  }
  t->Unpin(pins[3]);
  EXPECT_TRUE(t->Put(Meta(99, 65536), d.data(), false).ok());
  for (size_t i = 0; i < pins.size(); ++i) {
    if (i != 3) t->Unpin(pins[i]);
  }
}

TEST(HostTier, RemoveWhilePinnedKeepsBytesForTheReader) {
  auto t = MakeTier("lru");
  auto d = testing::PatternBytes(5, 65536);
  ASSERT_TRUE(t->Put(Meta(5, 65536), d.data(), false).ok());
  PinnedBlock b;
  ASSERT_TRUE(t->Pin(7, Meta(5, 0).key, &b));
  ASSERT_TRUE(t->Remove(7, Meta(5, 0).key).ok());
  // Fill the tier: the removed block's slot must not be reused while pinned.
  for (uint64_t i = 100; i < 140; ++i) {
    auto x = testing::PatternBytes(i, 65536);
    ASSERT_TRUE(t->Put(Meta(i, 65536), x.data(), false).ok());
  }
  EXPECT_EQ(std::memcmp(b.data, d.data(), d.size()), 0);
  t->Unpin(b);
}

TEST(HostTier, EvictSinkSeesEvictedBytes) {
  auto t = MakeTier("lru");
  std::vector<uint64_t> demoted;
  t->SetEvictSink([&](const SlotPin& v) {
    const BlockMeta& m = v.meta;
    EXPECT_EQ(std::memcmp(v.data, testing::PatternBytes(m.key.lo, 65536).data(), 65536), 0);
    EXPECT_EQ(Checksum64(v.data, 65536), m.checksum);
    demoted.push_back(m.key.lo);
    return false;
  });
  for (uint64_t i = 0; i < 20; ++i) {
    auto d = testing::PatternBytes(i, 65536);
    ASSERT_TRUE(t->Put(Meta(i, 65536), d.data(), false).ok());
  }
  EXPECT_EQ(demoted, (std::vector<uint64_t>{0, 1, 2, 3}));
}

TEST(HostTier, DuplicatePutRefreshesAndDifferentIdentityReplaces) {
  auto t = MakeTier("lru");
  auto d1 = testing::PatternBytes(1, 4096), d2 = testing::PatternBytes(2, 4096);
  BlockMeta m = Meta(1, 4096);
  ASSERT_TRUE(t->Put(m, d1.data(), false).ok());
  ASSERT_TRUE(t->Put(m, d2.data(), false).ok());  // same identity: kept, not copied
  std::vector<uint8_t> out(4096);
  ASSERT_TRUE(t->Read(7, m.key, out.data(), out.size(), nullptr).ok());
  EXPECT_EQ(out, d1);
  m.parent = {9, 9};  // a different block under the same key
  ASSERT_TRUE(t->Put(m, d2.data(), false).ok());
  BlockMeta got;
  ASSERT_TRUE(t->Read(7, m.key, out.data(), out.size(), &got).ok());
  EXPECT_EQ(out, d2);
  EXPECT_EQ(got.parent, m.parent);
  size_t dropped = 0;
  ASSERT_TRUE(t->DropNamespace(7, &dropped).ok());
  EXPECT_EQ(dropped, 1u);
  EXPECT_FALSE(t->Lookup(7, m.key, nullptr, false));
}

}  // namespace
}  // namespace kvt

namespace kvt {
namespace {

// The put path's one-pass copy + checksum equals a copy followed by Checksum64, for sizes below,
// at and around its chunk size and XXH3's internal block sizes.
TEST(CopyWithChecksum, EqualsCopyThenChecksum) {
  for (size_t n : {0ul, 1ul, 240ul, 241ul, 1024ul, 16383ul, 16384ul, 16385ul, 65536ul, 100000ul,
                   (1ul << 20) + 7}) {
    auto src = testing::PatternBytes(n + 3, n);
    std::vector<uint8_t> dst(n + 1, 0xcc);
    EXPECT_EQ(CopyWithChecksum64(dst.data(), src.data(), n), Checksum64(src.data(), n)) << n;
    EXPECT_TRUE(std::equal(src.begin(), src.end(), dst.begin())) << n;
    EXPECT_EQ(dst[n], 0xcc) << n;
  }
}

}  // namespace
}  // namespace kvt
