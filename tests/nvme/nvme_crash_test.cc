// Crash recovery: a child process writes blocks and flushes every few. After each Flush it records
// in an oracle file (fdatasync'd) every block the Flush covered, with the generation of the
// segment it was written to. It reports progress through a pipe; the parent SIGKILLs it once it
// has written a seeded number of blocks (so the verdict depends on block counts, not on how fast
// the disk is), reopens the directory and checks:
//   - a flushed block whose segment generation is still live after the reopen reads back
//     byte-exact: it cannot have been reclaimed, so a miss is lost data;
//   - a flushed block whose generation is gone was reclaimed (normal with this small budget): it
//     must be a miss, never other bytes;
//   - any other indexed block reads exact or misses; du matches the accounting.
// Each cycle must flush something and the run must verify a minimum number of reads.
// KVT_NVME_CRASH_CYCLES=N runs a longer loop; KVT_NVME_CRASH_SEED=S reruns a printed seed.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "io/unique_fd.h"
#include "tests/common/test_dir.h"
#include "tests/nvme/nvme_test_util.h"
#include "tiers/nvme/nvme_tier.h"

namespace kvt {
namespace {

using testing::FillBlock;
using testing::KeyOf;
using testing::MetaOf;

constexpr uint64_t kNs = 99;
constexpr uint32_t kBytes = 6000;  // a 12 KiB record: 21 per 256 KiB segment
constexpr int kFlushEvery = 5;
constexpr uint64_t kSegments = 8;  // 168 blocks: reclaim runs every few cycles
constexpr uint64_t kBlocksPerSegment = 21;
// A child never writes more than this many blocks, so a cycle can never reclaim a segment it
// wrote itself (that takes 7 segments, about 147 blocks): the cycle's own flushed blocks must
// all survive, whatever the disk's speed.
constexpr uint64_t kMaxPerCycle = 110;
constexpr uint64_t kMinKill = 2 * kFlushEvery;  // the kill comes after this many blocks at least
constexpr uint64_t kMaxKill = 90;

NvmeOptions CrashOptions(const std::string& dir) {
  return testing::SmallOptions(dir, kSegments, 256 << 10);
}

uint64_t ActiveGeneration(const NvmeTier& t) {
  for (const NvmeSegmentInfo& s : t.Segments()) {
    if (s.state == NvmeSegmentInfo::State::kActive) return s.generation;
  }
  return 0;
}

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::strtoull(v, nullptr, 10) : fallback;
}

// The child: runs only when the parent execs this binary with KVT_NVME_CRASH_CHILD set. Writes
// one byte to the progress pipe per block written ('w') and per Flush recorded ('f').
TEST(NvmeCrashTest, ChildWriter) {
  const char* dir = std::getenv("KVT_NVME_CRASH_CHILD");
  if (dir == nullptr) GTEST_SKIP() << "runs only as the crash test's child";
  const uint64_t base = EnvOr("KVT_NVME_CRASH_BASE", 0);
  const int progress = static_cast<int>(EnvOr("KVT_NVME_CRASH_FD", 0));
  auto t = NvmeTier::Open(CrashOptions(dir));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  UniqueFd oracle(::open((std::string(dir) + ".oracle").c_str(),
                         O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644));
  ASSERT_TRUE(oracle.valid());
  auto slot = testing::Slot(kBytes);
  std::string pending;  // oracle lines of blocks written since the last Flush
  for (uint64_t i = base; i < base + kMaxPerCycle; ++i) {
    FillBlock(kNs, i, 0, slot.data(), kBytes);
    ASSERT_TRUE((*t)->Write(MetaOf(kNs, i, kBytes, slot.data()), slot.data()).ok());
    // One writer thread: the segment this block went to is still the active one.
    pending += std::to_string(i) + " " + std::to_string(ActiveGeneration(**t)) + "\n";
    ASSERT_EQ(::write(progress, "w", 1), 1);
    if ((i + 1 - base) % kFlushEvery == 0) {
      ASSERT_TRUE((*t)->Flush().ok());
      ASSERT_EQ(::write(oracle.get(), pending.data(), pending.size()),
                static_cast<ssize_t>(pending.size()));
      ASSERT_EQ(::fdatasync(oracle.get()), 0);
      pending.clear();
      ASSERT_EQ(::write(progress, "f", 1), 1);
    }
  }
  for (;;) ::pause();  // wait for the kill
}

struct CycleResult {
  uint64_t verified = 0;   // flushed blocks that had to survive and read back exact
  uint64_t reclaimed = 0;  // flushed blocks whose segment generation was reclaimed since
};

// Forks and execs the child, waits (on the progress pipe) until it has written `kill_after`
// blocks and finished at least one Flush, then SIGKILLs it.
void RunChild(const std::string& dir, uint64_t base, uint64_t kill_after) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::setenv("KVT_NVME_CRASH_CHILD", dir.c_str(), 1);
  ::setenv("KVT_NVME_CRASH_BASE", std::to_string(base).c_str(), 1);
  ::setenv("KVT_NVME_CRASH_FD", std::to_string(fds[1]).c_str(), 1);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    ::execl("/proc/self/exe", "/proc/self/exe", "--gtest_filter=NvmeCrashTest.ChildWriter",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::unsetenv("KVT_NVME_CRASH_CHILD");
  ::unsetenv("KVT_NVME_CRASH_BASE");
  ::unsetenv("KVT_NVME_CRASH_FD");
  ::close(fds[1]);
  uint64_t written = 0, flushes = 0;
  char c;
  // EOF before the target means the child died on its own (checked below).
  while ((written < kill_after || flushes == 0) && ::read(fds[0], &c, 1) == 1) {
    if (c == 'w') ++written;
    if (c == 'f') ++flushes;
  }
  ::kill(pid, SIGKILL);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the child exited on its own (status " << status
                                   << ") after " << written << " blocks";
}

TEST(NvmeCrashTest, SigkillAfterSeededBlockCountsLosesNothingFlushed) {
  testing::TestDir tmp;
  const std::string dir = tmp.file("tier");
  const int cycles = static_cast<int>(EnvOr("KVT_NVME_CRASH_CYCLES", 12));
  const uint64_t seed = EnvOr("KVT_NVME_CRASH_SEED", 17);
  std::printf("NVMe crash test: %d cycles, seed %" PRIu64 " (KVT_NVME_CRASH_SEED reruns it)\n",
              cycles, seed);
  std::mt19937_64 rng(seed);
  std::map<uint64_t, uint64_t> generation_of;  // flushed block -> its segment generation
  uint64_t verified_total = 0, reclaimed_total = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    SCOPED_TRACE("cycle " + std::to_string(cycle) + ", seed " + std::to_string(seed));
    const uint64_t base = static_cast<uint64_t>(cycle) * 1000000;
    const uint64_t kill_after = kMinKill + rng() % (kMaxKill - kMinKill + 1);
    RunChild(dir, base, kill_after);
    if (HasFatalFailure()) return;

    {
      std::ifstream in(dir + ".oracle");
      uint64_t i, g;
      while (in >> i >> g) generation_of[i] = g;
    }
    auto t = NvmeTier::Open(CrashOptions(dir));
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    std::set<uint64_t> live;
    for (const NvmeSegmentInfo& s : (*t)->Segments()) {
      bool holds = s.state == NvmeSegmentInfo::State::kActive ||
                   s.state == NvmeSegmentInfo::State::kSealed;
      if (holds && s.generation != 0) live.insert(s.generation);
    }
    auto dst = testing::Slot(kBytes);
    auto want = testing::Slot(kBytes);
    CycleResult r;
    uint64_t this_cycle = 0;
    for (const auto& [i, gen] : generation_of) {
      const bool mine = i >= base;
      this_cycle += mine ? 1 : 0;
      FillBlock(kNs, i, 0, want.data(), kBytes);
      Status s = (*t)->Read(kNs, KeyOf(i), dst.data(), dst.size(), nullptr);
      if (live.count(gen) != 0) {
        ASSERT_TRUE(s.ok()) << "flushed block " << i << " of live generation " << gen
                            << " lost: " << s.ToString();
        ASSERT_EQ(0, std::memcmp(dst.data(), want.data(), kBytes)) << "block " << i;
        ++r.verified;
      } else {
        // Reclaimed (oldest first): a miss, never bytes of another block.
        ASSERT_TRUE(s.IsNotFound()) << "block " << i << " of reclaimed generation " << gen
                                    << ": " << s.ToString();
        ASSERT_FALSE(mine) << "block " << i << " was reclaimed in the cycle that wrote it";
        ++r.reclaimed;
      }
    }
    ASSERT_GE(this_cycle, static_cast<uint64_t>(kFlushEvery)) << "the cycle flushed nothing";
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
    verified_total += r.verified;
    reclaimed_total = r.reclaimed;  // cumulative by construction (the oracle only grows)
  }
  std::printf("%d SIGKILL cycles: %" PRIu64 " flushed-block reads verified, %" PRIu64
              " flushed blocks reclaimed by the end\n",
              cycles, verified_total, reclaimed_total);
  // Every cycle re-verifies its own flushed blocks at least (the floor). Once more blocks were
  // flushed than the budget holds, the oldest segment (cycle 0's first, flushed blocks) must have
  // been reclaimed: otherwise the test no longer covers the reclaim classification.
  EXPECT_GE(verified_total, static_cast<uint64_t>(cycles) * kFlushEvery);
  if (generation_of.size() > kSegments * kBlocksPerSegment) {
    EXPECT_GT(reclaimed_total, 0u) << "no reclaim seen: the budget no longer forces it";
  }
}

}  // namespace
}  // namespace kvt
