// A full file system under the store (issue 14): on a 48 MiB tmpfs where a filler file leaves
// the store 10 MiB, the store fills the disk through its own puts, then a second filler takes
// whatever is left. Every put must return a
// status and the process must live (RocksDB's own LOG writer used to assert here and abort);
// blocks flushed before the disk filled must read back exact; once the fillers are deleted, puts
// succeed again and everything survives a reopen.
//
// Needs root to mount the tmpfs; skips with the reason otherwise, or when the mount is refused.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "src/store.h"
#include "tests/core/test_util.h"

namespace kvt {
namespace {

// A 48 MiB tmpfs on a fresh directory, unmounted and removed at the end.
class SmallTmpfs {
 public:
  SmallTmpfs() {
    char tmpl[] = "/tmp/kvtier-fulldisk-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) {
      why_ = std::string("mkdtemp: ") + std::strerror(errno);
      return;
    }
    path_ = tmpl;
    if (::mount("tmpfs", path_.c_str(), "tmpfs", 0, "size=48m") != 0) {
      why_ = std::string("mount -t tmpfs -o size=48m: ") + std::strerror(errno);
      return;
    }
    mounted_ = true;
  }
  ~SmallTmpfs() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
    if (!path_.empty()) ::rmdir(path_.c_str());
  }
  bool ok() const { return mounted_; }
  const std::string& why() const { return why_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_, why_;
  bool mounted_ = false;
};

// Writes zeros to `path` until the file system refuses; returns the bytes written.
uint64_t FillUp(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return 0;
  std::vector<char> chunk(64 << 10, 0);
  uint64_t total = 0;
  for (size_t n = chunk.size(); n >= 512;) {
    const ssize_t w = ::write(fd, chunk.data(), n);
    if (w > 0) {
      total += static_cast<uint64_t>(w);
    } else {
      n /= 2;  // take the last partial chunks too
    }
  }
  ::close(fd);
  return total;
}

// Shrinks a filler file to leave `keep` bytes free for the store.
void Shrink(const std::string& path, uint64_t size, uint64_t keep) {
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(size > keep ? size - keep : 0)), 0);
}

