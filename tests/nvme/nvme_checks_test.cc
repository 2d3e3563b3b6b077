// Every verification check on stored bytes, made to fire one at a time: each record-header field,
// the raw and zstd payload checksums, the zstd decoder, each segment-header check at open, the
// host tier's read checksum, and damaged or missing FORMAT files and indexes. Each answers a miss
// (naming the check) or an error, never bytes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "tests/common/test_dir.h"
#include "tests/nvme/nvme_test_util.h"
#include "tiers/nvme/codec.h"
#include "tiers/host/host_tier.h"
#include "tiers/nvme/nvme_tier.h"
#include "tiers/nvme/segment_format.h"

namespace kvt {
namespace {

using testing::FillBlock;
using testing::KeyOf;
using testing::MetaOf;
using testing::TestDir;

constexpr uint64_t kNs = 31;
constexpr uint32_t kBytes = 16384;
constexpr uint64_t kBlocks = 12;

class ChecksTest : public ::testing::Test {
 protected:
  void Build(Codec codec, const std::string& sub = "tier") {
    where_.clear();
    opts_ = testing::SmallOptions(dir_.file(sub), 8);
    opts_.codec = codec;
    Reopen();
    auto slot = testing::Slot(kBytes);
    for (uint64_t i = 0; i < kBlocks; ++i) {
      Fill(i, slot.data());
      ASSERT_TRUE(t_->Write(MetaOf(kNs, i, kBytes, slot.data()), slot.data()).ok());
    }
    ASSERT_TRUE(t_->Flush().ok());
    t_->ForEachEntry([&](const NvmeEntry& e) {
      where_[e.key.lo] = e;
      return true;
    });
    ASSERT_EQ(where_.size(), kBlocks);
  }
  void Fill(uint64_t i, uint8_t* p) const {
    // fp16 values with their low mantissa byte cleared halve under zstd: the records are coded
    // (a record that saves no 4 KiB page is stored raw)
    if (opts_.codec == Codec::kZstd) {
      testing::FillFp16(p, kBytes, i);
      for (uint32_t k = 0; k < kBytes; k += 2) p[k] = 0;
    } else {
      FillBlock(kNs, i, 0, p, kBytes);
    }
  }
  void Reopen() {
    t_.reset();
    auto t = NvmeTier::Open(opts_);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    t_ = std::move(t).value();
  }
  const NvmeEntry& Entry(uint64_t i) { return where_.at(KeyOf(i).lo); }
  std::string Path(const std::string& name) { return opts_.dir + "/" + name; }
  std::string SegPath(uint32_t seg) { return Path(SegmentFileName(seg)); }

