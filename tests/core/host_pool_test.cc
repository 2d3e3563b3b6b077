#include <gtest/gtest.h>

#include <set>

#include "tiers/host/host_pool.h"

namespace kvt {
namespace {

TEST(HostPool, SlotsAreAlignedAndWithinBudget) {
  auto p = HostPool::Create(4 << 20, 1 << 20, /*try_lock=*/false);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  HostPool& pool = **p;
  std::set<uint8_t*> seen;
  std::vector<SlotRef> slots;
  // 5000-byte blocks take 8 KiB slots: 128 per 1 MiB slab, 512 in 4 slabs.
  for (;;) {
    auto s = pool.Allocate(5000);
    if (!s) break;
    uint8_t* d = pool.Data(*s);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(d) % 4096, 0u);
    EXPECT_TRUE(seen.insert(d).second);
    EXPECT_GE(d, pool.memory().data());
    EXPECT_LE(d + 8192, pool.memory().data() + pool.memory().size());
    slots.push_back(*s);
  }
  EXPECT_EQ(slots.size(), 512u);
  EXPECT_EQ(pool.Stats().bytes_used, 4u << 20);
  for (SlotRef s : slots) pool.Release(s);
  EXPECT_EQ(pool.Stats().slabs_free, 4u);
  EXPECT_EQ(pool.Stats().bytes_used, 0u);
}

TEST(HostPool, FreedSlabsServeOtherSizesAndLargeRuns) {
  auto p = HostPool::Create(4 << 20, 1 << 20, false);
  ASSERT_TRUE(p.ok());
  HostPool& pool = **p;
  auto a = pool.Allocate(4096);
  ASSERT_TRUE(a);
  // A 2.5 MiB block needs a run of 3 contiguous slabs: slabs 1..3 are free.
  auto big = pool.Allocate((5 << 20) / 2);
  ASSERT_TRUE(big);
  EXPECT_FALSE(pool.Allocate((5 << 20) / 2));  // no second run
  pool.Release(*a);
  pool.Release(*big);
  EXPECT_TRUE(pool.Allocate(4 << 20));  // the whole pool as one run
  EXPECT_FALSE(pool.Fits((4 << 20) + 1));
}

TEST(HostPool, PinnedSlotFreedAtLastUnpin) {
  auto p = HostPool::Create(1 << 20, 1 << 20, false);
  ASSERT_TRUE(p.ok());
  HostPool& pool = **p;
  auto s = pool.Allocate(1 << 20);
  ASSERT_TRUE(s);
  pool.Pin(*s);
  pool.Pin(*s);
  pool.Release(*s);
  EXPECT_FALSE(pool.Allocate(4096));  // still held by the readers
  pool.Unpin(*s);
  EXPECT_FALSE(pool.Allocate(4096));
  pool.Unpin(*s);
  EXPECT_TRUE(pool.Allocate(4096));
  EXPECT_EQ(pool.Stats().deferred_frees, 1u);
}

TEST(HostPool, RejectsBadGeometry) {
  EXPECT_EQ(HostPool::Create(1 << 20, 5000, false).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(HostPool::Create(1 << 19, 1 << 20, false).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace kvt
