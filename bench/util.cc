// Timing, threads, permutations, source bytes, directories and disk space for kvtier-bench.
#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "bench/bench.h"

namespace kvt::bench {

const char* KindName(Kind k) {
  switch (k) {
    case Kind::kLimit: return "limit";
    case Kind::kEngine: return "engine";
    case Kind::kBaseline: return "baseline";
  }
  return "?";
}

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Status ParallelFor(int threads, uint64_t n, const std::function<Status(int, uint64_t)>& fn) {
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first;
  auto worker = [&](int t) {
    for (;;) {
      if (failed.load(std::memory_order_relaxed)) return;
      uint64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) return;
      Status s = fn(t, i);
      if (!s.ok()) {
        std::lock_guard<std::mutex> l(mu);
        if (first.ok()) first = s;
        failed = true;
        return;
      }
    }
  };
  if (threads <= 1) {
    worker(0);
    return first;
  }
  std::vector<std::thread> pool;
  pool.reserve(threads);
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker, t);
  for (auto& th : pool) th.join();
  return first;
}

std::vector<uint64_t> Permutation(uint64_t n, uint64_t seed) {
  std::vector<uint64_t> v(n);
  for (uint64_t i = 0; i < n; ++i) v[i] = i;
  std::mt19937_64 rng(seed);
  std::shuffle(v.begin(), v.end(), rng);
  return v;
}

double Median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  size_t m = v.size() / 2;
  return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

StatusOr<Source> MakeSource(uint64_t bytes) {
  Source s;
  KVT_ASSIGN_OR_RETURN(s.buf, AlignedBuffer::Allocate(bytes, /*lock=*/false));
  // Random bytes: incompressible, so no layer (codec, file system, virtual disk) can shortcut.
  std::mt19937_64 rng(0x6b7674696572ull);
  auto* w = reinterpret_cast<uint64_t*>(s.buf.data());
  for (size_t i = 0; i < s.buf.size() / 8; ++i) w[i] = rng();
  return s;
}

StatusOr<BlockBuffers> MakeBlockBuffers(uint64_t count, uint64_t block) {
  BlockBuffers b;
  b.block = block;
  b.count = std::max<uint64_t>(count, 1);
  const uint64_t bytes = std::max<uint64_t>(b.count * block, AlignedBuffer::kHugePage);
  KVT_ASSIGN_OR_RETURN(b.region, AlignedBuffer::Allocate(bytes, /*lock=*/false));
  std::memset(b.region.data(), 0, b.region.size());  // no first-touch page faults in round 1
  return b;
}

StatusOr<uint64_t> FreeBytes(const std::string& dir) {
  struct statvfs st;
  if (::statvfs(dir.c_str(), &st) != 0) return Status::FromErrno(errno, "statvfs " + dir);
  return uint64_t{st.f_bavail} * st.f_frsize;
}

std::string HumanSize(uint64_t b) {
  if (b >= (1ull << 30) && b % (1ull << 30) == 0) return std::to_string(b >> 30) + "G";
  if (b >= (1ull << 20) && b % (1ull << 20) == 0) return std::to_string(b >> 20) + "M";
  if (b >= (1ull << 10) && b % (1ull << 10) == 0) return std::to_string(b >> 10) + "K";
  return std::to_string(b);
}

Status RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return Status::IoError("remove " + path + ": " + ec.message());
  return Status::Ok();
}

Status MakeDir(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return Status::IoError("create directory " + path + ": " + ec.message());
  return Status::Ok();
}

}  // namespace kvt::bench