  // Reads block i's record (header block + stored bytes), lets `edit` change it, writes it back.
  // The header is re-encoded (valid header checksum) unless `raw_header`; the stored checksum is
  // recomputed when `fix_stored`, so only the check under test can notice.
  void EditRecord(uint64_t i, const std::function<void(RecordHeader&, uint8_t* block,
                                                       uint8_t* stored)>& edit,
                  bool raw_header = false, bool fix_stored = false) {
    const NvmeEntry& e = Entry(i);
    std::vector<uint8_t> rec(RecordBytes(e.loc.stored_bytes));
    int fd = ::open(SegPath(e.loc.segment).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pread(fd, rec.data(), rec.size(), e.loc.offset),
              static_cast<ssize_t>(rec.size()));
    RecordHeader h;
    ASSERT_TRUE(DecodeRecordHeader(rec.data(), &h).ok());
    uint8_t* stored = rec.data() + kRecordHeaderBytes;
    edit(h, rec.data(), stored);
    if (fix_stored) h.stored_checksum = Checksum64(stored, h.stored_bytes);
    if (!raw_header) {
      std::vector<uint8_t> tail(rec.begin() + sizeof(RecordHeader),
                                rec.begin() + kRecordHeaderBytes);
      EncodeRecordHeader(h, rec.data());  // zeroes the padding: put back what edit left there
      std::copy(tail.begin(), tail.end(), rec.begin() + sizeof(RecordHeader));
    }
    ASSERT_EQ(::pwrite(fd, rec.data(), rec.size(), e.loc.offset),
              static_cast<ssize_t>(rec.size()));
    ::fsync(fd);
    ::close(fd);
  }
  void EditSegmentHeader(uint32_t seg, const std::function<void(SegmentHeader&)>& edit) {
    std::vector<uint8_t> block(kSegmentHeaderBytes);
    int fd = ::open(SegPath(seg).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pread(fd, block.data(), block.size(), 0), static_cast<ssize_t>(block.size()));
    SegmentHeader h;
    ASSERT_TRUE(DecodeSegmentHeader(block.data(), &h).ok());
    edit(h);
    EncodeSegmentHeader(h, block.data());
    ASSERT_EQ(::pwrite(fd, block.data(), block.size(), 0), static_cast<ssize_t>(block.size()));
    ::fsync(fd);
    ::close(fd);
  }
  // The read's status; OK only with exact bytes (wrong bytes fail the test).
  Status Read(uint64_t i) {
    auto dst = testing::Slot(kBytes);
    auto want = testing::Slot(kBytes);
    Fill(i, want.data());
    Status s = t_->Read(kNs, KeyOf(i), dst.data(), dst.size(), nullptr);
    if (s.ok()) {
      EXPECT_EQ(0, std::memcmp(dst.data(), want.data(), kBytes)) << "WRONG BYTES for " << i;
    }
    return s;
  }
  // Block i reads as a miss naming `why`, counted once; the other blocks read exact.
  void ExpectMissNaming(uint64_t i, const std::string& why) {
    const uint64_t before = t_->Stats().checksum_failures;
    Status s = Read(i);
    EXPECT_TRUE(s.IsNotFound()) << s.ToString();
    EXPECT_NE(s.message().find(why), std::string::npos) << "expected '" << why << "': " << s.ToString();
    EXPECT_EQ(t_->Stats().checksum_failures, before + 1);
    EXPECT_TRUE(Read(i).IsNotFound()) << "a corrupt entry is dropped, not served later";
    for (uint64_t k = 0; k < kBlocks; ++k) {
      if (k != i) {
        EXPECT_TRUE(Read(k).ok()) << k;
      }
    }
  }

