// NvmeTier functional tests: round trip, reopen, format version, reclamation, budget and du,
// namespaces, codec, registered buffers.
#include "tiers/nvme/nvme_tier.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <fstream>
#include <memory>

#include "io/fault_injection_file_io.h"
#include "tests/nvme/nvme_test_util.h"
#include "tests/common/test_dir.h"
#include "tiers/nvme/segment_format.h"

namespace kvt {
namespace {

using testing::FillBlock;
using testing::KeyOf;
using testing::MetaOf;
using testing::SmallOptions;
using testing::TestDir;

constexpr uint64_t kNs = 0x1234;

std::unique_ptr<NvmeTier> OpenOrDie(const NvmeOptions& o) {
  auto t = NvmeTier::Open(o);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(t).value() : nullptr;
}

// Writes blocks [first, first + n) of `bytes` each; returns false on any failure.
void WriteBlocks(NvmeTier* t, uint64_t ns, uint64_t first, uint64_t n, uint32_t bytes,
                 uint32_t version = 0) {
  auto slot = testing::Slot(bytes);
  for (uint64_t i = first; i < first + n; ++i) {
    FillBlock(ns, i, version, slot.data(), bytes);
    Status s = t->Write(MetaOf(ns, i, bytes, slot.data()), slot.data());
    ASSERT_TRUE(s.ok()) << "block " << i << ": " << s.ToString();
  }
}

// OK when block i reads back byte-exact with its meta.
Status CheckBlock(NvmeTier* t, uint64_t ns, uint64_t i, uint32_t bytes, uint32_t version = 0) {
  auto dst = testing::Slot(bytes);
  auto want = testing::Slot(bytes);
  FillBlock(ns, i, version, want.data(), bytes);
  BlockMeta m;
  KVT_RETURN_IF_ERROR(t->Read(ns, KeyOf(i), dst.data(), dst.size(), &m));
  if (std::memcmp(dst.data(), want.data(), bytes) != 0) return Status::Internal("wrong bytes");
  BlockMeta expect = MetaOf(ns, i, bytes, want.data());
  if (!(m.key == expect.key) || !(m.parent == expect.parent) || m.ns != ns ||
      m.has_tokens != expect.has_tokens || !(m.tokens_digest == expect.tokens_digest) ||
      m.payload_bytes != bytes || m.checksum != expect.checksum) {
    return Status::Internal("wrong meta");
  }
  return Status::Ok();
}

TEST(NvmeOptionsTest, ValidateNamesTheField) {
  NvmeOptions o = SmallOptions("/tmp/x");
  EXPECT_TRUE(o.Validate().ok());
  o.segment_bytes = 100000;
  EXPECT_NE(o.Validate().message().find("segment_bytes"), std::string::npos);
  o = SmallOptions("/tmp/x");
  o.budget_bytes = o.segment_bytes;  // one segment: cannot reclaim while writing
  EXPECT_NE(o.Validate().message().find("budget_bytes"), std::string::npos);
  o = SmallOptions("");
  EXPECT_NE(o.Validate().message().find("dir"), std::string::npos);
  o = SmallOptions("/tmp/x");
  o.io_depth = 0;
  EXPECT_NE(o.Validate().message().find("io_depth"), std::string::npos);
}

TEST(NvmeTierTest, RoundTripManyBlocksOfAwkwardSizes) {
  TestDir dir;
  auto t = OpenOrDie(SmallOptions(dir.path(), 16));
  ASSERT_NE(t, nullptr);
  const uint32_t sizes[] = {1, 4095, 4096, 4097, 12345, 16384, 65536};
  uint64_t i = 0;
  for (uint32_t sz : sizes) {
    for (int k = 0; k < 5; ++k, ++i) WriteBlocks(t.get(), kNs, i, 1, sz);
  }
  i = 0;
  for (uint32_t sz : sizes) {
    for (int k = 0; k < 5; ++k, ++i) {
      EXPECT_TRUE(CheckBlock(t.get(), kNs, i, sz).ok()) << "block " << i << " size " << sz;
      BlockMeta m;
      EXPECT_TRUE(t->Lookup(kNs, KeyOf(i), &m));
      EXPECT_EQ(m.payload_bytes, sz);
    }
  }
  EXPECT_FALSE(t->Lookup(kNs, KeyOf(999), nullptr));
  auto dst = testing::Slot(4096);
  EXPECT_TRUE(t->Read(kNs, KeyOf(999), dst.data(), 4096, nullptr).IsNotFound());
  EXPECT_TRUE(t->Read(kNs + 1, KeyOf(0), dst.data(), 4096, nullptr).IsNotFound());
  NvmeStats s = t->Stats();
  EXPECT_EQ(s.writes, i);
  EXPECT_EQ(s.hits, i);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.checksum_failures, 0u);
  EXPECT_EQ(s.entries, i);
  std::printf("engine %s, O_DIRECT %d, segments %" PRIu64 "/%" PRIu64 "\n", s.io_engine,
              s.direct_io, s.segments_created, s.segments_total);
}

TEST(NvmeTierTest, SmallOrUnalignedBuffersAreBounced) {
  TestDir dir;
  auto t = OpenOrDie(SmallOptions(dir.path()));
  ASSERT_NE(t, nullptr);
  std::vector<uint8_t> raw(10000 + 1);
  uint8_t* unaligned = raw.data() + 1;
  FillBlock(kNs, 1, 0, unaligned, 10000);
  ASSERT_TRUE(t->Write(MetaOf(kNs, 1, 10000, unaligned), unaligned).ok());
  EXPECT_EQ(t->Stats().unaligned_copies, 1u);
  std::vector<uint8_t> out(10000 + 3);
  ASSERT_TRUE(t->Read(kNs, KeyOf(1), out.data() + 3, 10000, nullptr).ok());
  EXPECT_EQ(0, std::memcmp(out.data() + 3, unaligned, 10000));
  EXPECT_EQ(t->Read(kNs, KeyOf(1), out.data(), 9999, nullptr).code(), Code::kInvalidArgument);
}

TEST(NvmeTierTest, BadWritesAreRejected) {
  TestDir dir;
  auto t = OpenOrDie(SmallOptions(dir.path()));
  ASSERT_NE(t, nullptr);
  auto slot = testing::Slot(1 << 20);
  BlockMeta m = MetaOf(kNs, 1, 300 << 10, nullptr);  // bigger than a 256 KiB segment
  EXPECT_EQ(t->Write(m, slot.data()).code(), Code::kInvalidArgument);
  m = MetaOf(kNs, 1, 4096, nullptr);
  EXPECT_EQ(t->Write(m, nullptr).code(), Code::kInvalidArgument);
  EXPECT_EQ(t->Stats().entries, 0u);
}

// The caller's checksum is stored, not recomputed (end to end): a wrong one is caught by the read,
// which misses and drops the record instead of serving bytes that do not match it.
TEST(NvmeTierTest, AWrongCallerChecksumIsNeverServed) {
  TestDir dir;
  auto t = OpenOrDie(SmallOptions(dir.path()));
  ASSERT_NE(t, nullptr);
  auto slot = testing::Slot(8192);
  std::memset(slot.data(), 0x5a, 8192);
  BlockMeta good = MetaOf(kNs, 1, 8192, slot.data());
  BlockMeta bad = MetaOf(kNs, 2, 8192, slot.data());
  bad.checksum ^= 1;  // not the payload's
  ASSERT_TRUE(t->Write(good, slot.data()).ok());
  ASSERT_TRUE(t->Write(bad, slot.data()).ok());
  auto dst = testing::Slot(8192);
  EXPECT_TRUE(t->Read(kNs, KeyOf(1), dst.data(), 8192, nullptr).ok());
  EXPECT_EQ(0, std::memcmp(dst.data(), slot.data(), 8192));
  EXPECT_TRUE(t->Read(kNs, KeyOf(2), dst.data(), 8192, nullptr).IsNotFound());
  EXPECT_EQ(t->Stats().checksum_failures, 1u);
  EXPECT_FALSE(t->Lookup(kNs, KeyOf(2), nullptr));  // dropped, not served later
}

// Writes blocks 0..n-1 of kNs (FillBlock contents) in one WriteBatch.
Status WriteNumbered(NvmeTier* t, int n, uint32_t bytes, std::vector<Status>* results) {
  std::vector<AlignedBuffer> slots;
  std::vector<NvmeWriteItem> items;
  for (int i = 0; i < n; ++i) {
    slots.push_back(testing::Slot(bytes));
    FillBlock(kNs, i, 0, slots.back().data(), bytes);
    items.push_back({MetaOf(kNs, i, bytes, slots.back().data()), slots.back().data()});
  }
  return t->WriteBatch(items, results);
}

TEST(NvmeTierTest, WriteBatchAcrossSegmentBoundaries) {
  TestDir dir;
  auto t = OpenOrDie(SmallOptions(dir.path(), 8));
  ASSERT_NE(t, nullptr);
  const uint32_t bytes = 40000;
  const int n = 20;  // ~1 MiB of records: spans several 256 KiB segments in one batch
  std::vector<Status> results;
  ASSERT_TRUE(WriteNumbered(t.get(), n, bytes, &results).ok());
  for (int i = 0; i < n; ++i) {
    EXPECT_TRUE(results[i].ok());
    EXPECT_TRUE(CheckBlock(t.get(), kNs, i, bytes).ok()) << i;
  }
}

// One batch bigger than the whole tier: it reserves across rotations, and when the next rotation
// would reclaim a segment the batch itself still holds, writes what it holds first instead of
// waiting for itself. Every write succeeds; the newest blocks read back, the oldest miss.
TEST(NvmeTierTest, WriteBatchLargerThanTheTierWrapsWithoutWaitingForItself) {
  TestDir dir;
  auto t = OpenOrDie(SmallOptions(dir.path(), 3));
  ASSERT_NE(t, nullptr);
  const uint32_t bytes = 40000;  // 5 records per 256 KiB segment
  const int n = 40;              // 8 segments' worth through a tier of 3
  std::vector<Status> results;
  ASSERT_TRUE(WriteNumbered(t.get(), n, bytes, &results).ok());
  for (int i = 0; i < n; ++i) EXPECT_TRUE(results[i].ok()) << i << ": " << results[i].ToString();
  int served = 0;
  for (int i = 0; i < n; ++i) {
    Status s = CheckBlock(t.get(), kNs, i, bytes);
    EXPECT_TRUE(s.ok() || s.IsNotFound()) << i << ": " << s.ToString();
    served += s.ok() ? 1 : 0;
    if (i >= n - 5) EXPECT_TRUE(s.ok()) << "newest block " << i << ": " << s.ToString();
  }
  EXPECT_GE(served, 5);
  EXPECT_LE(served, 15);
  EXPECT_GE(t->Stats().segments_reclaimed, 5u);
}

TEST(NvmeTierTest, ReopenServesTheSameBlocks) {
  TestDir dir;
  const uint32_t bytes = 20000;
  {
    auto t = OpenOrDie(SmallOptions(dir.path()));
    ASSERT_NE(t, nullptr);
    WriteBlocks(t.get(), kNs, 0, 30, bytes);
    WriteBlocks(t.get(), kNs, 5, 1, bytes, /*version=*/1);  // overwrite: the newer one wins
    ASSERT_TRUE(t->Remove(kNs, KeyOf(7)).ok());
    ASSERT_TRUE(t->Flush().ok());
  }
  auto t = OpenOrDie(SmallOptions(dir.path()));
  ASSERT_NE(t, nullptr);
  for (uint64_t i = 0; i < 30; ++i) {
    Status s = CheckBlock(t.get(), kNs, i, bytes, i == 5 ? 1 : 0);
    if (i == 7) {
      EXPECT_TRUE(s.IsNotFound());
    } else {
      EXPECT_TRUE(s.ok()) << i << ": " << s.ToString();
    }
  }
  // It keeps appending after the last record, not over it.
  WriteBlocks(t.get(), kNs, 100, 10, bytes);
  for (uint64_t i = 0; i < 30; ++i) {
    if (i != 7) {
      EXPECT_TRUE(CheckBlock(t.get(), kNs, i, bytes, i == 5 ? 1 : 0).ok()) << i;
    }
  }
  for (uint64_t i = 100; i < 110; ++i) EXPECT_TRUE(CheckBlock(t.get(), kNs, i, bytes).ok());
}

TEST(NvmeTierTest, OtherFormatVersionFailsOpenNamingBoth) {
  TestDir dir;
  { ASSERT_NE(OpenOrDie(SmallOptions(dir.path())), nullptr); }
  {
    std::ofstream f(dir.file("FORMAT"), std::ios::trunc);
    f << "kvtier-nvme\nformat_version 99\nsegment_bytes 262144\nbudget_bytes 2097152\n";
  }
  auto t = NvmeTier::Open(SmallOptions(dir.path()));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), Code::kCorruption);
  EXPECT_NE(t.status().message().find("99"), std::string::npos) << t.status().ToString();
  EXPECT_NE(t.status().message().find("version " + std::to_string(kNvmeFormatVersion)),
            std::string::npos)
      << t.status().ToString();
}

