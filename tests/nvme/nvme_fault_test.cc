// Fault injection through NvmeOptions::io_factory: EIO, ENOSPC and short (torn) transfers on
// reads, writes, fsync and fallocate surface as a status or a miss, never as wrong bytes or a
// crash; after ENOSPC writes say NoSpace and reads keep working.
#include <gtest/gtest.h>

#include <cinttypes>
#include <memory>

#include "io/fault_injection_file_io.h"
#include "tests/nvme/nvme_test_util.h"
#include "tests/common/test_dir.h"
#include "tiers/nvme/nvme_tier.h"

namespace kvt {
namespace {

using testing::FillBlock;
using testing::KeyOf;
using testing::MetaOf;
using testing::TestDir;

constexpr uint64_t kNs = 5;
constexpr uint32_t kBytes = 9000;

class FaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ctl_ = std::make_shared<FaultController>(1234);
    opts_ = testing::SmallOptions(dir_.path(), 6);
    opts_.io_factory = [ctl = ctl_] {
      return std::make_unique<FaultInjectionFileIo>(MakeDefaultFileIo(16), ctl);
    };
    auto t = NvmeTier::Open(opts_);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    t_ = std::move(t).value();
  }
  Status Put(uint64_t i) {
    auto slot = testing::Slot(kBytes);
    FillBlock(kNs, i, 0, slot.data(), kBytes);
    return t_->Write(MetaOf(kNs, i, kBytes, slot.data()), slot.data());
  }
  // OK (exact bytes), or a status; wrong bytes fail the test.
  Status Get(uint64_t i) {
    auto dst = testing::Slot(kBytes);
    auto want = testing::Slot(kBytes);
    FillBlock(kNs, i, 0, want.data(), kBytes);
    Status s = t_->Read(kNs, KeyOf(i), dst.data(), dst.size(), nullptr);
    if (s.ok()) {
      EXPECT_EQ(0, std::memcmp(dst.data(), want.data(), kBytes)) << "WRONG BYTES " << i;
    }
    return s;
  }

  TestDir dir_;
  std::shared_ptr<FaultController> ctl_;
  NvmeOptions opts_;
  std::unique_ptr<NvmeTier> t_;
};

TEST_F(FaultTest, WriteErrorsFailTheWriteAndLeaveNoEntry) {
  ctl_->AddRule({.op = FaultOp::kWrite, .kind = FaultKind::kEio, .probability = 0.15});
  ctl_->AddRule({.op = FaultOp::kWrite, .kind = FaultKind::kShort, .probability = 0.15});
  std::vector<bool> written(60);
  int failed = 0;
  for (uint64_t i = 0; i < 60; ++i) {
    Status s = Put(i);
    written[i] = s.ok();
    if (!s.ok()) {
      ++failed;
      EXPECT_EQ(s.code(), Code::kIoError) << s.ToString();
    }
  }
  EXPECT_GT(failed, 0);
  ctl_->Clear();
  for (uint64_t i = 0; i < 60; ++i) {
    Status s = Get(i);
    if (!written[i]) {
      EXPECT_TRUE(s.IsNotFound()) << i << ": " << s.ToString();
    }
    EXPECT_TRUE(s.ok() || s.IsNotFound()) << s.ToString();
  }
  NvmeStats st = t_->Stats();
  EXPECT_EQ(st.write_failures, static_cast<uint64_t>(failed));
  EXPECT_GT(st.io_errors, 0u);
  EXPECT_EQ(st.checksum_failures, 0u);  // a failed write never got an entry to fail later
}

TEST_F(FaultTest, EnospcOnWritesIsNoSpaceAndReadsKeepWorking) {
  for (uint64_t i = 0; i < 10; ++i) ASSERT_TRUE(Put(i).ok());
  ctl_->AddRule({.op = FaultOp::kWrite, .kind = FaultKind::kEnospc, .probability = 1.0});
  for (uint64_t i = 10; i < 15; ++i) EXPECT_EQ(Put(i).code(), Code::kNoSpace);
  for (uint64_t i = 0; i < 10; ++i) EXPECT_TRUE(Get(i).ok()) << i;
  for (uint64_t i = 10; i < 15; ++i) EXPECT_TRUE(Get(i).IsNotFound());
  EXPECT_GE(t_->Stats().no_space, 5u);
}

