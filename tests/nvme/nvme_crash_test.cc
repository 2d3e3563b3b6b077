// Crash recovery: a child process writes blocks and flushes every few, recording in an oracle
// file (synced) the last key each Flush covered; the parent SIGKILLs it at a random moment,
// reopens the directory and checks that every flushed block reads back byte-exact, that no read
// returns bytes other than the ones written for its key, and that du matches the accounting.
// CI runs a short loop; KVT_NVME_CRASH_CYCLES=N runs a longer one.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "io/unique_fd.h"
#include "tests/nvme/nvme_test_util.h"
#include "tests/common/test_dir.h"
#include "tiers/nvme_tier.h"

namespace kvt {
namespace {

using testing::FillBlock;
using testing::KeyOf;
using testing::MetaOf;

constexpr uint64_t kNs = 99;
constexpr uint32_t kBytes = 6000;
constexpr int kFlushEvery = 5;

NvmeOptions CrashOptions(const std::string& dir) {
  // Big enough that nothing is reclaimed during the test: every flushed block must survive.
  return testing::SmallOptions(dir, 48, 1 << 20);
}

// The child: runs only when the parent execs this binary with KVT_NVME_CRASH_CHILD set.
TEST(NvmeCrashTest, ChildWriter) {
  const char* dir = std::getenv("KVT_NVME_CRASH_CHILD");
  const char* base_s = std::getenv("KVT_NVME_CRASH_BASE");
  if (dir == nullptr || base_s == nullptr) GTEST_SKIP() << "runs only as the crash test's child";
  uint64_t base = std::strtoull(base_s, nullptr, 10);
  auto t = NvmeTier::Open(CrashOptions(dir));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  UniqueFd oracle(::open((std::string(dir) + ".oracle").c_str(),
                         O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_TRUE(oracle.valid());
  auto slot = testing::Slot(kBytes);
  for (uint64_t i = base;; ++i) {
    FillBlock(kNs, i, 0, slot.data(), kBytes);
    ASSERT_TRUE((*t)->Write(MetaOf(kNs, i, kBytes, slot.data()), slot.data()).ok());
    if ((i + 1 - base) % kFlushEvery == 0) {
      ASSERT_TRUE((*t)->Flush().ok());
      std::string line = std::to_string(base) + " " + std::to_string(i) + "\n";
      ASSERT_EQ(::write(oracle.get(), line.data(), line.size()), static_cast<ssize_t>(line.size()));
      ASSERT_EQ(::fdatasync(oracle.get()), 0);
    }
    if (i - base > 200000) break;  // never reached: the parent kills us
  }
}

TEST(NvmeCrashTest, SigkillAtRandomMomentsLosesNothingFlushed) {
  testing::TestDir tmp;
  const std::string dir = tmp.file("tier");
  const std::string oracle = dir + ".oracle";
  int cycles = 8;
  if (const char* c = std::getenv("KVT_NVME_CRASH_CYCLES")) cycles = std::atoi(c);
  std::mt19937_64 rng(2024);
  uint64_t total_flushed = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    const uint64_t base = static_cast<uint64_t>(cycle) * 1000000;
    ::setenv("KVT_NVME_CRASH_CHILD", dir.c_str(), 1);
    ::setenv("KVT_NVME_CRASH_BASE", std::to_string(base).c_str(), 1);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::execl("/proc/self/exe", "/proc/self/exe", "--gtest_filter=NvmeCrashTest.ChildWriter",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::unsetenv("KVT_NVME_CRASH_CHILD");
    ::unsetenv("KVT_NVME_CRASH_BASE");
    std::this_thread::sleep_for(std::chrono::milliseconds(80 + rng() % 200));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited on its own: status " << status;

    // What each cycle's Flush calls covered.
    std::map<uint64_t, uint64_t> flushed_upto;
    {
      std::ifstream in(oracle);
      uint64_t b, k;
      while (in >> b >> k) flushed_upto[b] = std::max(flushed_upto[b], k);
    }
    auto t = NvmeTier::Open(CrashOptions(dir));
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    auto dst = testing::Slot(kBytes);
    auto want = testing::Slot(kBytes);
    uint64_t flushed = 0;
    for (const auto& [b, upto] : flushed_upto) {
      for (uint64_t i = b; i <= upto; ++i, ++flushed) {
        FillBlock(kNs, i, 0, want.data(), kBytes);
        Status s = (*t)->Read(kNs, KeyOf(i), dst.data(), dst.size(), nullptr);
        ASSERT_TRUE(s.ok()) << "cycle " << cycle << ": flushed block " << i
                            << " lost: " << s.ToString();
        ASSERT_EQ(0, std::memcmp(dst.data(), want.data(), kBytes)) << "block " << i;
      }
    }
    // Anything else indexed (written after the last Flush) is exact or a miss.
    std::vector<NvmeEntry> all;
    (*t)->ForEachEntry([&](const NvmeEntry& e) {
      all.push_back(e);
      return true;
    });
    for (const NvmeEntry& e : all) {
      uint64_t i = (e.key.hi ^ 0xabcdef);
      FillBlock(kNs, i, 0, want.data(), kBytes);
      Status s = (*t)->Read(kNs, e.key, dst.data(), dst.size(), nullptr);
      ASSERT_TRUE(s.ok() || s.IsNotFound()) << s.ToString();
      if (s.ok()) {
        ASSERT_EQ(0, std::memcmp(dst.data(), want.data(), kBytes)) << "block " << i;
      }
    }
    NvmeStats st = (*t)->Stats();
    EXPECT_EQ(testing::DiskUsage(dir, true), st.bytes_used);
    EXPECT_LE(st.bytes_used, st.budget_bytes);
    total_flushed = flushed;
  }
  std::printf("%d SIGKILL cycles, %" PRIu64 " flushed blocks verified in the last one\n", cycles,
              total_flushed);
  EXPECT_GT(total_flushed, 0u);
}

}  // namespace
}  // namespace kvt