TEST(NvmeTierTest, SegmentFilesWithoutFormatFileAreRefused) {
  TestDir dir;
  { std::ofstream f(dir.file(SegmentFileName(0))); }
  auto t = NvmeTier::Open(SmallOptions(dir.path()));
  EXPECT_EQ(t.status().code(), Code::kCorruption) << t.status().ToString();
}

TEST(NvmeTierTest, OtherSegmentSizeIsRefused) {
  TestDir dir;
  { ASSERT_NE(OpenOrDie(SmallOptions(dir.path())), nullptr); }
  auto t = NvmeTier::Open(SmallOptions(dir.path(), 4, 512 << 10));
  EXPECT_EQ(t.status().code(), Code::kInvalidArgument) << t.status().ToString();
}

TEST(NvmeTierTest, ReclaimBumpsGenerationAndOldBlocksMiss) {
  TestDir dir;
  auto t = OpenOrDie(SmallOptions(dir.path(), 4));  // 1 MiB budget
  ASSERT_NE(t, nullptr);
  const uint32_t bytes = 28 << 10;           // 32 KiB records: 7 per segment
  WriteBlocks(t.get(), kNs, 0, 100, bytes);  // ~3.2 MiB through a 1 MiB budget
  NvmeStats s = t->Stats();
  EXPECT_GT(s.segments_reclaimed, 0u);
  EXPECT_GT(s.blocks_evicted, 0u);
  EXPECT_LE(s.bytes_used, s.budget_bytes);
  uint64_t hits = 0;
  for (uint64_t i = 0; i < 100; ++i) {
    bool found = t->Lookup(kNs, KeyOf(i), nullptr);
    Status r = CheckBlock(t.get(), kNs, i, bytes);
    EXPECT_EQ(found, r.ok()) << i;
    EXPECT_TRUE(r.ok() || r.IsNotFound()) << r.ToString();
    if (r.ok()) ++hits;
    if (i < 50) {
      EXPECT_FALSE(found) << "block " << i << " should have been reclaimed";
    }
  }
  EXPECT_GE(hits, 14u);  // at least the two newest segments' worth survive
  uint64_t max_gen = 0;
  for (const NvmeSegmentInfo& seg : t->Segments()) max_gen = std::max(max_gen, seg.generation);
  EXPECT_GT(max_gen, 4u);  // segments were restarted under new generations
  EXPECT_EQ(t->Stats().checksum_failures, 0u);
}

