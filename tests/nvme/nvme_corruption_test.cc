// Corruption: bytes flipped in segment files, truncated segment files. Every affected read is a
// miss counted as a checksum failure, fsck (API and CLI) finds every affected entry, and no read
// ever returns wrong bytes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>

#include "tests/nvme/nvme_test_util.h"
#include "tests/common/test_dir.h"
#include "tiers/nvme/nvme_tier.h"
#include "tiers/nvme/segment_format.h"

namespace kvt {
namespace {

using testing::FillBlock;
using testing::KeyOf;
using testing::MetaOf;
using testing::TestDir;

constexpr uint64_t kNs = 77;
constexpr uint32_t kBytes = 12000;
constexpr uint64_t kBlocks = 40;

class CorruptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    opts_ = testing::SmallOptions(dir_.path(), 8);
    Reopen();
    auto slot = testing::Slot(kBytes);
    for (uint64_t i = 0; i < kBlocks; ++i) {
      FillBlock(kNs, i, 0, slot.data(), kBytes);
      ASSERT_TRUE(t_->Write(MetaOf(kNs, i, kBytes, slot.data()), slot.data()).ok());
    }
    ASSERT_TRUE(t_->Flush().ok());
    t_->ForEachEntry([&](const NvmeEntry& e) {
      where_[e.key.lo] = e;
      return true;
    });
    ASSERT_EQ(where_.size(), kBlocks);
  }
  void Reopen() {
    t_.reset();
    auto t = NvmeTier::Open(opts_);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    t_ = std::move(t).value();
  }
  const NvmeEntry& Entry(uint64_t i) { return where_.at(KeyOf(i).lo); }
  void FlipByte(uint32_t segment, uint64_t offset) {
    int fd = ::open(dir_.file(SegmentFileName(segment)).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    uint8_t b;
    ASSERT_EQ(::pread(fd, &b, 1, offset), 1);
    b ^= 0x10;
    ASSERT_EQ(::pwrite(fd, &b, 1, offset), 1);
    ::fsync(fd);
    ::close(fd);
  }
  // OK + exact, or NotFound; anything else (wrong bytes included) fails the test.
  bool ReadsExactOrMisses(uint64_t i) {
    auto dst = testing::Slot(kBytes);
    auto want = testing::Slot(kBytes);
    FillBlock(kNs, i, 0, want.data(), kBytes);
    Status s = t_->Read(kNs, KeyOf(i), dst.data(), dst.size(), nullptr);
    if (s.ok()) {
      EXPECT_EQ(0, std::memcmp(dst.data(), want.data(), kBytes)) << "WRONG BYTES for " << i;
      return true;
    }
    EXPECT_TRUE(s.IsNotFound()) << s.ToString();
    return false;
  }
  // Runs the kvtier CLI; its stdout goes to *out when given.
  int RunCli(const std::string& args, std::string* out = nullptr) {
#ifdef KVTIER_CLI
    const std::string out_file = dir_.path() + ".cli-out";
    std::string cmd = std::string(KVTIER_CLI) + " " + args + " > " +
                      (out ? out_file : std::string("/dev/null")) + " 2>&1";
    int rc = std::system(cmd.c_str());
    if (out != nullptr) {
      std::ifstream f(out_file);
      out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
      std::remove(out_file.c_str());
    }
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
#else
    return -2;
#endif
  }

  TestDir dir_;
  NvmeOptions opts_;
  std::unique_ptr<NvmeTier> t_;
  std::map<uint64_t, NvmeEntry> where_;
};

TEST_F(CorruptionTest, FlippedBytesAreMissesAndFsckFindsEveryOne) {
  // Header magic, a header field, the header checksum, payload start, payload end.
  const std::vector<std::pair<uint64_t, uint64_t>> victims = {
      {3, 0}, {8, 40}, {15, 160}, {22, kRecordHeaderBytes}, {31, kRecordHeaderBytes + kBytes - 1}};
  for (auto [i, delta] : victims) FlipByte(Entry(i).loc.segment, Entry(i).loc.offset + delta);
  // Padding after a payload is not data: flipping it harms nothing.
  FlipByte(Entry(5).loc.segment, Entry(5).loc.offset + kRecordHeaderBytes + kBytes + 10);

  NvmeFsckReport r = t_->Fsck(/*repair=*/false);
  for (const auto& p : r.problems) std::printf("fsck: %s\n", p.c_str());
  EXPECT_EQ(r.entries, kBlocks);
  EXPECT_EQ(r.entries_bad, victims.size());
  EXPECT_EQ(r.entries_ok, kBlocks - victims.size());
  EXPECT_FALSE(r.clean());

  uint64_t ok = 0;
  for (uint64_t i = 0; i < kBlocks; ++i) ok += ReadsExactOrMisses(i);
  EXPECT_EQ(ok, kBlocks - victims.size());
  for (auto [i, delta] : victims) EXPECT_FALSE(t_->Lookup(kNs, KeyOf(i), nullptr)) << i;
  EXPECT_EQ(t_->Stats().checksum_failures, victims.size());
  EXPECT_TRUE(t_->Fsck(false).clean());  // the bad entries were dropped by the reads
}

TEST_F(CorruptionTest, FsckRepairDropsBadEntries) {
  FlipByte(Entry(2).loc.segment, Entry(2).loc.offset + kRecordHeaderBytes + 7);
  FlipByte(Entry(9).loc.segment, Entry(9).loc.offset + 50);
  NvmeFsckReport r = t_->Fsck(/*repair=*/true);
  EXPECT_EQ(r.entries_bad, 2u);
  EXPECT_EQ(r.dropped, 2u);
  EXPECT_TRUE(t_->Fsck(false).clean());
  EXPECT_EQ(t_->Stats().entries, kBlocks - 2);
}

TEST_F(CorruptionTest, TruncatedSegmentWhileOpen) {
  const uint32_t seg = Entry(0).loc.segment;
  const uint64_t cut = 100 << 10;
  uint64_t affected = 0;
  for (const auto& [k, e] : where_) {
    if (e.loc.segment == seg && e.loc.offset + RecordBytes(e.loc.stored_bytes) > cut) ++affected;
  }
  ASSERT_GT(affected, 0u);
  ASSERT_EQ(::truncate(dir_.file(SegmentFileName(seg)).c_str(), cut), 0);
  NvmeFsckReport r = t_->Fsck(false);
  EXPECT_EQ(r.entries_bad, affected);
  EXPECT_GE(r.segment_problems, 1u);  // the short file itself
  uint64_t ok = 0;
  for (uint64_t i = 0; i < kBlocks; ++i) ok += ReadsExactOrMisses(i);
  EXPECT_EQ(ok, kBlocks - affected);
  EXPECT_EQ(t_->Stats().checksum_failures, affected);
}

TEST_F(CorruptionTest, TruncatedSegmentWhileClosedCliFsckAndReopen) {
  const uint32_t seg = Entry(0).loc.segment;
  const uint64_t cut = 60 << 10;
  uint64_t affected = 0;
  for (const auto& [k, e] : where_) {
    if (e.loc.segment == seg && e.loc.offset + RecordBytes(e.loc.stored_bytes) > cut) ++affected;
  }
  t_.reset();
  ASSERT_EQ(::truncate(dir_.file(SegmentFileName(seg)).c_str(), cut), 0);
  std::string out;
  int rc = RunCli("fsck " + dir_.path(), &out);
  if (rc != -2) {
    EXPECT_EQ(rc, 1) << "fsck must fail on a truncated segment";
    // Issue 14: the summary printed "4 segments (8 with problems)". It says what it counts:
    // files checked, problems found in them (one truncated file gives two), entries checked.
    EXPECT_NE(out.find(" segment files checked, 2 segment problems (truncated files, bad headers); " +
                       std::to_string(kBlocks) + " index entries checked: " +
                       std::to_string(kBlocks - affected) + " ok, " + std::to_string(affected) +
                       " bad"),
              std::string::npos)
        << out;
  }
  // Reopening re-allocates the file (du matches the accounting again); the lost records fail
  // verification as zeros and are misses.
  Reopen();
  EXPECT_EQ(testing::DiskUsage(dir_.path(), true), t_->Stats().bytes_used);
  NvmeFsckReport r = t_->Fsck(false);
  EXPECT_EQ(r.entries_bad, affected);
  uint64_t ok = 0;
  for (uint64_t i = 0; i < kBlocks; ++i) ok += ReadsExactOrMisses(i);
  EXPECT_EQ(ok, kBlocks - affected);
}

TEST_F(CorruptionTest, CliFsckExitCodes) {
  t_.reset();
  if (RunCli("fsck " + dir_.path()) == -2) GTEST_SKIP() << "kvtier CLI not built with the tests";
  EXPECT_EQ(RunCli("fsck " + dir_.path()), 0);
  EXPECT_EQ(RunCli("inspect " + dir_.path()), 0);
  FlipByte(Entry(4).loc.segment, Entry(4).loc.offset + kRecordHeaderBytes + 1);
  EXPECT_EQ(RunCli("fsck " + dir_.path()), 1);
  EXPECT_EQ(RunCli("fsck " + dir_.path() + " --repair"), 1);  // found (and dropped) a problem
  EXPECT_EQ(RunCli("fsck " + dir_.path()), 0);
  EXPECT_EQ(RunCli("fsck /nonexistent/kvt"), 2);
}

TEST_F(CorruptionTest, CorruptSegmentHeaderDropsItsEntriesAtOpen) {
  const uint32_t seg = Entry(0).loc.segment;
  uint64_t in_seg = 0;
  for (const auto& [k, e] : where_) in_seg += e.loc.segment == seg;
  t_.reset();
  FlipByte(seg, 20);  // inside the segment header's generation
  Reopen();
  EXPECT_EQ(t_->Stats().checksum_failures, in_seg);
  EXPECT_FALSE(t_->Fsck(false).clean());  // reported from the open
  uint64_t ok = 0;
  for (uint64_t i = 0; i < kBlocks; ++i) ok += ReadsExactOrMisses(i);
  EXPECT_EQ(ok, kBlocks - in_seg);
}

}  // namespace
}  // namespace kvt
