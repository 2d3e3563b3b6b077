// HbmTier on the emulated device (the same code path a GPU runs, with memcpy for DMA). Every byte
// is read back through the device's copy path, so the checks hold on a real GPU too.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/core/test_util.h"
#include "tiers/hbm/hbm_tier.h"

namespace kvt {
namespace {

BlockMeta Meta(uint64_t i, uint32_t bytes) {
  BlockMeta m;
  m.ns = 7;
  m.key = {i, i * 3 + 1};
  m.parent = {i + 100, 0};
  m.payload_bytes = bytes;
  m.checksum = i;  // the tier stores what it is given; it never hashes device bytes
  return m;
}

class HbmTierTest : public ::testing::Test {
 protected:
  void Make(uint64_t budget, const char* policy = "lru") {
    dev_ = OpenDeviceMemory(/*force_emulated=*/true);
    HbmTierOptions o;
    o.budget_bytes = budget;
    o.policy = policy;
    auto t = HbmTier::Create(o, dev_.get());
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    tier_ = std::move(t).value();
  }
  std::vector<uint8_t> Device(const uint8_t* p, size_t n) {
    std::vector<uint8_t> out(n);
    EXPECT_TRUE(dev_->CopyAsync(out.data(), p, n, dev_->copy_stream()).ok());
    EXPECT_TRUE(dev_->Synchronize(dev_->copy_stream()).ok());
    return out;
  }
  std::unique_ptr<DeviceMemory> dev_;
  std::unique_ptr<HbmTier> tier_;
};

TEST_F(HbmTierTest, PutReadRoundTripAndSlotSizeFixedByFirstBlock) {
  Make(64 << 10);
  EXPECT_EQ(tier_->slot_bytes(), 0u);
  auto d = testing::PatternBytes(1, 5000);
  ASSERT_TRUE(tier_->Put(Meta(1, 5000), d.data()).ok());
  EXPECT_EQ(tier_->slot_bytes(), 5120u);  // 5000 rounded up to 256
  std::vector<uint8_t> out(5000);
  BlockMeta m;
  ASSERT_TRUE(tier_->Read(7, Meta(1, 5000).key, out.data(), out.size(), &m).ok());
  EXPECT_EQ(out, d);
  EXPECT_EQ(m.checksum, 1u);
  EXPECT_EQ(tier_->Read(7, Meta(1, 5000).key, out.data(), 4999, nullptr).code(),
            Code::kInvalidArgument);
  EXPECT_TRUE(tier_->Read(7, Meta(2, 5000).key, out.data(), out.size(), nullptr).IsNotFound());
  // A smaller block fits a slot; a larger one is refused with a reason.
  auto small = testing::PatternBytes(3, 100);
  ASSERT_TRUE(tier_->Put(Meta(3, 100), small.data()).ok());
  Status big = tier_->Put(Meta(4, 6000), testing::PatternBytes(4, 6000).data());
  EXPECT_EQ(big.code(), Code::kInvalidArgument) << big.ToString();
  EXPECT_NE(big.message().find("slots"), std::string::npos);
  nlohmann::json j;
  tier_->StatsJson(&j);
  EXPECT_EQ(j["blocks"], 2);
  EXPECT_EQ(j["memory"], "emulated");
  EXPECT_EQ(j["slots_total"], (64 << 10) / 5120);
}

TEST_F(HbmTierTest, EvictionFollowsPolicySkipsPinsAndHandsBytesToSink) {
  Make(4 * 4096);  // 4 slots of 4 KiB
  std::vector<std::pair<BlockMeta, std::vector<uint8_t>>> sunk;
  tier_->SetEvictSink([&](const BlockMeta& m, const uint8_t* data) {
    sunk.emplace_back(m, Device(data, m.payload_bytes));
  });
  for (uint64_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(tier_->Put(Meta(i, 4096), testing::PatternBytes(i, 4096).data()).ok());
  }
  HbmBlock pinned;
  ASSERT_TRUE(tier_->Pin(7, Meta(0, 4096).key, &pinned));  // oldest, but pinned
  ASSERT_TRUE(tier_->Put(Meta(10, 4096), testing::PatternBytes(10, 4096).data()).ok());
  ASSERT_EQ(sunk.size(), 1u);
  EXPECT_EQ(sunk[0].first.key, Meta(1, 4096).key);  // LRU order, the pinned block skipped
  EXPECT_EQ(sunk[0].second, testing::PatternBytes(1, 4096));
  EXPECT_TRUE(tier_->Lookup(7, Meta(0, 4096).key, nullptr, false));
  EXPECT_EQ(Device(pinned.data, 4096), testing::PatternBytes(0, 4096));
  tier_->Unpin(pinned);
  EXPECT_EQ(tier_->counters().evictions.load(), 1u);
}

TEST_F(HbmTierTest, AllPinnedIsBusyNotGrowth) {
  Make(2 * 4096);
  std::vector<HbmBlock> pins(2);
  for (uint64_t i = 0; i < 2; ++i) {
    ASSERT_TRUE(tier_->Put(Meta(i, 4096), testing::PatternBytes(i, 4096).data()).ok());
    ASSERT_TRUE(tier_->Pin(7, Meta(i, 4096).key, &pins[i]));
  }
  EXPECT_EQ(tier_->Put(Meta(5, 4096), testing::PatternBytes(5, 4096).data()).code(), Code::kBusy);
  EXPECT_EQ(tier_->counters().rejections.load(), 1u);
  for (auto& p : pins) tier_->Unpin(p);
  EXPECT_TRUE(tier_->Put(Meta(5, 4096), testing::PatternBytes(5, 4096).data()).ok());
}

TEST_F(HbmTierTest, ReservedSlotIsInvisibleUntilPublishedAndAbandonFreesIt) {
  Make(2 * 4096);
  auto r = tier_->Reserve(Meta(1, 4096));
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(tier_->Lookup(7, Meta(1, 4096).key, nullptr, false));
  auto d = testing::PatternBytes(1, 4096);
  ASSERT_TRUE(dev_->CopyAsync(r->data, d.data(), d.size(), dev_->copy_stream()).ok());
  tier_->Publish(*r);
  EXPECT_TRUE(tier_->Lookup(7, Meta(1, 4096).key, nullptr, false));
  // Still pinned for the publisher: not evictable while it reads.
  auto r2 = tier_->Reserve(Meta(2, 4096));
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(tier_->Reserve(Meta(3, 4096)).status().code(), Code::kBusy);
  tier_->Abandon(*r2);  // gives its slot back
  auto r3 = tier_->Reserve(Meta(3, 4096));
  ASSERT_TRUE(r3.ok());
  tier_->Abandon(*r3);
  tier_->Unpin(*r);
  std::vector<uint8_t> out(4096);
  ASSERT_TRUE(tier_->Read(7, Meta(1, 4096).key, out.data(), out.size(), nullptr).ok());
  EXPECT_EQ(out, d);
}

TEST_F(HbmTierTest, RemoveWhilePinnedKeepsBytesUntilUnpin) {
  Make(1 * 4096);
  ASSERT_TRUE(tier_->Put(Meta(1, 4096), testing::PatternBytes(1, 4096).data()).ok());
  HbmBlock b;
  ASSERT_TRUE(tier_->Pin(7, Meta(1, 4096).key, &b));
  ASSERT_TRUE(tier_->Remove(7, Meta(1, 4096).key).ok());
  EXPECT_TRUE(tier_->Remove(7, Meta(1, 4096).key).IsNotFound());
  // The only slot is still held by the reader: nothing can take it.
  EXPECT_EQ(tier_->Put(Meta(2, 4096), testing::PatternBytes(2, 4096).data()).code(), Code::kBusy);
  EXPECT_EQ(Device(b.data, 4096), testing::PatternBytes(1, 4096));
  tier_->Unpin(b);
  EXPECT_TRUE(tier_->Put(Meta(2, 4096), testing::PatternBytes(2, 4096).data()).ok());
  EXPECT_EQ(tier_->DropNamespace(7), 1u);
  EXPECT_FALSE(tier_->Lookup(7, Meta(2, 4096).key, nullptr, false));
}

}  // namespace
}  // namespace kvt
