// kvtier-bench: see bench.h for what it measures; the notes it prints say how to read the table.
//
//   kvtier-bench [--quick] [--dir DIR] [--sizes 64K,256K,...] [--rounds N] [--threads N]
//                [--bytes SIZE] [--trace FILE|none] [--trace-requests N] [--json FILE|-]
//                [--only LIST] [--keep]
//
// Exit status: 0 after a complete run, 2 for a bad flag, 1 when a measurement failed (the message
// names the path and block size) or the directory lacks space.
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/units.h"
#include "bench/bench.h"

#ifndef KVT_SOURCE_DIR
#define KVT_SOURCE_DIR "."
#endif

namespace kvt::bench {
namespace {

// Whether --only can select a row of `family`: the rows of "net" and "wan" are named "net/..." and
// "wan/...", every other row (disk, memory, lookups, trace) has no '/' (family ""). A word without
// '/' may match rows of any family; a word with one matches only rows whose family ends with the
// text before its '/' ("wan/", "an/fetch"). A family nobody can select is not set up at all: its
// fixtures (files, nodes, links) cost more time than its rounds.
bool FamilyWanted(const Config& c, std::string_view family) {
  if (c.only.empty()) return true;
  for (const std::string& w : c.only) {
    const size_t slash = w.find('/');
    if (slash == std::string::npos) return true;
    const std::string_view head = std::string_view(w).substr(0, slash);
    if (!family.empty() && family.ends_with(head)) return true;
  }
  return false;
}

constexpr const char* kUsage = R"(usage: kvtier-bench [flags]
  --quick             small run for CI: 3 sizes, 32 MiB per test, 3 rounds (< 1 minute)
  --dir DIR           directory on the device to test (default: the current directory); the run
                      uses a fresh subdirectory kvtier-bench-XXXXXX there and removes it at the end
  --sizes LIST        block sizes, comma-separated, multiples of 4 KiB up to 16 MiB
                      (default 64K,128K,256K,512K,1M,2M,4M; quick 64K,256K,1M)
  --rounds N          interleaved rounds per test (default 5; quick 3)
  --threads N         blocks in flight: caller threads of engine and baselines, raw queue depth
                      (default 4)
  --bytes SIZE        bytes each disk test moves per round (default 64MiB; quick 32MiB);
                      memory tests copy max(SIZE, 256MiB) (quick: SIZE)
  --trace FILE|none   conversation trace for the mixed run
                      (default data/traces/conversation_trace.jsonl of the source tree)
  --trace-requests N  requests of the trace replayed (default 300; quick 50)
  --json FILE|-       also write the results as JSON to FILE, or to stdout with '-' (the table
                      then goes to stderr)
  --only LIST         run only the paths containing one of these words (comma-separated), with
                      the limits and baselines they are compared with; when every word has a '/'
                      (net/..., wan/...), only those families are set up (no disk files)
  --keep              keep the run directory
)";

struct Flags {
  Config c;
  bool help = false;
};

StatusOr<Flags> ParseFlags(int argc, char** argv) {
  Flags f;
  Config& c = f.c;
  bool quick = false;
  std::string sizes, rounds, threads, bytes, trace_requests;
  bool have_trace = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string* out) -> Status {
      if (i + 1 >= argc) return Status::InvalidArgument(a + " needs a value");
      *out = argv[++i];
      return Status::Ok();
    };
    if (a == "--quick") {
      quick = true;
    } else if (a == "--keep") {
      c.keep = true;
    } else if (a == "--help" || a == "-h") {
      f.help = true;
    } else if (a == "--dir") {
      KVT_RETURN_IF_ERROR(value(&c.dir));
    } else if (a == "--sizes") {
      KVT_RETURN_IF_ERROR(value(&sizes));
    } else if (a == "--rounds") {
      KVT_RETURN_IF_ERROR(value(&rounds));
    } else if (a == "--threads") {
      KVT_RETURN_IF_ERROR(value(&threads));
    } else if (a == "--bytes") {
      KVT_RETURN_IF_ERROR(value(&bytes));
    } else if (a == "--trace") {
      KVT_RETURN_IF_ERROR(value(&c.trace_path));
      have_trace = true;
    } else if (a == "--trace-requests") {
      KVT_RETURN_IF_ERROR(value(&trace_requests));
    } else if (a == "--only") {
      std::string list;
      KVT_RETURN_IF_ERROR(value(&list));
      for (size_t p = 0; p <= list.size();) {
        size_t comma = list.find(',', p);
        if (comma == std::string::npos) comma = list.size();
        if (comma > p) c.only.push_back(list.substr(p, comma - p));
        p = comma + 1;
      }
      if (c.only.empty()) return Status::InvalidArgument("--only needs at least one path");
    } else if (a == "--json") {
      KVT_RETURN_IF_ERROR(value(&c.json_path));
    } else {
      return Status::InvalidArgument("unknown flag '" + a + "'");
    }
  }
  c.quick = quick;
  if (sizes.empty()) sizes = quick ? "64K,256K,1M" : "64K,128K,256K,512K,1M,2M,4M";
  size_t pos = 0;
  while (pos <= sizes.size()) {
    size_t comma = sizes.find(',', pos);
    std::string one = sizes.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    auto b = ParseBytes(one);
    if (!b.ok()) return Status::InvalidArgument("--sizes: '" + one + "': " + b.status().message());
    if (*b == 0 || *b % 4096 != 0 || *b > (16ull << 20)) {
      return Status::InvalidArgument("--sizes: '" + one +
                                     "' must be a multiple of 4 KiB between 4K and 16M");
    }
    c.sizes.push_back(*b);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  auto count = [](const std::string& flag, const std::string& text, uint64_t dflt, uint64_t lo,
                  uint64_t hi) -> StatusOr<uint64_t> {
    if (text.empty()) return dflt;
    auto v = ParseUint(text);
    if (!v.ok() || *v < lo || *v > hi) {
      return Status::InvalidArgument(flag + ": '" + text + "' is not an integer in " +
                                     std::to_string(lo) + ".." + std::to_string(hi));
    }
    return *v;
  };
  KVT_ASSIGN_OR_RETURN(uint64_t r, count("--rounds", rounds, quick ? 3 : 5, 1, 1000));
  KVT_ASSIGN_OR_RETURN(uint64_t t, count("--threads", threads, 4, 1, 256));
  KVT_ASSIGN_OR_RETURN(c.trace_requests,
                       count("--trace-requests", trace_requests, quick ? 50 : 300, 1, 1u << 30));
  c.rounds = static_cast<int>(r);
  c.threads = static_cast<int>(t);
  // Modest on purpose: the full run must finish in a few minutes on a shared 2-core machine whose
  // disk may be at 0.5 GB/s; ratios come from interleaving, not from long runs.
  c.bytes_per_test = quick ? (32ull << 20) : (64ull << 20);
  if (!bytes.empty()) {
    auto b = ParseBytes(bytes);
    if (!b.ok()) return Status::InvalidArgument("--bytes: '" + bytes + "': " + b.status().message());
    if (*b < (1ull << 20)) return Status::InvalidArgument("--bytes: '" + bytes + "' is under 1 MiB");
    c.bytes_per_test = *b;
  }
  // Memory tests stream well past the 32 MiB L3 (except in quick runs); they cost little.
  c.mem_bytes_per_test = quick ? c.bytes_per_test : std::max<uint64_t>(c.bytes_per_test, 256ull << 20);
  // Quick runs use small segments: the NVMe fixtures fill their whole budget once (steady state),
  // and a budget is at least a few segments.
  c.segment_bytes = quick ? (16ull << 20) : (64ull << 20);
  for (uint64_t s : c.sizes) {
    if (s > c.bytes_per_test) {
      return Status::InvalidArgument("--sizes: " + HumanSize(s) + " exceeds --bytes " +
                                     HumanSize(c.bytes_per_test));
    }
  }
  if (!have_trace) {
    c.trace_path = std::string(KVT_SOURCE_DIR) + "/data/traces/conversation_trace.jsonl";
    if (!std::filesystem::exists(c.trace_path)) c.trace_path.clear();
  } else if (c.trace_path == "none") {
    c.trace_path.clear();
  } else if (!std::filesystem::exists(c.trace_path)) {
    return Status::InvalidArgument("--trace: no such file '" + c.trace_path + "'");
  }
  if (c.dir.empty()) c.dir = ".";
  return f;
}