TEST(NvmeTierTest, StaleEntriesOnDiskAreSweptAtOpen) {
  TestDir dir;
  const uint32_t bytes = 28 << 10;
  {
    auto t = OpenOrDie(SmallOptions(dir.path(), 4));
    ASSERT_NE(t, nullptr);
    WriteBlocks(t.get(), kNs, 0, 20, bytes);
  }
  // Fake a crash between a reclaim's generation bump and its index deletes: rewrite segment 0's
  // header with a newer generation behind the index's back.
  {
    int fd = ::open(dir.file(SegmentFileName(0)).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    alignas(4096) static uint8_t block[4096];
    ASSERT_EQ(::pread(fd, block, 4096, 0), 4096);
    SegmentHeader h;
    ASSERT_TRUE(DecodeSegmentHeader(block, &h).ok());
    h.generation += 1000;
    EncodeSegmentHeader(h, block);
    ASSERT_EQ(::pwrite(fd, block, 4096, 0), 4096);
    ::close(fd);
  }
  auto t = OpenOrDie(SmallOptions(dir.path(), 4));
  ASSERT_NE(t, nullptr);
  NvmeStats s = t->Stats();
  EXPECT_EQ(s.stale_swept, 7u);  // segment 0's seven records
  EXPECT_EQ(s.checksum_failures, 0u);
  for (uint64_t i = 0; i < 7; ++i) EXPECT_TRUE(CheckBlock(t.get(), kNs, i, bytes).IsNotFound());
  for (uint64_t i = 7; i < 20; ++i) EXPECT_TRUE(CheckBlock(t.get(), kNs, i, bytes).ok()) << i;
  // New writes get generations above everything seen, so nothing stale can come back.
  WriteBlocks(t.get(), kNs, 100, 30, bytes);
  for (uint64_t i = 100; i < 130; ++i) {
    Status r = CheckBlock(t.get(), kNs, i, bytes);
    EXPECT_TRUE(r.ok() || r.IsNotFound());
  }
  EXPECT_EQ(t->Stats().checksum_failures, 0u);
}

TEST(NvmeTierTest, ReinsertionKeepsBlocksThatWereRead) {
  TestDir dir;
  NvmeOptions o = SmallOptions(dir.path(), 4);
  o.reinsertion = true;
  auto t = OpenOrDie(o);
  ASSERT_NE(t, nullptr);
  const uint32_t bytes = 28 << 10;
  WriteBlocks(t.get(), kNs, 0, 7, bytes);  // fills segment 0
  for (uint64_t i : {1, 3}) ASSERT_TRUE(CheckBlock(t.get(), kNs, i, bytes).ok());
  // Segments 1-3 take blocks 7-27; block 28 needs segment 0 back, so it is reclaimed (once).
  WriteBlocks(t.get(), kNs, 7, 24, bytes);
  NvmeStats s = t->Stats();
  EXPECT_GT(s.segments_reclaimed, 0u);
  EXPECT_EQ(s.segments_reclaimed, 1u);
  EXPECT_EQ(s.reinsertions, 2u);
  // Blocks read since written survived the reclaim of their segment; cold neighbours did not.
  for (uint64_t i : {1, 3}) EXPECT_TRUE(CheckBlock(t.get(), kNs, i, bytes).ok()) << i;
  for (uint64_t i : {0, 2, 4}) EXPECT_FALSE(t->Lookup(kNs, KeyOf(i), nullptr)) << i;
}

TEST(NvmeTierTest, BudgetIsRespectedAndDuMatches) {
  TestDir dir;
  NvmeOptions o = SmallOptions(dir.path(), 6);
  {
    auto t = OpenOrDie(o);
    ASSERT_NE(t, nullptr);
    const uint32_t bytes = 50000;
    for (int round = 0; round < 8; ++round) {
      WriteBlocks(t.get(), kNs, round * 10, 10, bytes);
      NvmeStats s = t->Stats();
      ASSERT_LE(s.bytes_used, s.budget_bytes);
      ASSERT_EQ(testing::DiskUsage(dir.path(), /*segments_only=*/true), s.bytes_used);
      // Everything in the directory: segments + index + FORMAT.
      uint64_t du = testing::DiskUsage(dir.path());
      ASSERT_LE(du, s.bytes_used + s.index_bytes + 4096);
    }
    EXPECT_EQ(t->Stats().bytes_used, o.budget_bytes);
  }
  // After a clean close the same holds on reopen.
  auto t = OpenOrDie(o);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(testing::DiskUsage(dir.path(), true), t->Stats().bytes_used);
  EXPECT_EQ(t->Stats().bytes_used, o.budget_bytes);
}

TEST(NvmeTierTest, ShrinkingTheBudgetDropsOuterSegments) {
  TestDir dir;
  {
    auto t = OpenOrDie(SmallOptions(dir.path(), 8));
    ASSERT_NE(t, nullptr);
    WriteBlocks(t.get(), kNs, 0, 40, 28 << 10);
  }
  auto t = OpenOrDie(SmallOptions(dir.path(), 3));
  ASSERT_NE(t, nullptr);
  NvmeStats s = t->Stats();
  EXPECT_LE(s.bytes_used, s.budget_bytes);
  EXPECT_EQ(testing::DiskUsage(dir.path(), true), s.bytes_used);
  uint64_t ok = 0;
  for (uint64_t i = 0; i < 40; ++i) {
    Status r = CheckBlock(t.get(), kNs, i, 28 << 10);
    EXPECT_TRUE(r.ok() || r.IsNotFound());
    ok += r.ok();
  }
  EXPECT_EQ(ok, s.entries);
}

TEST(NvmeTierTest, DropNamespaceRemovesOnlyThatNamespace) {
  TestDir dir;
  const uint32_t bytes = 8192;
  {
    auto t = OpenOrDie(SmallOptions(dir.path()));
    ASSERT_NE(t, nullptr);
    WriteBlocks(t.get(), 1, 0, 10, bytes);
    WriteBlocks(t.get(), 2, 0, 10, bytes);
    WriteBlocks(t.get(), UINT64_MAX, 0, 3, bytes);
    ASSERT_TRUE(t->DropNamespace(2).ok());
    ASSERT_TRUE(t->DropNamespace(UINT64_MAX).ok());
    for (uint64_t i = 0; i < 10; ++i) {
      EXPECT_TRUE(CheckBlock(t.get(), 1, i, bytes).ok());
      EXPECT_FALSE(t->Lookup(2, KeyOf(i), nullptr));
    }
    EXPECT_EQ(t->Stats().entries, 10u);
    ASSERT_TRUE(t->Flush().ok());
  }
  auto t = OpenOrDie(SmallOptions(dir.path()));  // the range delete is durable
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->Stats().entries, 10u);
  for (uint64_t i = 0; i < 10; ++i) {
    EXPECT_TRUE(CheckBlock(t.get(), 1, i, bytes).ok());
    EXPECT_TRUE(CheckBlock(t.get(), 2, i, bytes).IsNotFound());
  }
}

