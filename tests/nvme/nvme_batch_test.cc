// NvmeTier batched reads (per-block statuses with missing, corrupt and bad-buffer blocks; each
// item settled as its own read finishes; reads into registered caller memory and exact-size
// destinations) and the counters visitor.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "io/fault_injection_file_io.h"
#include "io/posix_file_io.h"
#include "tests/common/test_dir.h"
#include "tests/nvme/nvme_test_util.h"
#include "tiers/nvme/nvme_tier.h"
#include "tiers/nvme/segment_format.h"

namespace kvt {
namespace {

using testing::FillBlock;
using testing::KeyOf;
using testing::MetaOf;

constexpr uint64_t kNs = 31;
constexpr uint64_t kBlocks = 24;

// Sizes that exercise whole 4 KiB blocks and partial last blocks.
uint32_t SizeOf(uint64_t i) { return i % 2 == 0 ? 16384 : 10000 + static_cast<uint32_t>(i); }

std::map<std::string, uint64_t> Counters(const NvmeTier& t) {
  std::map<std::string, uint64_t> m;
  t.VisitCounters([&](std::string_view n, uint64_t v) {
    EXPECT_TRUE(m.emplace(std::string(n), v).second) << "counter visited twice: " << n;
  });
  return m;
}

class BatchTest : public ::testing::Test {
 protected:
  void Open(NvmeOptions o) {
    opts_ = std::move(o);
    auto t = NvmeTier::Open(opts_);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    t_ = std::move(t).value();
  }
  void WriteAll() {
    std::vector<AlignedBuffer> slots;
    std::vector<NvmeWriteItem> items;
    for (uint64_t i = 0; i < kBlocks; ++i) {
      slots.push_back(testing::Slot(SizeOf(i)));
      FillBlock(kNs, i, 0, slots.back().data(), SizeOf(i));
      items.push_back({MetaOf(kNs, i, SizeOf(i), slots.back().data()), slots.back().data()});
    }
    std::vector<Status> st;
    ASSERT_TRUE(t_->WriteBatch(items, &st).ok());
    ASSERT_TRUE(t_->Flush().ok());
  }
  NvmeEntry EntryOf(uint64_t i) {
    NvmeEntry out;
    t_->ForEachEntry([&](const NvmeEntry& e) {
      if (e.key == KeyOf(i)) out = e;
      return true;
    });
    return out;
  }
  void FlipByte(const NvmeEntry& e, uint64_t at) {
    int fd = ::open(dir_.file(SegmentFileName(e.loc.segment)).c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    uint8_t b;
    ASSERT_EQ(::pread(fd, &b, 1, e.loc.offset + at), 1);
    b ^= 0x40;
    ASSERT_EQ(::pwrite(fd, &b, 1, e.loc.offset + at), 1);
    ::close(fd);
  }
  bool Exact(uint64_t i, const uint8_t* got) {
    auto want = testing::Slot(SizeOf(i));
    FillBlock(kNs, i, 0, want.data(), SizeOf(i));
    return std::memcmp(got, want.data(), SizeOf(i)) == 0;
  }

  testing::TestDir dir_;
  NvmeOptions opts_;
  std::unique_ptr<NvmeTier> t_;
};

TEST_F(BatchTest, PerBlockStatusesWithMissingCorruptAndBadBuffers) {
  Open(testing::SmallOptions(dir_.path(), 8, 1 << 20));
  WriteAll();
  // Damage: 3's payload, 8's header. Remove 5. Ask for 100 (never written). 11's buffer is short.
  FlipByte(EntryOf(3), kRecordHeaderBytes + 100);
  FlipByte(EntryOf(8), 40);
  ASSERT_TRUE(t_->Remove(kNs, KeyOf(5)).ok());
  std::vector<uint64_t> ask;
  for (uint64_t i = 0; i < kBlocks; ++i) ask.push_back(i);
  ask.push_back(100);
  std::vector<AlignedBuffer> dst;
  std::vector<NvmeReadItem> items(ask.size());
  for (size_t k = 0; k < ask.size(); ++k) {
    dst.push_back(testing::Slot(32768));
    items[k].ns = kNs;
    items[k].key = KeyOf(ask[k]);
    items[k].dst = dst.back().data();
    items[k].dst_bytes = ask[k] == 11 ? 100 : SizeOf(ask[k] % kBlocks);
  }
  size_t ok = t_->ReadBatch(items);
  std::set<uint64_t> missing = {3, 5, 8, 100};
  for (size_t k = 0; k < ask.size(); ++k) {
    uint64_t i = ask[k];
    if (missing.count(i)) {
      EXPECT_TRUE(items[k].status.IsNotFound()) << i << ": " << items[k].status.ToString();
    } else if (i == 11) {
      EXPECT_EQ(items[k].status.code(), Code::kInvalidArgument) << items[k].status.ToString();
    } else {
      ASSERT_TRUE(items[k].status.ok()) << i << ": " << items[k].status.ToString();
      EXPECT_TRUE(Exact(i, dst[k].data())) << "wrong bytes for " << i;
      EXPECT_EQ(items[k].meta.payload_bytes, SizeOf(i));
      EXPECT_TRUE(items[k].meta.key == KeyOf(i));
    }
  }
  EXPECT_EQ(ok, ask.size() - missing.size() - 1);
  auto c = Counters(*t_);
  EXPECT_EQ(c["checksum_failures"], 2u);
  // The corrupt entries were dropped: a second read is a plain miss.
  EXPECT_TRUE(t_->Read(kNs, KeyOf(3), dst[0].data(), 32768, nullptr).IsNotFound());
  EXPECT_EQ(Counters(*t_)["checksum_failures"], 2u);
}

// Runs a batch's requests one after another and reports each as it finishes, so the order in
// which a batch's completions arrive is known.
class OneAtATimeFileIo final : public FileIo {
 public:
  using FileIo::Execute;
  Status Execute(std::span<IoRequest> reqs) override { return Execute(reqs, nullptr); }
  Status Execute(std::span<IoRequest> reqs, const Completion& done) override {
    Status first;
    for (size_t i = 0; i < reqs.size(); ++i) {
      Status s = base_.Execute(reqs.subspan(i, 1));
      if (first.ok() && !s.ok()) first = s;
      if (done) done(i);
    }
    return first;
  }
  Status Fsync(int fd) override { return base_.Fsync(fd); }
  Status Fdatasync(int fd) override { return base_.Fdatasync(fd); }
  Status Fallocate(int fd, uint64_t offset, uint64_t len) override {
    return base_.Fallocate(fd, offset, len);
  }
  Status RegisterBuffers(std::span<const iovec> bufs) override {
    return base_.RegisterBuffers(bufs);
  }
  bool BuffersRegistered() const override { return false; }
  const char* Name() const override { return "one-at-a-time"; }

