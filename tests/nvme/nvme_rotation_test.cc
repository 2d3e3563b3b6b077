// Segment rotation without a sync (issue 11): a rotation writes the new segment header but does
// not fdatasync it (on this kind of disk that flushes everything written since the last flush
// and cut sequential writes to 0.4x of the raw loop). Flush makes the header durable with the
// records, and syncs the directory after a segment file was created. These tests check the
// syncs (counted through a fault-injection FileIo) and the crash state the missing sync allows:
// a reclaimed segment whose old header came back, with index entries whose deletion was lost.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "io/fault_injection_file_io.h"
#include "tests/common/test_dir.h"
#include "tests/nvme/nvme_test_util.h"
#include "tiers/nvme/nvme_index.h"
#include "tiers/nvme/nvme_tier.h"
#include "tiers/nvme/segment_format.h"

namespace kvt {
namespace {

using testing::FillBlock;
using testing::KeyOf;
using testing::MetaOf;
using testing::SmallOptions;
using testing::TestDir;

constexpr uint64_t kRotationNs = 0x77;
constexpr uint32_t kBytes = 28 << 10;  // 32 KiB records: 7 per 256 KiB segment

void WriteBlocks(NvmeTier* t, uint64_t first, uint64_t n) {
  auto slot = testing::Slot(kBytes);
  for (uint64_t i = first; i < first + n; ++i) {
    FillBlock(kRotationNs, i, 0, slot.data(), kBytes);
    Status s = t->Write(MetaOf(kRotationNs, i, kBytes, slot.data()), slot.data());
    ASSERT_TRUE(s.ok()) << "block " << i << ": " << s.ToString();
  }
}

// OK with exact bytes, NotFound, or Internal("wrong bytes").
Status ReadBlock(NvmeTier* t, uint64_t i) {
  auto dst = testing::Slot(kBytes);
  auto want = testing::Slot(kBytes);
  FillBlock(kRotationNs, i, 0, want.data(), kBytes);
  KVT_RETURN_IF_ERROR(t->Read(kRotationNs, KeyOf(i), dst.data(), kBytes, nullptr));
  if (std::memcmp(dst.data(), want.data(), kBytes) != 0) return Status::Internal("wrong bytes");
  return Status::Ok();
}

TEST(NvmeRotationTest, WritesDoNotSyncFlushSyncsSegmentsAndTheDirectory) {
  TestDir dir;
  auto ctl = std::make_shared<FaultController>(7);
  NvmeOptions o = SmallOptions(dir.path(), 4);
  o.io_factory = [ctl] {
    return std::make_unique<FaultInjectionFileIo>(MakeDefaultFileIo(16), ctl);
  };
  auto t = NvmeTier::Open(o);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  // 40 records through 4 segments of 7: every segment is created, then two are reclaimed.
  WriteBlocks(t->get(), 0, 40);
  EXPECT_GE((*t)->Stats().segments_reclaimed, 2u);
  EXPECT_EQ(ctl->ops(FaultOp::kSync), 0u) << "a write or a rotation synced";

  // The first Flush after segment files were created syncs the directory too; it fails when
  // that sync fails, and the next Flush retries it.
  ctl->AddRule({FaultOp::kSync, FaultKind::kEio, 0.0, /*nth=*/1, /*max_faults=*/1});
  EXPECT_EQ((*t)->Flush().code(), Code::kIoError);
  const uint64_t after_failed = ctl->ops(FaultOp::kSync);
  ASSERT_TRUE((*t)->Flush().ok());
  // The retried directory sync, plus the segments the failed Flush's syncs did not cover
  // (none: they succeeded), so exactly one.
  EXPECT_EQ(ctl->ops(FaultOp::kSync) - after_failed, 1u);
  // Nothing new: nothing to sync.
  const uint64_t settled = ctl->ops(FaultOp::kSync);
  ASSERT_TRUE((*t)->Flush().ok());
  EXPECT_EQ(ctl->ops(FaultOp::kSync), settled);
  for (uint64_t i = 33; i < 40; ++i) EXPECT_TRUE(ReadBlock(t->get(), i).ok()) << i;
}

// A power cut after a reclaim but before any Flush covered the reclaimed segment: its header
// (not synced) may still name the old generation, and the reclaim's index deletes (not synced)
// may be lost, so old entries load and point at records of the new generation. They must read
// as stale misses (not corruption, not foreign bytes), fsck must call them stale, and every
// block flushed elsewhere reads back exact.
TEST(NvmeRotationTest, LostReclaimHeaderAndDeletesLeaveStaleEntriesNotCorruption) {
  TestDir dir;
  const NvmeOptions o = SmallOptions(dir.path(), 4);
  alignas(4096) static uint8_t old_header[4096];
  std::vector<NvmeEntry> old_entries;
  {
    auto t = NvmeTier::Open(o);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    WriteBlocks(t->get(), 0, 7);  // segment 0, full
    ASSERT_TRUE((*t)->Flush().ok());
    int fd = ::open(dir.file(SegmentFileName(0)).c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pread(fd, old_header, 4096, 0), 4096);
    ::close(fd);
    (*t)->ForEachEntry([&](const NvmeEntry& e) {
      if (e.loc.segment == 0) old_entries.push_back(e);
      return true;
    });
    ASSERT_EQ(old_entries.size(), 7u);
    // Segments 1-3, then segment 0 is reclaimed and takes blocks 28-30 at the offsets that
    // held blocks 0-2 (same sizes).
    WriteBlocks(t->get(), 7, 24);
    ASSERT_TRUE((*t)->Flush().ok());
    ASSERT_EQ((*t)->Stats().segments_reclaimed, 1u);
  }
  // The crash: segment 0's header reverts, and its old entries are back in the index.
  {
    int fd = ::open(dir.file(SegmentFileName(0)).c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, old_header, 4096, 0), 4096);
    ::close(fd);
    auto idx = NvmeIndex::Open(dir.file("index"), false);
    ASSERT_TRUE(idx.ok()) << idx.status().ToString();
    ASSERT_TRUE((*idx)->Put(old_entries).ok());
    ASSERT_TRUE((*idx)->Sync().ok());
  }
  auto t = NvmeTier::Open(o);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  {
    NvmeFsckReport r = (*t)->Fsck(/*repair=*/false);
    EXPECT_TRUE(r.clean()) << (r.problems.empty() ? "" : r.problems[0]);
    EXPECT_EQ(r.entries_bad, 0u);
    EXPECT_EQ(r.entries_stale, 3u);  // blocks 0-2: their space holds blocks 28-30 now
  }
  const uint64_t swept = (*t)->Stats().stale_swept;
  // Blocks 0-2: stale misses, swept. Blocks 3-6: their own records are intact, so they may come
  // back (with their own verified bytes). Blocks 7-27: flushed, exact. 28-30: their header was
  // lost with the crash: misses. Never wrong bytes.
  for (uint64_t i = 0; i < 3; ++i) EXPECT_TRUE(ReadBlock(t->get(), i).IsNotFound()) << i;
  for (uint64_t i = 3; i < 7; ++i) {
    Status r = ReadBlock(t->get(), i);
    EXPECT_TRUE(r.ok() || r.IsNotFound()) << i << ": " << r.ToString();
  }
  for (uint64_t i = 7; i < 28; ++i) EXPECT_TRUE(ReadBlock(t->get(), i).ok()) << i;
  for (uint64_t i = 28; i < 31; ++i) EXPECT_TRUE(ReadBlock(t->get(), i).IsNotFound()) << i;
  NvmeStats s = (*t)->Stats();
  EXPECT_EQ(s.checksum_failures, 0u);
  EXPECT_EQ(s.stale_swept - swept, 3u);
  for (uint64_t i = 0; i < 3; ++i) EXPECT_FALSE((*t)->Lookup(kRotationNs, KeyOf(i), nullptr)) << i;
  // New generations stay above every generation seen: new writes read back.
  WriteBlocks(t->get(), 100, 20);
  for (uint64_t i = 113; i < 120; ++i) EXPECT_TRUE(ReadBlock(t->get(), i).ok()) << i;
  EXPECT_EQ((*t)->Stats().checksum_failures, 0u);
}

}  // namespace
}  // namespace kvt
