// Many threads writing, reading, removing and flushing one NvmeTier whose small budget forces
// reclaims all along. Every block's content is a function of its key, so any successful read can
// be checked exactly, whatever the interleaving.
#include <gtest/gtest.h>

#include <atomic>
#include <cinttypes>
#include <cstring>
#include <thread>
#include <vector>

#include "tests/nvme/nvme_test_util.h"
#include "tests/common/test_dir.h"
#include "tiers/nvme/nvme_tier.h"

namespace kvt {
namespace {

using testing::FillBlock;
using testing::KeyOf;
using testing::MetaOf;

TEST(NvmeConcurrencyTest, ParallelWritesReadsAndReclaims) {
  testing::TestDir dir;
  NvmeOptions o = testing::SmallOptions(dir.path(), 6);
  o.reinsertion = true;
  auto opened = NvmeTier::Open(o);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  NvmeTier& t = **opened;
  constexpr int kThreads = 4;
  constexpr int kOps = 400;
  constexpr uint64_t kKeys = 120;
  constexpr uint32_t kBytes = 16384;
  std::atomic<uint64_t> hits{0}, wrong{0}, errors{0};
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      auto slot = testing::Slot(kBytes);
      auto dst = testing::Slot(kBytes);
      std::mt19937_64 rng(th);
      for (int op = 0; op < kOps; ++op) {
        uint64_t i = rng() % kKeys;
        uint64_t ns = 1 + (i % 2);
        switch (rng() % 10) {
          case 0:
          case 1:
          case 2:
          case 3: {
            FillBlock(ns, i, 0, slot.data(), kBytes);
            if (!t.Write(MetaOf(ns, i, kBytes, slot.data()), slot.data()).ok()) ++errors;
            break;
          }
          case 4: {
            NvmeWriteItem items[3];
            std::vector<AlignedBuffer> bufs;
            for (int k = 0; k < 3; ++k) {
              bufs.push_back(testing::Slot(kBytes));
              uint64_t j = (i + k) % kKeys;
              FillBlock(1 + (j % 2), j, 0, bufs[k].data(), kBytes);
              items[k] = {MetaOf(1 + (j % 2), j, kBytes, bufs[k].data()), bufs[k].data()};
            }
            if (!t.WriteBatch(items).ok()) ++errors;
            break;
          }
          case 5:
            (void)t.Remove(ns, KeyOf(i));
            break;
          case 6:
            if (op % 50 == 0 && !t.Flush().ok()) ++errors;
            break;
          default: {
            Status s = t.Read(ns, KeyOf(i), dst.data(), dst.size(), nullptr);
            if (s.ok()) {
              FillBlock(ns, i, 0, slot.data(), kBytes);
              if (std::memcmp(slot.data(), dst.data(), kBytes) != 0) ++wrong;
              ++hits;
            } else if (!s.IsNotFound()) {
              ++errors;
            }
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  NvmeStats s = t.Stats();
  std::printf("hits %" PRIu64 ", reclaimed %" PRIu64 ", reinserted %" PRIu64 ", entries %" PRIu64
              "\n",
              hits.load(), s.segments_reclaimed, s.reinsertions, s.entries);
  EXPECT_EQ(wrong.load(), 0u);
  EXPECT_EQ(errors.load(), 0u);
  EXPECT_GT(hits.load(), 0u);
  EXPECT_GT(s.segments_reclaimed, 0u);
  EXPECT_EQ(s.checksum_failures, 0u);
  EXPECT_LE(s.bytes_used, s.budget_bytes);
  EXPECT_TRUE(t.Fsck(false).clean());
}

// Durable writers calling Flush at once: every call succeeds and is counted, and every flushed
// block is there, exact, after a reopen.
TEST(NvmeConcurrencyTest, ConcurrentWriteFlushPairs) {
  testing::TestDir dir;
  NvmeOptions o = testing::SmallOptions(dir.path(), 16, 1 << 20);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 25;
  constexpr uint32_t kBytes = 16384;
  {
    auto opened = NvmeTier::Open(o);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    NvmeTier& t = **opened;
    std::atomic<uint64_t> failures{0};
    std::vector<std::thread> threads;
    for (int th = 0; th < kThreads; ++th) {
      threads.emplace_back([&, th] {
        auto slot = testing::Slot(kBytes);
        for (int k = 0; k < kPerThread; ++k) {
          const uint64_t i = static_cast<uint64_t>(th) * kPerThread + k;
          FillBlock(1, i, 0, slot.data(), kBytes);
          if (!t.Write(MetaOf(1, i, kBytes, slot.data()), slot.data()).ok()) ++failures;
          if (!t.Flush().ok()) ++failures;
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures.load(), 0u);
    const NvmeStats st = t.Stats();
    EXPECT_EQ(st.flushes, uint64_t{kThreads} * kPerThread);
    EXPECT_GE(st.flush_syncs, 1u);
  }
  auto reopened = NvmeTier::Open(o);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  auto dst = testing::Slot(kBytes);
  auto want = testing::Slot(kBytes);
  for (uint64_t i = 0; i < uint64_t{kThreads} * kPerThread; ++i) {
    BlockMeta m;
    ASSERT_TRUE((*reopened)->Read(1, KeyOf(i), dst.data(), kBytes, &m).ok()) << "block " << i;
    FillBlock(1, i, 0, want.data(), kBytes);
    EXPECT_EQ(std::memcmp(dst.data(), want.data(), kBytes), 0) << "block " << i;
  }
}

}  // namespace
}  // namespace kvt