TEST(NvmeTierTest, ZstdCodecRoundTripAndRatio) {
  TestDir dir;
  NvmeOptions o = SmallOptions(dir.path(), 16);
  o.codec = Codec::kZstd;
  auto t = OpenOrDie(o);
  ASSERT_NE(t, nullptr);
  const uint32_t bytes = 64 << 10;
  auto slot = testing::Slot(bytes);
  for (uint64_t i = 0; i < 10; ++i) {
    testing::FillFp16(slot.data(), bytes, i);
    ASSERT_TRUE(t->Write(MetaOf(kNs, i, bytes, slot.data()), slot.data()).ok());
  }
  // Random bytes do not compress: stored raw.
  FillBlock(kNs, 50, 0, slot.data(), bytes);
  ASSERT_TRUE(t->Write(MetaOf(kNs, 50, bytes, slot.data()), slot.data()).ok());
  auto dst = testing::Slot(bytes);
  auto want = testing::Slot(bytes);
  for (uint64_t i = 0; i < 10; ++i) {
    testing::FillFp16(want.data(), bytes, i);
    ASSERT_TRUE(t->Read(kNs, KeyOf(i), dst.data(), bytes, nullptr).ok());
    EXPECT_EQ(0, std::memcmp(dst.data(), want.data(), bytes)) << i;
  }
  EXPECT_TRUE(CheckBlock(t.get(), kNs, 50, bytes).ok());
  NvmeStats s = t->Stats();
  std::printf("zstd tier: %" PRIu64 " -> %" PRIu64 " bytes, ratio %.3f\n", s.compress_in,
              s.compress_out, s.compression_ratio);
  EXPECT_GT(s.compression_ratio, 1.05);
  EXPECT_EQ(s.checksum_failures, 0u);
}