 private:
  PosixFileIo base_;
};

TEST_F(BatchTest, EachItemIsSettledOnceAsSoonAsItsOwnReadFinished) {
  NvmeOptions o = testing::SmallOptions(dir_.path(), 8, 1 << 20);
  o.io_factory = [] { return std::make_unique<OneAtATimeFileIo>(); };
  Open(o);
  WriteAll();
  FlipByte(EntryOf(3), kRecordHeaderBytes + 100);  // corrupt: settled as a miss
  std::vector<uint64_t> ask;
  for (uint64_t i = 0; i < kBlocks; ++i) ask.push_back(i);
  ask.push_back(100);  // never written: settled before any I/O
  std::vector<AlignedBuffer> dst;
  std::vector<NvmeReadItem> items(ask.size());
  for (size_t k = 0; k < ask.size(); ++k) {
    dst.push_back(testing::Slot(32768));
    std::memset(dst.back().data(), 0, 32768);
    items[k].ns = kNs;
    items[k].key = KeyOf(ask[k]);
    items[k].dst = dst.back().data();
    items[k].dst_bytes = 32768;
  }
  const size_t last = kBlocks - 1;
  auto untouched = [&](size_t k) {
    const uint8_t* p = dst[k].data();
    for (size_t b = 0; b < 32768; ++b)
      if (p[b] != 0) return false;
    return true;
  };
  std::vector<int> calls(ask.size(), 0);
  std::vector<Code> seen(ask.size(), Code::kOk);
  bool last_unread_when_first_settled = false;
  bool any_ok = false;
  const size_t ok = t_->ReadBatch(items, [&](size_t k) {
    ++calls[k];
    seen[k] = items[k].status.code();
    if (!items[k].status.ok()) return;
    // Settled means usable: the bytes are in place and verified, the meta is filled.
    EXPECT_TRUE(Exact(ask[k], dst[k].data())) << "settled before its bytes for " << ask[k];
    EXPECT_EQ(items[k].meta.payload_bytes, SizeOf(ask[k]));
    if (!any_ok) last_unread_when_first_settled = untouched(last);
    any_ok = true;
  });
  EXPECT_EQ(ok, ask.size() - 2);
  for (size_t k = 0; k < ask.size(); ++k) {
    EXPECT_EQ(calls[k], 1) << "item " << k;
    EXPECT_EQ(seen[k], items[k].status.code()) << "item " << k << " changed after it settled";
  }
  EXPECT_TRUE(items[3].status.IsNotFound()) << items[3].status.ToString();
  EXPECT_TRUE(items[kBlocks].status.IsNotFound()) << items[kBlocks].status.ToString();
  // The first block was handed over while the last one had not been read yet.
  EXPECT_TRUE(last_unread_when_first_settled);
  EXPECT_FALSE(untouched(last));
}

TEST_F(BatchTest, ReadsLandInRegisteredCallerMemoryAndUnalignedDestinationsAreCounted) {
  Open(testing::SmallOptions(dir_.path(), 8, 1 << 20));
  WriteAll();
  // One registered region holding every destination, each 4 KiB-aligned but sized exactly to
  // its block (so odd sizes take the tail path).
  const size_t stride = 20480;
  auto region = testing::Slot(stride * kBlocks);
  auto h = t_->RegisterRegion(region.data(), region.size());
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  std::vector<NvmeReadItem> items(kBlocks);
  for (uint64_t i = 0; i < kBlocks; ++i) {
    items[i].ns = kNs;
    items[i].key = KeyOf(i);
    items[i].dst = region.data() + i * stride;
    items[i].dst_bytes = SizeOf(i);
  }
  uint64_t unaligned_before = Counters(*t_)["unaligned_copies"];
  ASSERT_EQ(t_->ReadBatch(items), kBlocks);
  for (uint64_t i = 0; i < kBlocks; ++i) {
    EXPECT_TRUE(Exact(i, region.data() + i * stride)) << "wrong bytes for " << i;
  }
  EXPECT_EQ(Counters(*t_)["unaligned_copies"], unaligned_before);
  // An unaligned destination works and is counted.
  auto buf = testing::Slot(32768);
  ASSERT_TRUE(t_->Read(kNs, KeyOf(2), buf.data() + 8, 32768 - 8, nullptr).ok());
  EXPECT_TRUE(Exact(2, buf.data() + 8));
  EXPECT_EQ(Counters(*t_)["unaligned_copies"], unaligned_before + 1);
  t_->UnregisterRegion(*h);
  ASSERT_EQ(t_->ReadBatch(items), kBlocks);  // still fine, now unregistered
  EXPECT_TRUE(t_->RegisterRegion(nullptr, 10).status().code() == Code::kInvalidArgument);
}

TEST_F(BatchTest, RefusedRegistrationFallsBackAndIsCounted) {
  auto ctl = std::make_shared<FaultController>();
  ctl->set_refuse_register_buffers(true);
  NvmeOptions o = testing::SmallOptions(dir_.path(), 8, 1 << 20);
  o.io_factory = [ctl] {
    return std::make_unique<FaultInjectionFileIo>(MakeDefaultFileIo(16), ctl);
  };
  Open(o);
  WriteAll();
  auto region = testing::Slot(1 << 20);
  ASSERT_TRUE(t_->RegisterRegion(region.data(), region.size()).ok());
  EXPECT_GE(Counters(*t_)["register_fallbacks"], 1u);
  NvmeReadItem it;
  it.ns = kNs;
  it.key = KeyOf(4);
  it.dst = region.data();
  it.dst_bytes = region.size();
  ASSERT_EQ(t_->ReadBatch({&it, 1}), 1u);
  EXPECT_TRUE(Exact(4, region.data()));
}

TEST_F(BatchTest, EveryCounterIsVisitedOnceAndMoves) {
  NvmeOptions o = testing::SmallOptions(dir_.path(), 8, 1 << 20);
  o.codec = Codec::kZstd;
  Open(o);
  WriteAll();
  BlockMeta m;
  EXPECT_TRUE(t_->Lookup(kNs, KeyOf(1), &m));
  ASSERT_TRUE(t_->DropNamespace(kNs + 1).ok());
  auto c = Counters(*t_);
  for (const char* name :
       {"lookups", "unaligned_copies", "register_fallbacks", "namespaces_dropped", "compress_in",
        "compress_out", "records_replayed", "index_syncs", "flush_syncs", "entries"}) {
    EXPECT_TRUE(c.count(name)) << name << " is not visited";
  }
  EXPECT_EQ(c["lookups"], 1u);
  EXPECT_EQ(c["namespaces_dropped"], 1u);
  EXPECT_GT(c["compress_in"], 0u);
  EXPECT_GT(c["compress_out"], 0u);
  EXPECT_EQ(c["entries"], kBlocks);
  EXPECT_EQ(c["writes"], kBlocks);
}

}  // namespace
}  // namespace kvt
