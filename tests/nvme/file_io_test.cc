// Tests of the FileIo implementations (io_uring, posix) and the fault-injection wrapper.
#include "io/file_io.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <memory>
#include <random>
#include <vector>

#include "io/aligned_buffer.h"
#include "io/fault_injection_file_io.h"
#include "io/posix_file_io.h"
#include "io/unique_fd.h"
#include "io/uring_file_io.h"
#include "tests/common/test_dir.h"

namespace kvt {
namespace {

using testing::TestDir;

enum class Impl { kUring, kPosix };

std::unique_ptr<FileIo> Make(Impl impl, unsigned depth) {
  if (impl == Impl::kPosix) return std::make_unique<PosixFileIo>();
  auto io = UringFileIo::Create(depth);
  if (!io.ok()) return nullptr;
  return std::move(io).value();
}

class FileIoTest : public ::testing::TestWithParam<Impl> {
 protected:
  void SetUp() override {
    io_ = Make(GetParam(), 8);
    if (io_ == nullptr) GTEST_SKIP() << "io_uring refused on this machine";
    fd_.Reset(::open(dir_.file("f").c_str(), O_RDWR | O_CREAT, 0644));
    ASSERT_TRUE(fd_.valid());
  }
  TestDir dir_;
  UniqueFd fd_;
  std::unique_ptr<FileIo> io_;
};

void Fill(uint8_t* p, size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(rng());
}

TEST_P(FileIoTest, BatchLargerThanQueueDepthRoundTrips) {
  constexpr size_t kBlocks = 37;  // more than the depth of 8: several submission rounds
  constexpr size_t kBlock = 8192;
  auto src = AlignedBuffer::Allocate(kBlocks * kBlock, false);
  auto dst = AlignedBuffer::Allocate(kBlocks * kBlock, false);
  ASSERT_TRUE(src.ok() && dst.ok());
  Fill(src->data(), src->size(), 7);
  std::memset(dst->data(), 0, dst->size());
  ASSERT_TRUE(io_->Fallocate(fd_.get(), 0, kBlocks * kBlock).ok());
  std::vector<IoRequest> reqs(kBlocks);
  for (size_t i = 0; i < kBlocks; ++i) {
    // Written in reverse order of offsets so ordering is the kernel's business.
    reqs[i] =
        IoRequest::Write(fd_.get(), src->data() + i * kBlock, kBlock, (kBlocks - 1 - i) * kBlock);
  }
  ASSERT_TRUE(io_->Execute(reqs).ok());
  for (auto& r : reqs) EXPECT_EQ(r.bytes_done, kBlock);
  ASSERT_TRUE(io_->Fdatasync(fd_.get()).ok());
  for (size_t i = 0; i < kBlocks; ++i) {
    reqs[i].op = IoOp::kRead;
    reqs[i].buf = dst->data() + i * kBlock;
  }
  ASSERT_TRUE(io_->Execute(reqs).ok());
  EXPECT_EQ(0, std::memcmp(src->data(), dst->data(), kBlocks * kBlock));
}

TEST_P(FileIoTest, ReadPastEndOfFileReportsEof) {
  auto buf = AlignedBuffer::Allocate(8192, false);
  ASSERT_TRUE(buf.ok());
  Fill(buf->data(), 4096, 1);
  IoRequest w = IoRequest::Write(fd_.get(), buf->data(), 4096, 0);
  ASSERT_TRUE(io_->Execute({&w, 1}).ok());
  IoRequest r = IoRequest::Read(fd_.get(), buf->data(), 8192, 0);
  Status s = io_->Execute({&r, 1});
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(r.hit_eof);
  EXPECT_EQ(r.bytes_done, 4096u);  // the short read was taken, then EOF
  EXPECT_NE(s.message().find(dir_.file("f")), std::string::npos) << s.ToString();
}

TEST_P(FileIoTest, ErrorsNameOpFileAndOffset) {
  UniqueFd ro(::open(dir_.file("f").c_str(), O_RDONLY));
  ASSERT_TRUE(ro.valid());
  auto buf = AlignedBuffer::Allocate(4096, false);
  ASSERT_TRUE(buf.ok());
  IoRequest w = IoRequest::Write(ro.get(), buf->data(), 4096, 12288);
  Status s = io_->Execute({&w, 1});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("write"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find(dir_.file("f")), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("12288"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("errno 9"), std::string::npos) << s.ToString();  // EBADF
}

TEST_P(FileIoTest, DirectIoWithRegisteredBuffers) {
  UniqueFd dfd(::open(dir_.file("d").c_str(), O_RDWR | O_CREAT | O_DIRECT, 0644));
  if (!dfd.valid()) GTEST_SKIP() << "O_DIRECT refused here: " << std::strerror(errno);
  auto buf = AlignedBuffer::Allocate(64 << 10, false);
  ASSERT_TRUE(buf.ok());
  iovec iov{buf->data(), buf->size()};
  Status reg = io_->RegisterBuffers({&iov, 1});
  if (GetParam() == Impl::kPosix) {
    EXPECT_EQ(reg.code(), Code::kUnavailable);
  } else if (!reg.ok()) {
    std::printf("registered buffers refused (%s): testing the unregistered path only\n",
                reg.ToString().c_str());
  }
  // The I/O below uses fixed_index 0: it must take the fixed path exactly when registered.
  EXPECT_EQ(io_->BuffersRegistered(), reg.ok());
  Fill(buf->data(), 32 << 10, 3);
  IoRequest w = IoRequest::Write(dfd.get(), buf->data(), 32 << 10, 4096, /*fixed_index=*/0);
  ASSERT_TRUE(io_->Execute({&w, 1}).ok());
  IoRequest r = IoRequest::Read(dfd.get(), buf->data() + (32 << 10), 32 << 10, 4096,
                                /*fixed_index=*/0);
  ASSERT_TRUE(io_->Execute({&r, 1}).ok()) << r.result.ToString();
  EXPECT_EQ(0, std::memcmp(buf->data(), buf->data() + (32 << 10), 32 << 10));
  EXPECT_TRUE(io_->RegisterBuffers({}).ok());
  EXPECT_FALSE(io_->BuffersRegistered());
}

// Gathered writes (IoRequest::WriteV): pieces of different sizes, from scattered memory, land
// back to back; two adjacent gathered requests and a plain one in one batch.
TEST_P(FileIoTest, GatheredWritesLandBackToBack) {
  auto src = AlignedBuffer::Allocate(1 << 20, false);
  auto dst = AlignedBuffer::Allocate(1 << 20, false);
  ASSERT_TRUE(src.ok() && dst.ok());
  Fill(src->data(), src->size(), 11);
  std::memset(dst->data(), 0, dst->size());
  uint8_t* s = src->data();
  // Out of memory order: the file gets the iovec order, not the address order.
  const iovec a[] = {{s + 512 * 1024, 4096}, {s, 65536}, {s + 256 * 1024, 8192}};
  const iovec b[] = {{s + 768 * 1024, 4096}, {s + 128 * 1024, 131072}};
  std::vector<IoRequest> reqs = {IoRequest::WriteV(fd_.get(), a, 3, 0),
                                 IoRequest::WriteV(fd_.get(), b, 2, 77824),
                                 IoRequest::Write(fd_.get(), s + 900 * 1024, 4096, 212992)};
  EXPECT_EQ(reqs[0].len, 77824u);
  EXPECT_EQ(reqs[1].len, 135168u);
  ASSERT_TRUE(io_->Execute(reqs).ok());
  for (const IoRequest& r : reqs) EXPECT_EQ(r.bytes_done, r.len);
  std::vector<IoRequest> rd = {IoRequest::Read(fd_.get(), dst->data(), 217088, 0)};
  ASSERT_TRUE(io_->Execute(rd).ok());
  size_t off = 0;
  for (const iovec& v : a) {
    EXPECT_EQ(0, std::memcmp(dst->data() + off, v.iov_base, v.iov_len)) << "a at " << off;
    off += v.iov_len;
  }
  for (const iovec& v : b) {
    EXPECT_EQ(0, std::memcmp(dst->data() + off, v.iov_base, v.iov_len)) << "b at " << off;
    off += v.iov_len;
  }
  EXPECT_EQ(0, std::memcmp(dst->data() + off, s + 900 * 1024, 4096));
}

TEST_P(FileIoTest, MalformedGatheredRequestsAreRejected) {
  uint8_t byte = 0;
  const iovec bad[] = {{&byte, 1}, {nullptr, 4096}};
  std::vector<IoRequest> reqs = {IoRequest::WriteV(fd_.get(), bad, 2, 0),
                                 IoRequest::WriteV(fd_.get(), bad, 0, 0)};
  reqs[1].len = 1;  // a length but no buffers
  Status s = io_->Execute(reqs);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_EQ(reqs[0].result.code(), Code::kInvalidArgument);
  EXPECT_EQ(reqs[1].result.code(), Code::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Impls, FileIoTest, ::testing::Values(Impl::kUring, Impl::kPosix),
                         [](const auto& info) {
                           return info.param == Impl::kUring ? "Uring" : "Posix";
                         });

// Where a short transfer resumes: inside a buffer, the rest of that buffer alone; on a boundary,
// the buffers left, together.
TEST(IoResumeTest, ResumesInsideOrBetweenBuffers) {
  uint8_t m[300];
  const iovec v[] = {{m, 100}, {m + 100, 50}, {m + 150, 150}};
  IoRequest r = IoRequest::WriteV(3, v, 3, 0);
  IoResume at = ResumePoint(r);
  EXPECT_EQ(at.vec, v);
  EXPECT_EQ(at.vec_count, 3u);
  r.bytes_done = 120;
  at = ResumePoint(r);
  EXPECT_EQ(at.vec, nullptr);
  EXPECT_EQ(at.one.iov_base, m + 120);
  EXPECT_EQ(at.one.iov_len, 30u);
  r.bytes_done = 150;
  at = ResumePoint(r);
  EXPECT_EQ(at.vec, v + 2);
  EXPECT_EQ(at.vec_count, 1u);
  IoRequest plain = IoRequest::Write(3, m, 300, 0);
  plain.bytes_done = 7;
  at = ResumePoint(plain);
  EXPECT_EQ(at.one.iov_base, m + 7);
  EXPECT_EQ(at.one.iov_len, 293u);
}

TEST(MakeDefaultFileIo, AlwaysReturnsAnImplementation) {
  auto io = MakeDefaultFileIo(16);
  ASSERT_NE(io, nullptr);
  std::printf("default FileIo: %s\n", io->Name());
}

// Pools of a huge page or more start on a 2 MiB boundary and are advised for transparent huge
// pages (the kernel's socket copies out of a 4 KiB-paged 549 MiB pool ran at a third of their
// speed); smaller buffers are left alone. The whole region is usable and moving keeps the advice.
TEST(AlignedBufferTest, LargeRegionsAreHugePageAlignedAndAdvised) {
  constexpr size_t kLarge = (6u << 20) + 1;
  auto big = AlignedBuffer::Allocate(kLarge, false);
  ASSERT_TRUE(big.ok()) << big.status().ToString();
  EXPECT_EQ(big->size(), AlignUp(kLarge, AlignedBuffer::kPage));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big->data()) % AlignedBuffer::kHugePage, 0u);
  std::memset(big->data(), 0x5a, big->size());  // every byte of the trimmed mapping is there
  EXPECT_EQ(big->data()[big->size() - 1], 0x5a);
  auto small = AlignedBuffer::Allocate(1u << 20, false);
  ASSERT_TRUE(small.ok());
  EXPECT_FALSE(small->HugePagesAdvised());
  std::string thp;
  std::getline(std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled"), thp);
  if (thp.find("[never]") != std::string::npos || thp.empty()) {
    GTEST_SKIP() << "transparent huge pages are off here (" << thp << ")";
  }
  EXPECT_TRUE(big->HugePagesAdvised());
  AlignedBuffer moved = std::move(big).value();
  EXPECT_TRUE(moved.HugePagesAdvised());
}

// A trimmed huge-page region locks like any other: wherever this process may lock that many
// bytes (checked on a plain mapping of the same size), Allocate(..., lock = true) is locked.
TEST(AlignedBufferTest, LargeRegionsLockWhereThePlainMappingWould) {
  constexpr size_t kLarge = 6u << 20;
  void* plain = ::mmap(nullptr, kLarge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(plain, MAP_FAILED);
  const bool may_lock = ::mlock(plain, kLarge) == 0;
  ::munmap(plain, kLarge);
  if (!may_lock) GTEST_SKIP() << "this process may not lock " << kLarge << " bytes";
  auto big = AlignedBuffer::Allocate(kLarge, /*lock=*/true);
  ASSERT_TRUE(big.ok()) << big.status().ToString();
  EXPECT_TRUE(big->Locked()) << big->LockError();
}

class FaultInjectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ctl_ = std::make_shared<FaultController>(42);
    io_ = std::make_unique<FaultInjectionFileIo>(MakeDefaultFileIo(8), ctl_);
    fd_.Reset(::open(dir_.file("f").c_str(), O_RDWR | O_CREAT, 0644));
    ASSERT_TRUE(fd_.valid());
    auto b = AlignedBuffer::Allocate(16384, false);
    ASSERT_TRUE(b.ok());
    buf_ = std::move(b).value();
    Fill(buf_.data(), buf_.size(), 9);
  }
  IoRequest Req(IoOp op, uint64_t off) {
    return IoRequest::Make(op, fd_.get(), buf_.data(), 16384, off, -1);
  }
  TestDir dir_;
  UniqueFd fd_;
  std::shared_ptr<FaultController> ctl_;
  std::unique_ptr<FaultInjectionFileIo> io_;
  AlignedBuffer buf_;
};

TEST_F(FaultInjectionTest, NthWriteFailsWithEnospc) {
  ctl_->AddRule({.op = FaultOp::kWrite, .kind = FaultKind::kEnospc, .nth = 2});
  std::vector<IoRequest> reqs = {Req(IoOp::kWrite, 0), Req(IoOp::kWrite, 16384),
                                 Req(IoOp::kWrite, 32768)};
  Status s = io_->Execute(reqs);
  EXPECT_EQ(s.code(), Code::kNoSpace) << s.ToString();
  EXPECT_TRUE(reqs[0].result.ok());
  EXPECT_EQ(reqs[1].result.code(), Code::kNoSpace);
  EXPECT_EQ(reqs[1].bytes_done, 0u);
  EXPECT_TRUE(reqs[2].result.ok());
  EXPECT_EQ(ctl_->injected(FaultOp::kWrite), 1u);
  EXPECT_EQ(ctl_->ops(FaultOp::kWrite), 3u);
}

TEST_F(FaultInjectionTest, ShortTransferMovesAPrefixThenFails) {
  std::vector<IoRequest> w = {Req(IoOp::kWrite, 0)};
  ASSERT_TRUE(io_->Execute(w).ok());
  ctl_->AddRule({.op = FaultOp::kRead, .kind = FaultKind::kShort, .nth = 1});
  std::memset(buf_.data(), 0, buf_.size());
  std::vector<IoRequest> r = {Req(IoOp::kRead, 0)};
  Status s = io_->Execute(r);
  EXPECT_EQ(s.code(), Code::kIoError);
  EXPECT_EQ(r[0].bytes_done, 8192u);
  EXPECT_NE(s.message().find("injected short"), std::string::npos) << s.ToString();
}

// A short fault on a gathered write moves a 4 KiB-aligned prefix of its buffers, then fails.
TEST_F(FaultInjectionTest, ShortGatheredWriteMovesAPrefixOfItsBuffers) {
  const iovec v[] = {{buf_.data(), 4096}, {buf_.data() + 8192, 8192}, {buf_.data() + 4096, 4096}};
  ctl_->AddRule({.op = FaultOp::kWrite, .kind = FaultKind::kShort, .nth = 1});
  std::vector<IoRequest> w = {IoRequest::WriteV(fd_.get(), v, 3, 0)};
  Status s = io_->Execute(w);
  EXPECT_EQ(s.code(), Code::kIoError);
  EXPECT_EQ(w[0].bytes_done, 8192u);  // half of 16 KiB
  struct stat st;
  ASSERT_EQ(::fstat(fd_.get(), &st), 0);
  EXPECT_EQ(st.st_size, 8192);
  std::vector<uint8_t> back(8192);
  ASSERT_EQ(::pread(fd_.get(), back.data(), back.size(), 0), 8192);
  EXPECT_EQ(0, std::memcmp(back.data(), buf_.data(), 4096));
  EXPECT_EQ(0, std::memcmp(back.data() + 4096, buf_.data() + 8192, 4096));
}

TEST_F(FaultInjectionTest, SyncAndFallocateFaults) {
  ctl_->AddRule({.op = FaultOp::kSync, .kind = FaultKind::kEio, .nth = 1});
  ctl_->AddRule({.op = FaultOp::kFallocate, .kind = FaultKind::kEnospc, .nth = 1});
  EXPECT_EQ(io_->Fdatasync(fd_.get()).code(), Code::kIoError);
  EXPECT_TRUE(io_->Fdatasync(fd_.get()).ok());
  EXPECT_EQ(io_->Fallocate(fd_.get(), 0, 1 << 20).code(), Code::kNoSpace);
  EXPECT_TRUE(io_->Fallocate(fd_.get(), 0, 1 << 20).ok());
}

TEST_F(FaultInjectionTest, ProbabilityIsDeterministicForASeed) {
  auto run = [&](uint64_t seed) {
    auto ctl = std::make_shared<FaultController>(seed);
    ctl->AddRule({.op = FaultOp::kWrite, .kind = FaultKind::kEio, .probability = 0.3});
    FaultInjectionFileIo io(MakeDefaultFileIo(8), ctl);
    std::vector<int> pattern;
    for (int i = 0; i < 40; ++i) {
      IoRequest r = Req(IoOp::kWrite, 0);
      pattern.push_back(io.Execute({&r, 1}).ok() ? 0 : 1);
    }
    return pattern;
  };
  auto a = run(5), b = run(5);
  EXPECT_EQ(a, b);
  int faults = 0;
  for (int v : a) faults += v;
  EXPECT_GT(faults, 3);
  EXPECT_LT(faults, 30);
}

TEST_F(FaultInjectionTest, RefusedRegistrationIsUnavailable) {
  ctl_->set_refuse_register_buffers(true);
  iovec iov{buf_.data(), buf_.size()};
  Status s = io_->RegisterBuffers({&iov, 1});
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_FALSE(io_->BuffersRegistered());
}

}  // namespace
}  // namespace kvt