// The run directory: created fresh, removed (with everything in it) when the run ends.
class RunDir {
 public:
  ~RunDir() {
    if (!path_.empty() && !keep_) (void)RemoveTree(path_);
  }
  Status Create(const std::string& parent, bool keep) {
    keep_ = keep;
    if (!std::filesystem::is_directory(parent)) {
      return Status::InvalidArgument("--dir: '" + parent + "' is not a directory");
    }
    std::string tmpl = parent + "/kvtier-bench-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return Status::FromErrno(errno, "mkdtemp " + tmpl);
    path_ = tmpl;
    return Status::Ok();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  bool keep_ = false;
};

std::vector<std::string> Notes(const Config& c) {
  return {
      "Each path ran " + std::to_string(c.rounds) +
          " rounds interleaved with its limit and baselines (round r runs every test of a block "
          "size in order, odd rounds reversed); 'median' is the median over rounds, ratios are "
          "medians of the per-round ratios.",
      "Blocks in flight: " + std::to_string(c.threads) +
          " (--threads). Engine NVMe paths and baselines run that many caller threads with one "
          "block each; the raw io_uring loop keeps that many blocks in flight from one thread.",
      "Disk tests move " + HumanSize(c.bytes_per_test) +
          " per round; durable tests a quarter of that. Memory tests copy " +
          HumanSize(c.mem_bytes_per_test) + " per round on one thread.",
      "Reads are device reads: the engine and the raw loop use O_DIRECT, RocksDB direct reads. "
      "One-file-per-block reads are buffered, as LMCache/SGLang/vLLM file tiers do; every file's "
      "pages are dropped with posix_fadvise(DONTNEED) before each read round (dropping all caches "
      "needs root).",
      "Non-durable baseline writes are buffered and timed until close()/Put returns (what their "
      "callers wait for); their dirty pages are synced untimed afterwards. Engine writes are "
      "O_DIRECT, on the device when Write returns. Compare durability-equal paths with the "
      "*_durable rows.",
      "Before each run of a disk or memory test the file system is synced (untimed): on a disk "
      "whose cache the host flushes, a durable path would otherwise pay for the writeback of "
      "whatever the test before it left dirty, and the figure would depend on the test order.",
      "Limits: memcpy (one thread), raw io_uring O_DIRECT loop on one preallocated file in the "
      "same directory; one loopback TCP socket for the net/ rows (the remote tier talks to a "
      "kvtierd node in the same process over 127.0.0.1). GPU paths are measured by "
      "tests/gpu/run.sh on a GPU machine.",
  };
}

int Main(int argc, char** argv) {
  // The engine warns about choices made here on purpose (host memory not locked); keep the
  // report clean unless the caller asked for the engine's log.
  ::setenv("KVT_LOG_LEVEL", "error", /*overwrite=*/0);
  auto flags = ParseFlags(argc, argv);
  if (!flags.ok()) {
    std::fprintf(stderr, "kvtier-bench: %s\n%s", flags.status().message().c_str(), kUsage);
    return 2;
  }
  if (flags->help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  Config c = flags->c;
  RunDir run;
  if (Status s = run.Create(c.dir, c.keep); !s.ok()) {
    std::fprintf(stderr, "kvtier-bench: %s\n", s.ToString().c_str());
    return s.code() == Code::kInvalidArgument ? 2 : 1;
  }
  // Files of one block size exist together (they are removed before the next size): raw file,
  // two NVMe tiers, two stores, two file sets, two RocksDBs with their WALs, plus the lookup and
  // trace stores.
  const uint64_t need = 12 * c.bytes_per_test + 8 * c.segment_bytes + (1ull << 30);
  auto free_bytes = FreeBytes(run.path());
  if (!free_bytes.ok() || *free_bytes < need) {
    std::fprintf(stderr,
                 "kvtier-bench: %s has %s free; this run needs about %s (lower --bytes, or "
                 "point --dir at a larger file system)\n",
                 c.dir.c_str(), free_bytes.ok() ? FormatBytes(*free_bytes).c_str() : "unknown",
                 FormatBytes(need).c_str());
    return 1;
  }
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "kvtier-bench: %s\n", s.ToString().c_str());
    return 1;
  };
  const double start = NowSeconds();
  const bool disk = FamilyWanted(c, ""), net = FamilyWanted(c, "net"), wan = FamilyWanted(c, "wan");
  Source src;  // the writers' bytes: only the disk, memory and trace rows write
  if (disk) {
    auto made = MakeSource(std::max(c.bytes_per_test, c.mem_bytes_per_test));
    if (!made.ok()) return fail(made.status());
    src = std::move(made).value();
  }
  std::vector<Row> rows;
  for (uint64_t block : c.sizes) {
    // Quick runs measure the network at their largest size only (each round starts a node).
    const bool net_here = net && (!c.quick || block == c.sizes.back());
    if (!disk && !net_here) continue;
    const std::string dir = run.path() + "/" + HumanSize(block);
    const double t0 = NowSeconds();
    std::fprintf(stderr, "kvtier-bench: %s blocks: setting up%s%s...", HumanSize(block).c_str(),
                 disk ? " disk and memory" : "", net_here ? (disk ? ", net" : " net") : "");
    std::fflush(stderr);
    {
      TestSet set;
      Status s = MakeDir(dir);
      if (s.ok() && disk) s = AddLimitTests(c, src, block, dir, &set);
      if (s.ok() && disk) s = AddEngineTests(c, src, block, dir, &set);
      if (s.ok() && disk) s = AddBaselineTests(c, src, block, dir, &set);
      if (s.ok() && net_here) s = AddNetTests(c, block, dir, &set);
      if (!s.ok()) return fail(s.WithContext("setting up " + HumanSize(block) + " blocks"));
      FilterTests(c.only, &set.tests);
      std::fprintf(stderr, " %zu tests x %d rounds...", set.tests.size(), c.rounds);
      std::fflush(stderr);
      auto r = RunInterleaved(set.tests, c.rounds);
      if (!r.ok()) return fail(r.status());
      rows.insert(rows.end(), r->begin(), r->end());
    }
    if (Status s = RemoveTree(dir); !s.ok()) return fail(s);
    std::fprintf(stderr, " %.1f s\n", NowSeconds() - t0);
  }
  if (disk || wan) {
    const double t0 = NowSeconds();
    std::fprintf(stderr, "kvtier-bench: setting up%s%s...", disk ? " lookups and trace replay" : "",
                 wan ? (disk ? ", wan" : " wan") : "");
    std::fflush(stderr);
    TestSet set;
    const std::string dir = run.path() + "/mixed";
    Status s = MakeDir(dir);
    if (s.ok() && disk) s = AddLookupTests(c, dir, &set);
    if (s.ok() && disk) s = AddTraceTests(c, src, dir, &set);
    if (s.ok() && wan) s = AddWanTests(c, dir, &set);
    if (!s.ok()) return fail(s.WithContext("setting up lookups and trace replay"));
    FilterTests(c.only, &set.tests);
    auto r = RunInterleaved(set.tests, c.rounds);
    if (!r.ok()) return fail(r.status());
    rows.insert(rows.end(), r->begin(), r->end());
    std::fprintf(stderr, " %.1f s\n", NowSeconds() - t0);
  }
  const std::vector<std::string> notes = Notes(c);
  FILE* table_out = c.json_path == "-" ? stderr : stdout;
  std::fputs(FormatTable(rows).c_str(), table_out);
  std::fputs("\nNotes:\n", table_out);
  for (const auto& n : notes) std::fprintf(table_out, "- %s\n", n.c_str());
  std::fprintf(table_out, "Total time: %.1f s\n", NowSeconds() - start);
  if (!c.json_path.empty()) {
    const std::string text = ResultsJson(c, rows, notes).dump(2) + "\n";
    if (c.json_path == "-") {
      std::fputs(text.c_str(), stdout);
    } else {
      std::ofstream out(c.json_path, std::ios::trunc);
      out << text;
      out.flush();
      if (!out) return fail(Status::IoError("write --json file " + c.json_path));
    }
  }
  return 0;
}

}  // namespace
}  // namespace kvt::bench

int main(int argc, char** argv) { return kvt::bench::Main(argc, argv); }
