// kill -9 during batched flushes. A forked child runs two writer threads; each writes batches of
// blocks (WriteBatch), flushes, and only then reports the batch over a pipe. The parent SIGKILLs
// the child after a random number of reports, reopens the directory and checks that every
// reported block reads back byte-exact and that nothing indexed reads back foreign bytes.
// Flush does not sync the index (records past each segment's replay mark are indexed again at
// open), so the "WAL tail lost" variant also truncates the index's RocksDB log at a random point,
// as a power cut would drop its unsynced tail, and requires the replay to have found records.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/common/test_dir.h"
#include "tests/nvme/nvme_test_util.h"
#include "tiers/nvme/nvme_tier.h"

namespace kvt {
namespace {

using testing::FillBlock;
using testing::KeyOf;
using testing::MetaOf;

constexpr uint64_t kBatchNs = 7;
constexpr int kThreads = 2;
constexpr int kBatch = 16;
constexpr int kMaxBatches = 20;  // per thread and cycle; then the child waits to be killed

// Block i's size: an unaligned one, a 64 KiB one, and one in between.
uint32_t BatchBlockSize(uint64_t i) {
  static constexpr uint32_t kSizes[] = {6000, 64 << 10, 20000};
  return kSizes[i % 3];
}
uint64_t KeyIndex(int cycle, int thread, int batch, int item) {
  return static_cast<uint64_t>(cycle) * 1000000 + thread * 100000 + batch * kBatch + item;
}

NvmeOptions Opts(const std::string& dir) {
  // 128 MiB, more than 4 cycles write (4 x 2 x 20 x 16 blocks of <= 68 KiB on disk): nothing
  // is reclaimed during the test, so every flushed block must survive.
  return testing::SmallOptions(dir, 128, 1 << 20);
}

uint64_t Counter(const NvmeTier& t, std::string_view name) {
  uint64_t v = 0;
  t.VisitCounters([&](std::string_view n, uint64_t x) {
    if (n == name) v = x;
  });
  return v;
}

// The child: never returns. Reports (thread, batch) after each batch's Flush returned.
[[noreturn]] void Child(const std::string& dir, int cycle, int report_fd, int block_fd) {
  auto t = NvmeTier::Open(Opts(dir));
  if (!t.ok()) ::_exit(3);
  std::vector<std::thread> threads;
  for (int th = 0; th < kThreads; ++th) {
    threads.emplace_back([&, th] {
      std::vector<AlignedBuffer> slots;
      for (int k = 0; k < kBatch; ++k) slots.push_back(testing::Slot(64 << 10));
      for (int b = 0; b < kMaxBatches; ++b) {
        std::vector<NvmeWriteItem> items(kBatch);
        for (int k = 0; k < kBatch; ++k) {
          uint64_t i = KeyIndex(cycle, th, b, k);
          FillBlock(kBatchNs, i, 0, slots[k].data(), BatchBlockSize(i));
          items[k].meta = MetaOf(kBatchNs, i, BatchBlockSize(i), slots[k].data());
          items[k].payload = slots[k].data();
        }
        if (!(*t)->WriteBatch(items).ok()) ::_exit(4);
        if (!(*t)->Flush().ok()) ::_exit(5);
        int32_t rec[2] = {th, b};
        if (::write(report_fd, rec, sizeof(rec)) != sizeof(rec)) ::_exit(6);
      }
    });
  }
  for (auto& th : threads) th.join();
  char c;
  (void)!::read(block_fd, &c, 1);  // the parent never writes: wait for SIGKILL here
  ::_exit(7);
}

// Truncates the newest RocksDB log of the index to a random length (a lost unsynced tail).
void TruncateIndexLog(const std::string& dir, std::mt19937_64& rng) {
  std::filesystem::path newest;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/index")) {
    if (e.path().extension() == ".log" && (newest.empty() || e.path() > newest)) newest = e.path();
  }
  if (newest.empty()) return;
  auto size = std::filesystem::file_size(newest);
  std::filesystem::resize_file(newest, size == 0 ? 0 : rng() % size);
}

void RunCycles(bool lose_wal_tail) {
  testing::TestDir tmp;
  const std::string dir = tmp.file("tier");
  std::mt19937_64 rng(lose_wal_tail ? 11 : 5);
  std::set<uint64_t> flushed;
  uint64_t replayed = 0;
  for (int cycle = 0; cycle < 4; ++cycle) {
    int report[2], block[2];
    ASSERT_EQ(::pipe(report), 0);
    ASSERT_EQ(::pipe(block), 0);
    // The child is this binary, exec'd fresh (RocksDB's thread pool does not survive a fork).
    std::string args = dir + " " + std::to_string(cycle) + " " + std::to_string(report[1]) + " " +
                       std::to_string(block[0]);
    ::setenv("KVT_NVME_BATCH_CRASH_CHILD", args.c_str(), 1);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(report[0]);
      ::close(block[1]);
      ::execl("/proc/self/exe", "/proc/self/exe", "--gtest_filter=NvmeBatchCrashTest.Child",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::unsetenv("KVT_NVME_BATCH_CRASH_CHILD");
    ::close(report[1]);
    ::close(block[0]);
    // Kill after a random number of reported batches: mid-way through other batches' writes
    // and flushes.
    const int kill_after = 1 + static_cast<int>(rng() % (kThreads * kMaxBatches - 1));
    int32_t rec[2];
    int seen = 0;
    auto take = [&] {
      for (int k = 0; k < kBatch; ++k) flushed.insert(KeyIndex(cycle, rec[0], rec[1], k));
    };
    while (seen < kill_after && ::read(report[0], rec, sizeof(rec)) == sizeof(rec)) {
      take();
      ++seen;
    }
    ::kill(pid, SIGKILL);
    while (::read(report[0], rec, sizeof(rec)) == sizeof(rec)) take();  // reported before death
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::close(report[0]);
    ::close(block[1]);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child failed on its own: exit " << WEXITSTATUS(status);
    if (lose_wal_tail) TruncateIndexLog(dir, rng);

    auto t = NvmeTier::Open(Opts(dir));
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    replayed += Counter(**t, "records_replayed");
    // Every reported block, read back in batches.
    std::vector<uint64_t> keys(flushed.begin(), flushed.end());
    auto want = testing::Slot(64 << 10);
    for (size_t at = 0; at < keys.size(); at += 64) {
      size_t n = std::min<size_t>(64, keys.size() - at);
      std::vector<AlignedBuffer> dst;
      std::vector<NvmeReadItem> items(n);
      for (size_t k = 0; k < n; ++k) {
        dst.push_back(testing::Slot(64 << 10));
        items[k].ns = kBatchNs;
        items[k].key = KeyOf(keys[at + k]);
        items[k].dst = dst.back().data();
        items[k].dst_bytes = BatchBlockSize(keys[at + k]);  // exact size: the tail path too
      }
      size_t got = (*t)->ReadBatch(items);
      for (size_t k = 0; k < n; ++k) {
        ASSERT_TRUE(items[k].status.ok()) << "cycle " << cycle << ": flushed block " << keys[at + k]
                                          << ": " << items[k].status.ToString();
      }
      ASSERT_EQ(got, n);
      for (size_t k = 0; k < n; ++k) {
        uint64_t i = keys[at + k];
        FillBlock(kBatchNs, i, 0, want.data(), BatchBlockSize(i));
        ASSERT_EQ(0, std::memcmp(dst[k].data(), want.data(), BatchBlockSize(i)))
            << "cycle " << cycle << ": flushed block " << i << " differs";
      }
    }
    // Anything else indexed (not reported) is exact or a miss, never foreign bytes.
    std::vector<NvmeEntry> all;
    (*t)->ForEachEntry([&](const NvmeEntry& e) {
      all.push_back(e);
      return true;
    });
    auto dst = testing::Slot(64 << 10);
    for (const NvmeEntry& e : all) {
      uint64_t i = e.key.hi ^ 0xabcdef;
      ASSERT_TRUE(KeyOf(i) == e.key);
      Status s = (*t)->Read(kBatchNs, e.key, dst.data(), 64 << 10, nullptr);
      ASSERT_TRUE(s.ok() || s.IsNotFound()) << s.ToString();
      if (!s.ok()) continue;
      FillBlock(kBatchNs, i, 0, want.data(), BatchBlockSize(i));
      ASSERT_EQ(0, std::memcmp(dst.data(), want.data(), BatchBlockSize(i))) << "block " << i;
    }
  }
  EXPECT_GT(flushed.size(), 0u);
  std::printf("%zu flushed blocks verified, %llu records replayed at open\n", flushed.size(),
              static_cast<unsigned long long>(replayed));
  if (lose_wal_tail) {
    EXPECT_GT(replayed, 0u) << "the index log was cut, yet nothing was replayed";
  }
}

// Runs only as the child of the tests below.
TEST(NvmeBatchCrashTest, Child) {
  const char* args = std::getenv("KVT_NVME_BATCH_CRASH_CHILD");
  if (args == nullptr) GTEST_SKIP() << "runs only as the crash test's child";
  char dir[4096];
  int cycle = 0, report_fd = -1, block_fd = -1;
  ASSERT_EQ(std::sscanf(args, "%4095s %d %d %d", dir, &cycle, &report_fd, &block_fd), 4);
  Child(dir, cycle, report_fd, block_fd);
}

TEST(NvmeBatchCrashTest, KillDuringBatchedFlushLosesNothingFlushed) { RunCycles(false); }

TEST(NvmeBatchCrashTest, KillAndLostIndexLogTailReplaysSegmentRecords) { RunCycles(true); }

}  // namespace
}  // namespace kvt