TEST_F(FaultTest, FallocateEnospcLivesWithinExistingSegments) {
  ctl_->AddRule({.op = FaultOp::kFallocate, .kind = FaultKind::kEnospc, .nth = 3});
  // Two segments get created, the third creation hits ENOSPC: the tier stops growing and
  // reclaims instead, writes keep succeeding, and the file that failed is not left behind.
  for (uint64_t i = 0; i < 120; ++i) ASSERT_TRUE(Put(i).ok()) << i;
  NvmeStats st = t_->Stats();
  EXPECT_EQ(st.segments_created, 2u);
  EXPECT_GE(st.no_space, 1u);
  EXPECT_GT(st.segments_reclaimed, 0u);
  EXPECT_EQ(testing::DiskUsage(dir_.path(), true), st.bytes_used);
  EXPECT_TRUE(Get(119).ok());
}

TEST_F(FaultTest, FirstSegmentCannotBeCreatedIsNoSpace) {
  ctl_->AddRule({.op = FaultOp::kFallocate, .kind = FaultKind::kEnospc, .probability = 1.0});
  EXPECT_EQ(Put(0).code(), Code::kNoSpace);
  EXPECT_TRUE(Get(0).IsNotFound());
}

TEST_F(FaultTest, ReadErrorsAreErrorsNotMissesNorWrongBytes) {
  for (uint64_t i = 0; i < 20; ++i) ASSERT_TRUE(Put(i).ok());
  ctl_->AddRule({.op = FaultOp::kRead, .kind = FaultKind::kEio, .probability = 0.3});
  ctl_->AddRule({.op = FaultOp::kRead, .kind = FaultKind::kShort, .probability = 0.3});
  int errors = 0;
  for (int round = 0; round < 3; ++round) {
    for (uint64_t i = 0; i < 20; ++i) {
      Status s = Get(i);
      if (!s.ok()) {
        ++errors;
        EXPECT_EQ(s.code(), Code::kIoError) << s.ToString();
      }
    }
  }
  EXPECT_GT(errors, 0);
  // A device error is not corruption: the entries are kept and read fine afterwards.
  ctl_->Clear();
  for (uint64_t i = 0; i < 20; ++i) EXPECT_TRUE(Get(i).ok()) << i;
  EXPECT_EQ(t_->Stats().checksum_failures, 0u);
}

TEST_F(FaultTest, FsyncErrorFailsFlushThenRecovers) {
  for (uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(Put(i).ok());
  ctl_->AddRule({.op = FaultOp::kSync, .kind = FaultKind::kEio, .nth = 1});
  EXPECT_EQ(t_->Flush().code(), Code::kIoError);
  EXPECT_TRUE(t_->Flush().ok());  // the segment stayed dirty and is synced now
  for (uint64_t i = 0; i < 5; ++i) EXPECT_TRUE(Get(i).ok());
}

TEST_F(FaultTest, RandomFaultsEverywhereNeverWrongBytes) {
  for (FaultOp op : {FaultOp::kRead, FaultOp::kWrite, FaultOp::kSync}) {
    for (FaultKind k : {FaultKind::kEio, FaultKind::kEnospc, FaultKind::kShort}) {
      ctl_->AddRule({.op = op, .kind = k, .probability = 0.03});
    }
  }
  ctl_->AddRule({.op = FaultOp::kFallocate, .kind = FaultKind::kEnospc, .probability = 0.2});
  for (uint64_t i = 0; i < 400; ++i) {
    Status w = Put(i % 150);
    EXPECT_TRUE(w.ok() || w.code() == Code::kIoError || w.code() == Code::kNoSpace) << w.ToString();
    if (i % 3 == 0) {
      Status r = Get((i * 7) % 150);
      EXPECT_TRUE(r.ok() || r.IsNotFound() || r.code() == Code::kIoError) << r.ToString();
    }
    if (i % 50 == 0) {
      Status f = t_->Flush();
      (void)f;
    }
  }
  ctl_->Clear();
  uint64_t hits = 0;
  for (uint64_t i = 0; i < 150; ++i) hits += Get(i).ok();
  std::printf("after %" PRIu64 " injected faults: %" PRIu64 "/150 blocks readable\n",
              ctl_->injected_total(), hits);
  EXPECT_GT(ctl_->injected_total(), 10u);
  EXPECT_GT(hits, 0u);
  // And the directory reopens cleanly.
  t_.reset();
  opts_.io_factory = nullptr;
  auto t = NvmeTier::Open(opts_);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  t_ = std::move(t).value();
  for (uint64_t i = 0; i < 150; ++i) {
    Status s = Get(i);
    EXPECT_TRUE(s.ok() || s.IsNotFound()) << s.ToString();
  }
}

}  // namespace
}  // namespace kvt
