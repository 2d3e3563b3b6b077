// kvtier-bench: every data path of the engine measured in the same run as this machine's own
// limits (memcpy, raw io_uring O_DIRECT) and as the simple designs users would pick instead (one
// file per block, RocksDB with blob files). Shared declarations of the bench's files:
//   main.cc          flags, the run plan, output
//   runner.cc        interleaved rounds (A B A B ...), medians and pairwise ratios
//   limits.cc        memcpy and raw io_uring loops (no engine code)
//   engine_paths.cc  HostTier, NvmeTier and Store paths, prefix lookups
//   baselines.cc     one file per block; RocksDB values in blob files
//   trace_replay.cc  a conversation trace replayed with real bytes through Store
//   report.cc        the table and the JSON
//   net_paths.cc     the remote tier (kvtierd over loopback) next to plain loopback TCP
//   wan_paths.cc     the remote tier across a rate-limited link (netns + tbf) next to raw TCP
//   util.cc          timing, threads, buffers, disk space, machine description
// GPU paths (pinned cudaMemcpyAsync, store prefetch into HBM) are measured by tests/gpu/run.sh
// (kvtier-hbm-bench) on a GPU machine; a gpu_paths.cc here would only need to return Tests.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/status.h"
#include "io/aligned_buffer.h"

namespace kvt {
class Store;
struct NamespaceDesc;
}  // namespace kvt