  TestDir dir_;
  NvmeOptions opts_;
  std::unique_ptr<NvmeTier> t_;
  std::map<uint64_t, NvmeEntry> where_;
};

TEST_F(ChecksTest, RecordHeaderBadMagic) {
  Build(Codec::kNone);
  EditRecord(3, [](RecordHeader& h, uint8_t*, uint8_t*) { h.magic ^= 1; });
  ExpectMissNaming(3, "bad magic");
}

TEST_F(ChecksTest, RecordHeaderChecksum) {
  Build(Codec::kNone);
  EditRecord(3, [](RecordHeader& h, uint8_t* b, uint8_t*) { b[offsetof(RecordHeader, ns)] ^= 4; },
             /*raw_header=*/true);
  ExpectMissNaming(3, "header checksum mismatch");
}

TEST_F(ChecksTest, RecordHeaderFormatVersion) {
  Build(Codec::kNone);
  EditRecord(3, [](RecordHeader& h, uint8_t*, uint8_t*) { h.format_version = 9; });
  ExpectMissNaming(3, "format version 9");
}

TEST_F(ChecksTest, RecordHeaderDamagedPadding) {
  Build(Codec::kNone);
  EditRecord(3, [](RecordHeader&, uint8_t* b, uint8_t*) { b[kRecordHeaderBytes - 1] = 1; });
  ExpectMissNaming(3, "damaged padding");
}

TEST_F(ChecksTest, RecordHeaderUnknownCodec) {
  Build(Codec::kNone);
  EditRecord(3, [](RecordHeader& h, uint8_t*, uint8_t*) { h.codec = 7; });
  ExpectMissNaming(3, "unknown codec");
}

TEST_F(ChecksTest, RawRecordWithOtherStoredLength) {
  Build(Codec::kNone);
  EditRecord(3, [](RecordHeader& h, uint8_t*, uint8_t*) { h.stored_bytes -= 1; });
  ExpectMissNaming(3, "raw record with stored != payload");
}

// An older generation than the index's: the record the entry names was never written (a lost
// write), so the entry is corrupt.
TEST_F(ChecksTest, RecordOfAnotherGeneration) {
  Build(Codec::kNone);
  EditRecord(3, [](RecordHeader& h, uint8_t*, uint8_t*) { h.generation -= 1; });
  ExpectMissNaming(3, "record generation");
}

// A genuine record of a newer generation: the segment was reclaimed and rewritten, and the
// entry's deletion was lost in a crash (rotations do not sync). A stale miss, swept, not a
// checksum failure.
TEST_F(ChecksTest, RecordOfANewerGenerationIsStale) {
  Build(Codec::kNone);
  EditRecord(3, [](RecordHeader& h, uint8_t*, uint8_t*) { h.generation += 1; });
  const NvmeStats before = t_->Stats();
  Status s = Read(3);
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_NE(s.message().find("stale"), std::string::npos) << s.ToString();
  EXPECT_EQ(t_->Stats().checksum_failures, before.checksum_failures);
  EXPECT_EQ(t_->Stats().stale_swept, before.stale_swept + 1);
  EXPECT_FALSE(t_->Lookup(kNs, KeyOf(3), nullptr)) << "the stale entry is swept";
  for (uint64_t k = 0; k < kBlocks; ++k) {
    if (k != 3) {
      EXPECT_TRUE(Read(k).ok()) << k;
    }
  }
}

TEST_F(ChecksTest, RecordOfAnotherKey) {
  Build(Codec::kNone);
  EditRecord(3, [](RecordHeader& h, uint8_t*, uint8_t*) { h.key.hi ^= 1; });
  ExpectMissNaming(3, "another namespace or key");
}

TEST_F(ChecksTest, RecordDisagreeingWithTheIndex) {
  Build(Codec::kNone);
  EditRecord(3, [](RecordHeader& h, uint8_t*, uint8_t*) { h.payload_checksum ^= 1; });
  ExpectMissNaming(3, "disagrees with the index");
}

TEST_F(ChecksTest, RawPayloadChecksum) {
  Build(Codec::kNone);
  EditRecord(3, [](RecordHeader&, uint8_t*, uint8_t* stored) { stored[kBytes / 2] ^= 0x40; });
  ExpectMissNaming(3, "payload checksum mismatch");
}

TEST_F(ChecksTest, ZstdStoredChecksum) {
  Build(Codec::kZstd);
  ASSERT_LT(Entry(3).loc.stored_bytes, kBytes) << "the record is not compressed";
  EditRecord(3, [](RecordHeader&, uint8_t*, uint8_t* stored) { stored[100] ^= 0x40; });
  ExpectMissNaming(3, "payload checksum mismatch");
}

// Garbage that passes the stored checksum reaches the decoder, which must refuse it.
TEST_F(ChecksTest, ZstdCorruptFrameIsRefusedByTheDecoder) {
  Build(Codec::kZstd);
  const uint32_t stored_bytes = Entry(3).loc.stored_bytes;
  ASSERT_LT(stored_bytes, kBytes) << "the record is not compressed";
  EditRecord(
      3,
      [&](RecordHeader&, uint8_t*, uint8_t* stored) {
        for (uint32_t k = 0; k < stored_bytes; ++k) stored[k] = static_cast<uint8_t>(k * 131 + 7);
      },
      false, /*fix_stored=*/true);
  const uint64_t before = t_->Stats().checksum_failures;
  Status s = Read(3);
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_EQ(s.message().find("payload checksum mismatch"), std::string::npos) << s.ToString();
  EXPECT_EQ(t_->Stats().checksum_failures, before + 1);
}

// A frame that decodes, but to other bytes: a neighbour of the payload (one value changed) that
// compresses to exactly the record's stored length, written in with a valid stored checksum.
TEST_F(ChecksTest, ZstdDecodedChecksum) {
  Build(Codec::kZstd);
  const uint32_t stored_bytes = Entry(3).loc.stored_bytes;
  ASSERT_LT(stored_bytes, kBytes) << "the record is not compressed";
  std::vector<uint8_t> payload(kBytes), frame(ZstdBound(kBytes));
  bool found = false;
  for (uint32_t j = 1; j < kBytes && !found; j += 2) {
    Fill(3, payload.data());
    payload[j] ^= 1;
    auto n = ZstdShuffleCompress(payload.data(), kBytes, frame.data(), frame.size(),
                                 opts_.zstd_level);
    found = n.ok() && *n == stored_bytes;
  }
  ASSERT_TRUE(found) << "no neighbour compresses to " << stored_bytes << " bytes";
  EditRecord(
      3, [&](RecordHeader&, uint8_t*, uint8_t* stored) { std::memcpy(stored, frame.data(), stored_bytes); },
      false, /*fix_stored=*/true);
  ExpectMissNaming(3, "decompressed payload checksum mismatch");
}

// Segment headers are checked at open: a header that does not verify or names another segment
// or size drops every entry of the segment (counted as checksum failures) and its blocks miss.
TEST_F(ChecksTest, SegmentHeaderChecksAtOpen) {
  struct Case {
    const char* what;
    std::function<void(SegmentHeader&)> edit;
  };
  const std::vector<Case> cases = {
      {"bad magic", [](SegmentHeader& h) { h.magic ^= 1; }},
      {"format version 5", [](SegmentHeader& h) { h.format_version = 5; }},
      {"names segment", [](SegmentHeader& h) { h.segment_id += 1; }},
      {"names segment", [](SegmentHeader& h) { h.segment_bytes *= 2; }},
  };
  for (size_t n = 0; n < cases.size(); ++n) {
    const Case& c = cases[n];
    SCOPED_TRACE(c.what);
    Build(Codec::kNone, "case-" + std::to_string(n));
    const uint32_t seg = Entry(0).loc.segment;
    uint64_t in_seg = 0;
    for (const auto& [k, e] : where_) in_seg += e.loc.segment == seg;
    t_.reset();
    EditSegmentHeader(seg, c.edit);
    Reopen();
    EXPECT_EQ(t_->Stats().checksum_failures, in_seg);
    EXPECT_NE(t_->Segments()[seg].header_error.find(c.what), std::string::npos)
        << t_->Segments()[seg].header_error;
    uint64_t ok = 0;
    for (uint64_t i = 0; i < kBlocks; ++i) {
      Status s = Read(i);
      EXPECT_TRUE(s.ok() || s.IsNotFound()) << s.ToString();
      ok += s.ok();
    }
    EXPECT_EQ(ok, kBlocks - in_seg);
  }
}

TEST_F(ChecksTest, FormatFileDamageRefusesToOpen) {
  Build(Codec::kNone);
  t_.reset();
  const std::vector<std::string> bad = {
      "not-kvtier\nformat_version 1\n",                               // first line
      "kvtier-nvme\nsegment_bytes 262144\nbudget_bytes 2097152\n",  // no version
      "",                                                             // empty
  };
  for (const std::string& text : bad) {
    {
      std::ofstream f(Path("FORMAT"), std::ios::trunc);
      f << text;
    }
    auto t = NvmeTier::Open(opts_);
    EXPECT_EQ(t.status().code(), Code::kCorruption) << "'" << text << "': " << t.status().ToString();
  }
  // Missing FORMAT beside an index and segments: refused rather than guessed.
  std::filesystem::remove(Path("FORMAT"));
  auto t = NvmeTier::Open(opts_);
  EXPECT_EQ(t.status().code(), Code::kCorruption) << t.status().ToString();
  // Only the index left: still ours, still refused.
  for (uint32_t s = 0; s < 8; ++s) std::filesystem::remove(SegPath(s));
  t = NvmeTier::Open(opts_);
  EXPECT_EQ(t.status().code(), Code::kCorruption) << t.status().ToString();
}

// Without its index the tier rebuilds it from the self-describing segment records (the replay
// at open, issue 11): every block reads back exact (Read checks the bytes), and the tier works on.
TEST_F(ChecksTest, MissingIndexIsRebuiltFromTheSegmentsAndKeepsWorking) {
  Build(Codec::kNone);
  t_.reset();
  std::filesystem::remove_all(Path("index"));
  Reopen();
  for (uint64_t i = 0; i < kBlocks; ++i) EXPECT_TRUE(Read(i).ok()) << i;
  auto slot = testing::Slot(kBytes);
  for (uint64_t i = 0; i < kBlocks; ++i) {
    Fill(i, slot.data());
    ASSERT_TRUE(t_->Write(MetaOf(kNs, i, kBytes, slot.data()), slot.data()).ok());
  }
  for (uint64_t i = 0; i < kBlocks; ++i) EXPECT_TRUE(Read(i).ok()) << i;
  EXPECT_EQ(testing::DiskUsage(opts_.dir, true), t_->Stats().bytes_used);
}

// A damaged index: its CURRENT file, then its write-ahead log. Open fails with a status, or
// opens with what survived; no read returns wrong bytes.
TEST_F(ChecksTest, DamagedIndexFilesFailOpenOrMiss) {
  Build(Codec::kNone);
  t_.reset();
  const std::string index = Path("index");
  std::vector<std::string> wal;
  for (const auto& e : std::filesystem::directory_iterator(index)) {
    if (e.path().extension() == ".log") wal.push_back(e.path());
  }
  ASSERT_FALSE(wal.empty());
  for (const std::string& w : wal) {
    std::fstream f(w, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(w) / 2));
    f << std::string(64, '\x5a');
  }
  {
    auto t = NvmeTier::Open(opts_);
    if (t.ok()) {
      t_ = std::move(t).value();
      for (uint64_t i = 0; i < kBlocks; ++i) {
        Status s = Read(i);
        EXPECT_TRUE(s.ok() || s.IsNotFound()) << s.ToString();
      }
      t_.reset();
    } else {
      EXPECT_FALSE(t.status().ok());
    }
  }
  {
    std::ofstream f(index + "/CURRENT", std::ios::trunc);
    f << "MANIFEST-999999\n";
  }
  auto t = NvmeTier::Open(opts_);
  EXPECT_FALSE(t.ok()) << "an index naming a missing manifest opened";
}

// verify_host_reads: a host slot whose bytes changed under the tier is a counted miss.
TEST(HostChecksTest, HostTierChecksumFailureIsAMiss) {
  HostTierOptions o;
  o.budget_bytes = 1 << 20;
  o.slab_bytes = 256 << 10;
  o.try_lock = false;
  o.verify_reads = true;
  auto host = HostTier::Create(o);
  ASSERT_TRUE(host.ok()) << host.status().ToString();
  std::vector<uint8_t> data(kBytes), out(kBytes);
  for (uint64_t i = 0; i < 2; ++i) {
    FillBlock(kNs, i, 0, data.data(), kBytes);
    ASSERT_TRUE((*host)->Put(MetaOf(kNs, i, kBytes, nullptr), data.data(), false).ok());
  }
  PinnedBlock b;
  ASSERT_TRUE((*host)->Pin(kNs, KeyOf(0), &b, false));
  const_cast<uint8_t*>(b.data)[kBytes / 3] ^= 1;  // a bit flipped in RAM
  (*host)->Unpin(b);
  Status s = (*host)->Read(kNs, KeyOf(0), out.data(), kBytes, nullptr);
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_EQ((*host)->counters().checksum_failures.load(), 1u);
  EXPECT_TRUE((*host)->Read(kNs, KeyOf(0), out.data(), kBytes, nullptr).IsNotFound());
  ASSERT_TRUE((*host)->Read(kNs, KeyOf(1), out.data(), kBytes, nullptr).ok());
  FillBlock(kNs, 1, 0, data.data(), kBytes);
  EXPECT_EQ(out, data);
}

}  // namespace
}  // namespace kvt