TEST(NvmeTierTest, RegisteredBuffersUsedOrFallBack) {
  TestDir dir;
  auto pool = testing::Slot(1 << 20);  // stands in for the host pool's slabs
  iovec iov{pool.data(), pool.size()};
  {
    auto t = OpenOrDie(SmallOptions(dir.path()));
    ASSERT_NE(t, nullptr);
    t->RegisterBuffers({&iov, 1});
    NvmeStats s = t->Stats();
    // Either the kernel took the buffers (fixed-buffer I/O from here on) or it refused and the
    // refusal was counted: never neither.
    if (std::string(s.io_engine) == "io_uring") {
      EXPECT_NE(s.registered_buffers, s.register_fallbacks > 0)
          << "registered " << s.registered_buffers << ", fallbacks " << s.register_fallbacks;
      if (!s.registered_buffers) {
        std::printf("registered buffers refused here; the fallback path is what runs\n");
      }
    } else {
      EXPECT_FALSE(s.registered_buffers);
    }
    FillBlock(kNs, 1, 0, pool.data(), 65536);
    ASSERT_TRUE(t->Write(MetaOf(kNs, 1, 65536, pool.data()), pool.data()).ok());
    ASSERT_TRUE(t->Read(kNs, KeyOf(1), pool.data() + 65536, 65536, nullptr).ok());
    EXPECT_EQ(0, std::memcmp(pool.data(), pool.data() + 65536, 65536));
  }
  // A kernel that refuses (memlock): logged once, counted, and everything keeps working.
  TestDir dir2;
  NvmeOptions o = SmallOptions(dir2.path());
  auto ctl = std::make_shared<FaultController>(1);
  ctl->set_refuse_register_buffers(true);
  o.io_factory = [ctl] {
    return std::make_unique<FaultInjectionFileIo>(MakeDefaultFileIo(16), ctl);
  };
  auto t = OpenOrDie(o);
  ASSERT_NE(t, nullptr);
  t->RegisterBuffers({&iov, 1});
  NvmeStats s = t->Stats();
  EXPECT_FALSE(s.registered_buffers);
  EXPECT_GE(s.register_fallbacks, 1u);
  FillBlock(kNs, 1, 0, pool.data(), 65536);
  ASSERT_TRUE(t->Write(MetaOf(kNs, 1, 65536, pool.data()), pool.data()).ok());
  EXPECT_TRUE(CheckBlock(t.get(), kNs, 1, 65536).ok());
}