namespace kvt::bench {

struct Config {
  std::string dir;               // where every file of the run goes (a fresh subdirectory)
  bool quick = false;
  std::vector<uint64_t> sizes;   // block sizes
  int rounds = 0;                // interleaved rounds per test
  int threads = 0;               // blocks in flight: engine callers, raw queue depth, baselines
  uint64_t bytes_per_test = 0;   // bytes each disk test moves per round (per block size)
  uint64_t mem_bytes_per_test = 0;  // bytes each memory test moves per round
  uint64_t segment_bytes = 0;    // NVMe segment size of the bench's tiers and stores
  std::string json_path;         // "" none, "-" stdout
  std::string trace_path;        // conversation trace for the mixed run ("" skips it)
  uint64_t trace_requests = 0;   // requests of the trace replayed
  bool keep = false;             // keep the run directory (for inspection)
  std::vector<std::string> only; // run only paths containing one of these (and what they compare with)
};

// What one timed run of a test did.
struct Sample {
  double seconds = 0;
  uint64_t bytes = 0;  // payload bytes moved (0 for op-rate tests)
  uint64_t ops = 0;    // blocks or keys handled
  std::string detail;  // what the run saw (hit counts, ...), appended to the report's note
  double Gbps() const { return seconds > 0 ? bytes / seconds / 1e9 : 0; }
  double OpsPerSec() const { return seconds > 0 ? ops / seconds : 0; }
};

enum class Kind { kLimit, kEngine, kBaseline };
const char* KindName(Kind k);

// One measured path at one block size. `run` is timed; `prepare` (optional) runs untimed right
// before each run (dropping cached pages, recreating a directory).
struct Test {
  std::string path;
  Kind kind = Kind::kEngine;
  uint64_t block_bytes = 0;
  bool op_rate = false;                // report ops/s instead of GB/s
  std::string limit;                   // engine: the limit path compared with ("" none)
  std::vector<std::string> baselines;  // engine: baseline paths compared with
  std::string note;                    // what it measures, for the JSON
  std::function<Status()> prepare;
  std::function<StatusOr<Sample>()> run;
};

// Medians over rounds, and medians of pairwise (same-round) ratios.
struct Row {
  std::string path;
  Kind kind = Kind::kEngine;
  uint64_t block_bytes = 0;
  bool op_rate = false;
  std::vector<double> values;  // GB/s or ops/s, one per round
  double median = 0;
  std::string limit;
  double ratio_to_limit = NAN;
  std::map<std::string, double> ratio_to_baseline;
  std::string note;
};

// Runs every test `rounds` times, interleaved: round r runs all tests in order, odd rounds in
// reverse order, so drift of a shared disk hits every path alike. Fails on the first error,
// naming the test.
StatusOr<std::vector<Row>> RunInterleaved(std::vector<Test>& tests, int rounds);
// Keeps the tests whose path contains one of `only` (all when empty), with their limits and
// baselines.
void FilterTests(const std::vector<std::string>& only, std::vector<Test>* tests);

// --- the test sets (each builds its fixtures; files go under `dir`) ---
class Fixture {
 public:
  virtual ~Fixture() = default;
};
struct TestSet {
  std::vector<Test> tests;
  std::vector<std::unique_ptr<Fixture>> fixtures;  // destroyed after the tests ran
};

// Shared, deterministic, incompressible source bytes (4 KiB-aligned) for every writer.
struct Source {
  AlignedBuffer buf;
  const uint8_t* Block(uint64_t i, uint64_t block_bytes) const {
    return buf.data() + (i * block_bytes) % (buf.size() - buf.size() % block_bytes);
  }
};
StatusOr<Source> MakeSource(uint64_t bytes);

// Where reads land: one place per block a round reads, carved from one region of at least 2 MiB
// (so on huge pages: on these virtual machines an O_DIRECT request into 4 KiB pages costs several
// times one into a huge page), as an engine fills its KV cache or a pool of host pages. Every read
// row (raw loop, engine paths, baselines) reads into this kind of memory, never into a few
// buffers that stay in the CPU cache: the disk here is served from the host's page cache, so a
// read is a copy into guest memory, and a QD's worth of cache-resident buffers read 15-35% faster
// than a destination the size of the round (docs/bench_results.md, "Limits that move the engine's
// bytes"). That is a cache effect no engine filling real memory gets, not the device's limit.
struct BlockBuffers {
  AlignedBuffer region;
  uint64_t block = 0;
  uint64_t count = 0;
  uint8_t* operator[](uint64_t i) const { return region.data() + (i % count) * block; }
};
StatusOr<BlockBuffers> MakeBlockBuffers(uint64_t count, uint64_t block);

Status AddLimitTests(const Config& c, const Source& src, uint64_t block, const std::string& dir,
                     TestSet* set);
Status AddEngineTests(const Config& c, const Source& src, uint64_t block, const std::string& dir,
                      TestSet* set);
Status AddBaselineTests(const Config& c, const Source& src, uint64_t block,
                        const std::string& dir, TestSet* set);
// The remote tier over loopback TCP and plain loopback TCP, one call per round (net_paths.cc).
Status AddNetTests(const Config& c, uint64_t block, const std::string& dir, TestSet* set);
// A 256-block prefix fetched across a tbf-limited link between two network namespaces, next to
// raw TCP over the same link, at 1 and 5 Gbit/s (wan_paths.cc; skipped without namespaces).
Status AddWanTests(const Config& c, const std::string& dir, TestSet* set);
// Size-independent: prefix lookups of long chains (host- and NVMe-resident).
Status AddLookupTests(const Config& c, const std::string& dir, TestSet* set);
// The mixed run: a trace replayed through Store with real bytes.
Status AddTraceTests(const Config& c, const Source& src, const std::string& dir, TestSet* set);

// A namespace whose blocks are exactly `block` bytes (a multiple of 4 KiB): fp16, one token, one
// head of 1024 values, K and V: 4 KiB per layer.
NamespaceDesc BenchNamespace(uint64_t block, const char* model);

// A store for bench paths: mlock off. nvme_bytes 0: host tier only.
StatusOr<std::unique_ptr<Store>> OpenBenchStore(const std::string& dir, uint64_t host_bytes,
                                                uint64_t slab, uint64_t nvme_bytes,
                                                uint64_t segment_bytes,
                                                const std::string& write_policy);

// --- output ---
nlohmann::json MachineJson(const std::string& dir);
std::string FormatTable(const std::vector<Row>& rows);
nlohmann::json ResultsJson(const Config& c, const std::vector<Row>& rows,
                           const std::vector<std::string>& notes);

// --- utilities (util.cc) ---
double NowSeconds();
// Runs fn(thread, item) for items [0, n) on `threads` threads, items handed out in order. Returns
// the first failure.
Status ParallelFor(int threads, uint64_t n, const std::function<Status(int, uint64_t)>& fn);
// A permutation of [0, n), deterministic for a seed.
std::vector<uint64_t> Permutation(uint64_t n, uint64_t seed);
double Median(std::vector<double> v);
// Free bytes of the file system holding `dir`.
StatusOr<uint64_t> FreeBytes(const std::string& dir);
std::string HumanSize(uint64_t bytes);  // "64K", "1M": compact, for table and paths
Status RemoveTree(const std::string& path);
Status MakeDir(const std::string& path);

}  // namespace kvt::bench
