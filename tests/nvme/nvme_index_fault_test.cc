// The NVMe tier's RocksDB index under injected errors (NvmeOptions::index_env: a FileSystem
// wrapper failing the index's write-ahead log appends or syncs, or the creation of its files).
// A write whose index update fails reports an error and is never served; a failed WAL sync fails
// Flush; an index that cannot be opened fails Open with a status. Blocks acknowledged before
// keep reading exact, and a reopen serves nothing but exact bytes or misses.
#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <memory>

#include "tests/common/test_dir.h"
#include "tests/nvme/nvme_test_util.h"
#include "tiers/nvme/nvme_tier.h"

namespace kvt {
namespace {

using testing::FillBlock;
using testing::KeyOf;
using testing::MetaOf;

constexpr uint64_t kNs = 12;
constexpr uint32_t kBytes = 8192;

// Fails what it is told to, on the index's WAL files ("NNNNNN.log") only: RocksDB's info log
// (LOG) and manifest keep working, as they would on a device with one bad region.
class FaultyIndexFs : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultyIndexFs(std::shared_ptr<rocksdb::FileSystem> base)
      : rocksdb::FileSystemWrapper(std::move(base)) {}
  const char* Name() const override { return "FaultyIndexFs"; }

  std::atomic<int> fail_wal_appends{0};  // how many WAL appends fail from now
  std::atomic<bool> fail_wal_sync{false}, fail_create{false};
  std::atomic<uint64_t> injected{0};

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    if (fail_create) return Inject();
    rocksdb::IOStatus s = target()->NewWritableFile(f, o, r, dbg);
    if (s.ok() && IsWal(f)) r->reset(new File(std::move(*r), this));
    return s;
  }

 private:
  static bool IsWal(const std::string& f) {
    return f.size() > 4 && f.compare(f.size() - 4, 4, ".log") == 0 &&
           f.find("/LOG") == std::string::npos;
  }
  rocksdb::IOStatus Inject() {
    injected.fetch_add(1);
    return rocksdb::IOStatus::IOError("injected index fault");
  }
  class File : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile>&& f, FaultyIndexFs* fs)
        : rocksdb::FSWritableFileOwnerWrapper(std::move(f)), fs_(fs) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override {
      if (fs_->fail_wal_appends.fetch_sub(1) > 0) return fs_->Inject();
      return FSWritableFileOwnerWrapper::Append(d, o, dbg);
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& d, const rocksdb::IOOptions& o,
                             const rocksdb::DataVerificationInfo& v,
                             rocksdb::IODebugContext* dbg) override {
      if (fs_->fail_wal_appends.fetch_sub(1) > 0) return fs_->Inject();
      return FSWritableFileOwnerWrapper::Append(d, o, v, dbg);
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
      if (fs_->fail_wal_sync) return fs_->Inject();
      return FSWritableFileOwnerWrapper::Sync(o, dbg);
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override {
      if (fs_->fail_wal_sync) return fs_->Inject();
      return FSWritableFileOwnerWrapper::Fsync(o, dbg);
    }

   private:
    FaultyIndexFs* fs_;
  };
};

class IndexFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs_ = std::make_shared<FaultyIndexFs>(rocksdb::FileSystem::Default());
    env_ = rocksdb::NewCompositeEnv(fs_);
    opts_ = testing::SmallOptions(dir_.path(), 8);
    opts_.index_env = env_.get();
  }
  void Open(bool faulty = true) {
    t_.reset();
    NvmeOptions o = opts_;
    if (!faulty) o.index_env = nullptr;
    auto t = NvmeTier::Open(o);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    t_ = std::move(t).value();
  }
  Status Put(uint64_t i) {
    auto slot = testing::Slot(kBytes);
    FillBlock(kNs, i, 0, slot.data(), kBytes);
    return t_->Write(MetaOf(kNs, i, kBytes, slot.data()), slot.data());
  }
  // OK only with exact bytes.
  Status Get(uint64_t i) {
    auto dst = testing::Slot(kBytes), want = testing::Slot(kBytes);
    FillBlock(kNs, i, 0, want.data(), kBytes);
    Status s = t_->Read(kNs, KeyOf(i), dst.data(), dst.size(), nullptr);
    if (s.ok()) {
      EXPECT_EQ(0, std::memcmp(dst.data(), want.data(), kBytes)) << "WRONG BYTES for " << i;
    }
    return s;
  }

  testing::TestDir dir_;
  std::shared_ptr<FaultyIndexFs> fs_;
  std::unique_ptr<rocksdb::Env> env_;  // outlives t_ (declared before it)
  NvmeOptions opts_;
  std::unique_ptr<NvmeTier> t_;
};