TEST(NvmeTierTest, ReadOnlyOpenServesReadsAndRefusesWrites) {
  TestDir dir;
  {
    auto t = OpenOrDie(SmallOptions(dir.path()));
    ASSERT_NE(t, nullptr);
    WriteBlocks(t.get(), kNs, 0, 5, 9000);
  }
  auto o = NvmeTier::OptionsFromDirectory(dir.path());
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  o->read_only = true;
  auto t = OpenOrDie(*o);
  ASSERT_NE(t, nullptr);
  for (uint64_t i = 0; i < 5; ++i) EXPECT_TRUE(CheckBlock(t.get(), kNs, i, 9000).ok());
  auto slot = testing::Slot(4096);
  EXPECT_EQ(t->Write(MetaOf(kNs, 9, 4096, nullptr), slot.data()).code(), Code::kPermissionDenied);
  EXPECT_TRUE(t->Fsck(false).clean());
}

}  // namespace
}  // namespace kvt

namespace kvt {
namespace {

// Not a benchmark (kvtier-bench is): prints the order of magnitude on this machine, asserts only
// correctness.
TEST(NvmeTierSmoke, ThroughputOrderOfMagnitude) {
  testing::TestDir dir;
  NvmeOptions o = testing::SmallOptions(dir.path(), 8, 16 << 20);  // 128 MiB
  auto opened = NvmeTier::Open(o);
  ASSERT_TRUE(opened.ok());
  NvmeTier& t = **opened;
  constexpr uint32_t kBytes = 256 << 10;
  constexpr int kBlocks = 256;  // 64 MiB
  auto pool = testing::Slot(static_cast<size_t>(kBlocks) * kBytes);
  iovec iov{pool.data(), pool.size()};
  t.RegisterBuffers({&iov, 1});
  for (int i = 0; i < kBlocks; ++i) testing::FillFp16(pool.data() + size_t{kBytes} * i, kBytes, i);
  std::vector<NvmeWriteItem> items;
  for (int i = 0; i < kBlocks; ++i) {
    uint8_t* p = pool.data() + size_t{kBytes} * i;
    items.push_back({testing::MetaOf(1, i, kBytes, p), p});
  }
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kBlocks; i += 8) {
    ASSERT_TRUE(t.WriteBatch(std::span(items).subspan(i, 8)).ok());
  }
  ASSERT_TRUE(t.Flush().ok());
  auto t1 = std::chrono::steady_clock::now();
  auto dst = testing::Slot(static_cast<size_t>(kBlocks) * kBytes);
  for (int i = 0; i < kBlocks; ++i) {
    ASSERT_TRUE(
        t.Read(1, testing::KeyOf(i), dst.data() + size_t{kBytes} * i, kBytes, nullptr).ok());
  }
  auto t2 = std::chrono::steady_clock::now();
  // Compared after the timed loop: every block read back is the one written.
  for (int i = 0; i < kBlocks; ++i) {
    ASSERT_EQ(0, std::memcmp(dst.data() + size_t{kBytes} * i, pool.data() + size_t{kBytes} * i,
                             kBytes))
        << "block " << i;
  }
  double mb = double(kBlocks) * kBytes / 1e9;
  NvmeStats s = t.Stats();
  std::printf(
      "256 KiB blocks, %s, O_DIRECT %d, registered %d: write+flush %.2f GB/s, "
      "read (1 thread, QD1) %.2f GB/s\n",
      s.io_engine, s.direct_io, s.registered_buffers,
      mb / std::chrono::duration<double>(t1 - t0).count(),
      mb / std::chrono::duration<double>(t2 - t1).count());
}

}  // namespace
}  // namespace kvt