std::unique_ptr<Store> OpenStore(const Options& o) {
  auto s = Store::Open(o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

Options SmallStore(const std::string& dir) {
  Options o;
  EXPECT_TRUE(o.Set("dir", dir).ok());
  EXPECT_TRUE(o.Set("host_bytes", "1MiB").ok());
  EXPECT_TRUE(o.Set("host_slab_bytes", "256KiB").ok());
  EXPECT_TRUE(o.Set("host_mlock", "false").ok());
  EXPECT_TRUE(o.Set("nvme_bytes", "4MiB").ok());  // four segments
  EXPECT_TRUE(o.Set("nvme_segment_bytes", "1MiB").ok());
  EXPECT_TRUE(o.Set("write_policy", "write_through").ok());
  return o;
}

NamespaceDesc Desc() {
  NamespaceDesc d;
  d.model = "fulldisk@1";
  d.kv_dtype = "bf16";
  d.layers = 2;
  d.kv_heads = 2;
  d.head_dim = 64;
  d.block_tokens = 16;  // 16 KiB blocks
  return d;
}

TEST(FullDisk, PutsReturnStatusesFlushedBlocksSurviveAndSpaceComesBack) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a 48 MiB tmpfs";
  SmallTmpfs fs;
  if (!fs.ok()) GTEST_SKIP() << "no small tmpfs: " << fs.why();
  // A first filler holds all but 10 MiB of the disk, to be freed later. The store needs about 9:
  // four 1 MiB segments, and RocksDB preallocates 4 MiB for its MANIFEST.
  const std::string filler1 = fs.path() + "/filler1", filler2 = fs.path() + "/filler2",
                    filler3 = fs.path() + "/filler3";
  const uint64_t filled = FillUp(filler1);
  ASSERT_GT(filled, 47u << 20);
  Shrink(filler1, filled, 10u << 20);
  const std::string dir = fs.path() + "/store";
  auto s = OpenStore(SmallStore(dir));
  ASSERT_TRUE(s);
  uint64_t ns = *s->OpenNamespace(Desc());
  const size_t bytes = (*s->Namespace(ns))->block_bytes;
  uint64_t seq = 0;
  auto next_key = [&] { return Hash128{0x5eed0000 + ++seq, 0xf00d}; };
  auto put = [&](const Hash128& k) {
    const auto d = testing::PatternBytes(k.lo, bytes);
    return s->Put(ns, k, Hash128{}, nullptr, d.data(), bytes);
  };
  std::vector<uint8_t> out(bytes);
  // Ok with the bytes put, or NotFound (evicted); never other bytes, never another status.
  auto exact_or_gone = [&](const Hash128& k) {
    Status st = s->Get(ns, k, out.data(), bytes);
    if (st.ok()) {
      EXPECT_EQ(out, testing::PatternBytes(k.lo, bytes)) << k.lo;
      return true;
    }
    EXPECT_TRUE(st.IsNotFound()) << st.ToString();
    return false;
  };
  std::map<Code, uint64_t> codes;
  auto count = [&](const Status& st) { ++codes[st.code()]; };

  // While there is space: enough blocks to allocate every segment, the last 40 flushed.
  std::vector<Hash128> flushed;
  for (int i = 0; i < 250; ++i) {
    const Hash128 k = next_key();
    ASSERT_TRUE(put(k).ok()) << i;
    if (i >= 210) flushed.push_back(k);
  }
  ASSERT_TRUE(s->Flush().ok());

  // The disk fills: puts (too few to evict the flushed blocks from the NVMe segments) each
  // return a status; so does the flush.
  const uint64_t filler_bytes = FillUp(filler2);
  for (int i = 0; i < 30; ++i) count(put(next_key()));
  count(s->Flush());
  for (const Hash128& k : flushed) {
    ASSERT_TRUE(s->Get(ns, k, out.data(), bytes).ok()) << k.lo;
    ASSERT_EQ(out, testing::PatternBytes(k.lo, bytes)) << k.lo;
  }
  // Close and reopen on the full disk: a status either way (the reopen used to abort). When it
  // opens, the flushed blocks come back exact from the NVMe tier (the host tier starts empty).
  s.reset();
  {
    auto r = Store::Open(SmallStore(dir));
    count(r.status());
    if (r.ok()) {
      s = std::move(r).value();
      FillUp(filler3);  // whatever the reopen freed (RocksDB drops its recovered WAL)
      ns = *s->OpenNamespace(Desc());
      for (const Hash128& k : flushed) {
        ASSERT_TRUE(s->Get(ns, k, out.data(), bytes).ok()) << k.lo;
        ASSERT_EQ(out, testing::PatternBytes(k.lo, bytes)) << k.lo;
      }
      // Many puts on the full disk: statuses, and the process lives.
      for (int i = 0; i < 200; ++i) count(put(next_key()));
      count(s->Flush());
    }
  }
  std::string summary;
  for (auto [c, n] : codes) summary += std::string(CodeName(c)) + "=" + std::to_string(n) + " ";
  std::printf("full disk: filler %llu bytes; statuses while full: %s\n",
              static_cast<unsigned long long>(filler_bytes), summary.c_str());
  // The full disk reached the index: some call failed, and said why.
  EXPECT_GT(codes[Code::kNoSpace], 0u) << summary;
  for (auto [c, n] : codes) {
    EXPECT_TRUE(c == Code::kOk || c == Code::kNoSpace || c == Code::kIoError) << summary;
  }

  // Space comes back: puts succeed again (in the store that saw the disk full, or in a fresh
  // one if the reopen on the full disk failed), and they survive a reopen.
  ASSERT_EQ(::unlink(filler1.c_str()), 0);
  ASSERT_EQ(::unlink(filler2.c_str()), 0);
  ::unlink(filler3.c_str());
  if (!s) {
    s = OpenStore(SmallStore(dir));
    ASSERT_TRUE(s);
    ns = *s->OpenNamespace(Desc());
  }
  // RocksDB's own recovery from a full disk polls every 5 s for free space, and waits for a
  // memtable's worth (16 MiB, hence the 48 MiB disk): the first put may fail until it has run
  // (a bounded wait; no fixed delay).
  std::vector<Hash128> later = {next_key()};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  Status first = put(later[0]);
  int retries = 0;
  while (!first.ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    first = put(later[0]);
    ++retries;
  }
  ASSERT_TRUE(first.ok()) << first.ToString();
  std::printf("full disk: writes succeed again after %d retries\n", retries);
  for (int i = 1; i < 20; ++i) {
    later.push_back(next_key());
    Status st = put(later.back());
    ASSERT_TRUE(st.ok()) << i << ": " << st.ToString();
  }
  Status f2 = s->Flush();
  ASSERT_TRUE(f2.ok()) << f2.ToString();
  s.reset();
  s = OpenStore(SmallStore(dir));
  ASSERT_TRUE(s);
  ns = *s->OpenNamespace(Desc());
  for (const Hash128& k : later) {
    ASSERT_TRUE(s->Get(ns, k, out.data(), bytes).ok()) << k.lo;
    ASSERT_EQ(out, testing::PatternBytes(k.lo, bytes)) << k.lo;
  }
  for (const Hash128& k : flushed) exact_or_gone(k);  // the 200 puts may have evicted them
}

}  // namespace
}  // namespace kvt