TEST_F(IndexFaultTest, FailedIndexWriteFailsTheWriteAndIsNeverServed) {
  Open();
  for (uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(Put(i).ok());
  ASSERT_TRUE(t_->Flush().ok());
  fs_->fail_wal_appends = 1;
  Status s = Put(5);
  EXPECT_FALSE(s.ok()) << "block 5 acknowledged without its index entry";
  EXPECT_EQ(fs_->injected.load(), 1u);
  EXPECT_TRUE(Get(5).IsNotFound());
  EXPECT_GT(t_->Stats().write_failures, 0u);
  for (uint64_t i = 0; i < 5; ++i) EXPECT_TRUE(Get(i).ok()) << i;  // in memory, exact
  EXPECT_FALSE(t_->Flush().ok());
  t_.reset();
  Open(/*faulty=*/false);
  for (uint64_t i = 0; i < 5; ++i) EXPECT_TRUE(Get(i).ok()) << "flushed block " << i << " lost";
  // Block 5's record reached its segment before its index put failed; the replay at open (the
  // index catches up from self-describing records, issue 11) may index it again. Then it reads
  // back exact (Get checks the bytes), never as anything else.
  Status s5 = Get(5);
  EXPECT_TRUE(s5.ok() || s5.IsNotFound()) << s5.ToString();
}

// Before NvmeIndex remembered WAL write failures, the Flush after one (the close's included)
// aborted the process inside Debian's RocksDB 7.8 (assertion `sync_without_flush_called_' in
// WritableFileWriter::AssertFalseAndGetStatusForPrevError, reached from SyncWAL).
TEST_F(IndexFaultTest, WritesAndFlushAfterAFailedIndexWriteDoNotAbort) {
  Open();
  for (uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(Put(i).ok());
  fs_->fail_wal_appends = 1;
  EXPECT_FALSE(Put(5).ok());
  for (uint64_t i = 6; i < 10; ++i) {
    Status s = Put(i);  // aborts here today
    if (s.ok()) {
      EXPECT_TRUE(Get(i).ok());
    } else {
      EXPECT_TRUE(Get(i).IsNotFound());
    }
  }
  for (uint64_t i = 0; i < 5; ++i) EXPECT_TRUE(Get(i).ok()) << i;
  EXPECT_FALSE(t_->Flush().ok()) << "the index cannot promise durability after a failed write";
}

// A Flush does not sync the index WAL (issue 11: one fdatasync per touched segment; the index
// catches up from the segment records at open), so a WAL that cannot sync does not fail it, and
// the flushed blocks survive a reopen.
TEST_F(IndexFaultTest, FlushNeedsNoWalSyncAndFlushedBlocksSurvive) {
  Open();
  for (uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(Put(i).ok());
  fs_->fail_wal_sync = true;
  Status f = t_->Flush();
  EXPECT_TRUE(f.ok()) << f.ToString();
  EXPECT_EQ(fs_->injected.load(), 0u) << "Flush synced the index WAL";
  fs_->fail_wal_sync = false;
  t_.reset();
  Open(/*faulty=*/false);
  for (uint64_t i = 0; i < 5; ++i) EXPECT_TRUE(Get(i).ok()) << "flushed block " << i << " lost";
}

TEST_F(IndexFaultTest, IndexThatCannotBeCreatedFailsOpen) {
  fs_->fail_create = true;
  auto t = NvmeTier::Open(opts_);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("index"), std::string::npos) << t.status().ToString();
  fs_->fail_create = false;
  Open();
  ASSERT_TRUE(Put(1).ok());
  EXPECT_TRUE(Get(1).ok());
}

}  // namespace
}  // namespace kvt
