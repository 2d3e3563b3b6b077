// Micro-benchmarks: index lookups. TierIndex (the host tier's in-memory index) and NvmeIndex
// (RocksDB-backed, answered by its in-memory map; puts go to RocksDB first).
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "io/aligned_buffer.h"
#include "tiers/nvme/nvme_index.h"
#include "tiers/nvme/nvme_tier.h"
#include "tiers/policy/tier_index.h"

namespace kvt {
namespace {

std::vector<Hash128> Keys(size_t n) {
  std::mt19937_64 rng(42);
  std::vector<Hash128> k(n);
  for (auto& x : k) x = Hash128{rng(), rng()};
  return k;
}

// Arg: entries in the index. Lookups of present keys in random order.
void BM_TierIndexFind(benchmark::State& state) {
  const size_t n = state.range(0);
  TierIndex idx(MakeEvictionPolicy("lru").value());
  const auto keys = Keys(n);
  for (size_t i = 0; i < n; ++i) {
    BlockMeta m;
    m.ns = 1;
    m.key = keys[i];
    idx.Insert(m, i, 1);
  }
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(idx.Find(1, keys[(i++ * 7919) % n]));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TierIndexFind)->Arg(1 << 10)->Arg(1 << 20);

void BM_TierIndexFindMiss(benchmark::State& state) {
  TierIndex idx(MakeEvictionPolicy("lru").value());
  const auto keys = Keys(1 << 16);
  for (size_t i = 0; i < keys.size(); ++i) {
    BlockMeta m;
    m.ns = 1;
    m.key = keys[i];
    idx.Insert(m, i, 1);
  }
  uint64_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(idx.Find(1, Hash128{++i, 0}));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TierIndexFindMiss);

// A scratch RocksDB directory for one benchmark, removed afterwards.
class ScratchDir {
 public:
  ScratchDir() {
    std::string t = "/tmp/kvtier-microbench-XXXXXX";
    path_ = ::mkdtemp(t.data()) != nullptr ? t : "/tmp/kvtier-microbench";
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

NvmeEntry Entry(const Hash128& k, uint64_t i) {
  NvmeEntry e;
  e.ns = 1;
  e.key = k;
  e.loc.segment = static_cast<uint32_t>(i % 64);
  e.loc.generation = 1;
  e.loc.offset = i * 266240;
  e.loc.stored_bytes = e.loc.payload_bytes = 262144;
  e.loc.checksum = i;
  return e;
}

void BM_NvmeIndexFind(benchmark::State& state) {
  ScratchDir dir;
  auto idx = NvmeIndex::Open(dir.path() + "/index", false);
  if (!idx.ok()) {
    state.SkipWithError(idx.status().ToString().c_str());
    return;
  }
  const size_t n = state.range(0);
  const auto keys = Keys(n);
  std::vector<NvmeEntry> batch;
  for (size_t i = 0; i < n; ++i) {
    batch.push_back(Entry(keys[i], i));
    if (batch.size() == 1024 || i + 1 == n) {
      if (!(*idx)->Put(batch).ok()) state.SkipWithError("put failed");
      batch.clear();
    }
  }
  size_t i = 0;
  NvmeLocation loc;
  for (auto _ : state) {
    benchmark::DoNotOptimize((*idx)->Find(1, keys[(i++ * 7919) % n], &loc));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NvmeIndexFind)->Arg(1 << 10)->Arg(1 << 18);

// Arg: entries per Put (one RocksDB write batch, WAL not synced).
void BM_NvmeIndexPut(benchmark::State& state) {
  ScratchDir dir;
  auto idx = NvmeIndex::Open(dir.path() + "/index", false);
  if (!idx.ok()) {
    state.SkipWithError(idx.status().ToString().c_str());
    return;
  }
  const size_t per = state.range(0);
  std::vector<NvmeEntry> batch(per);
  uint64_t i = 0;
  for (auto _ : state) {
    for (auto& e : batch) {
      e = Entry(Hash128{++i, 3}, i);
    }
    if (!(*idx)->Put(batch).ok()) state.SkipWithError("put failed");
  }
  state.SetItemsProcessed(state.iterations() * per);
}
BENCHMARK(BM_NvmeIndexPut)->Arg(1)->Arg(64);

// DRAM bytes per block of the in-memory indexes (heap growth while n entries go in, per entry;
// glibc's mallinfo2, so allocator overhead and hash buckets count). Reported as counters; the
// timed loop is a plain Find.
uint64_t HeapBytes() {
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;  // small chunks + mmapped ones (large tables)
}

void BM_NvmeIndexMemory(benchmark::State& state) {
  ScratchDir dir;
  auto idx = NvmeIndex::Open(dir.path() + "/index", false);
  if (!idx.ok()) {
    state.SkipWithError(idx.status().ToString().c_str());
    return;
  }
  const size_t n = state.range(0);
  const auto keys = Keys(n);
  const uint64_t before = HeapBytes();
  for (size_t i = 0; i < n; ++i) (*idx)->LoadIntoMemory(Entry(keys[i], i));  // the map only
  const uint64_t after = HeapBytes();
  size_t i = 0;
  NvmeLocation loc;
  for (auto _ : state) benchmark::DoNotOptimize((*idx)->Find(1, keys[(i++ * 7919) % n], &loc));
  state.counters["bytes_per_block"] = static_cast<double>(after - before) / n;
}
BENCHMARK(BM_NvmeIndexMemory)->Arg(1 << 20);

void BM_TierIndexMemory(benchmark::State& state) {
  const size_t n = state.range(0);
  const auto keys = Keys(n);
  const uint64_t before = HeapBytes();
  auto idx = std::make_unique<TierIndex>(MakeEvictionPolicy("lru").value());
  for (size_t i = 0; i < n; ++i) {
    BlockMeta m;
    m.ns = 1;
    m.key = keys[i];
    idx->Insert(m, i, 1);
  }
  const uint64_t after = HeapBytes();
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(idx->Find(1, keys[(i++ * 7919) % n]));
  state.counters["bytes_per_block"] = static_cast<double>(after - before) / n;
}
BENCHMARK(BM_TierIndexMemory)->Arg(1 << 20);

}  // namespace
}  // namespace kvt

namespace kvt {
namespace {

// NvmeTier::WriteBatch of 64 blocks per iteration into a tier under /tmp, the
// engine's part of nvme_write_batch without the rest of kvtier-bench around it (for profiles:
// `perf record -g kvtier-microbench --benchmark_filter=NvmeWriteBatch`). Bytes/s is the device's
// and the host's, not a target.
void BM_NvmeWriteBatch(benchmark::State& state) {
  ScratchDir dir;
  const uint64_t block = state.range(0);
  NvmeOptions o;
  o.dir = dir.path() + "/nvme";
  o.segment_bytes = static_cast<uint64_t>(state.range(1)) << 20;
  o.budget_bytes = 8 * o.segment_bytes;
  auto t = NvmeTier::Open(o);
  if (!t.ok()) {
    state.SkipWithError(t.status().ToString().c_str());
    return;
  }
  auto buf = AlignedBuffer::Allocate(64 * block, false);
  if (!buf.ok()) {
    state.SkipWithError("no memory");
    return;
  }
  for (uint64_t i = 0; i < 64 * block; ++i) buf->data()[i] = static_cast<uint8_t>(i * 131);
  std::vector<NvmeWriteItem> items(64);
  // The host tier's checksums, as demotion and flush pass them (computed at put, not here).
  std::vector<uint64_t> sums;
  for (size_t k = 0; k < items.size(); ++k)
    sums.push_back(Checksum64(buf->data() + k * block, block));
  uint64_t n = 0;
  for (auto _ : state) {
    for (size_t k = 0; k < items.size(); ++k) {
      items[k].meta.ns = 1;
      items[k].meta.key = Hash128{++n, 9};
      items[k].meta.payload_bytes = static_cast<uint32_t>(block);
      items[k].meta.checksum = sums[k];
      items[k].payload = buf->data() + k * block;
    }
    if (!(*t)->WriteBatch(items).ok()) state.SkipWithError("write failed");
  }
  state.SetBytesProcessed(state.iterations() * 64 * block);
}
// Args: block bytes, segment MiB (16: kvtier-bench --quick; 64: the default).
BENCHMARK(BM_NvmeWriteBatch)
    ->Args({256 << 10, 16})
    ->Args({1 << 20, 16})
    ->Args({1 << 20, 64})
    ->UseRealTime();

}  // namespace
}  // namespace kvt
