// The network path: the remote tier over loopback TCP next to plain TCP, measured in the same
// call (bench/loopback_bench.h: a kvtierd server and a client store in this process).
// One RunLoopbackBench call per round measures all four figures back to back, and a second one
// the same over TLS 1.3 (mutual certificates made with the openssl CLI; the TLS rows are left out
// without it), so the ratio of a remote path to TCP, and of TLS to plaintext, is always of the
// same round: the first of this round's tests to run makes the calls, the others read their
// figures. At the smallest size, two latency rows: a get's p99 unloaded and under a connection
// flood (bench/flood_bench.h), as 1/p99 so that their ratio is unloaded p99 / flooded p99.
#include <cstdio>
#include <optional>

#include "bench/bench.h"
#include "bench/flood_bench.h"
#include "bench/loopback_bench.h"

namespace kvt::bench {
namespace {

struct NetRound {
  LoopbackFigures plain, tls, zstd, fp8;
};

class NetFixture final : public Fixture {
 public:
  LoopbackBenchOptions opts;  // plaintext
  std::optional<LoopbackBenchOptions> tls_opts;
  LoopbackBenchOptions zstd_opts, fp8_opts;  // plaintext with on-wire compression
  std::vector<NetRound> rounds;  // rounds[n]: the figures of round n

  // The figures of the n-th run of a test: round n's, measured now if no test ran in it yet.
  StatusOr<NetRound> Round(size_t n) {
    if (n < rounds.size()) return rounds[n];
    NetRound r;
    KVT_ASSIGN_OR_RETURN(r.plain, RunLoopbackBench(opts));
    if (tls_opts) {
      KVT_ASSIGN_OR_RETURN(r.tls, RunLoopbackBench(*tls_opts));
    }
    KVT_ASSIGN_OR_RETURN(r.zstd, RunLoopbackBench(zstd_opts));
    KVT_ASSIGN_OR_RETURN(r.fp8, RunLoopbackBench(fp8_opts));
    rounds.push_back(r);
    return r;
  }
};

class FloodFixture final : public Fixture {
 public:
  FloodBenchOptions opts;
  std::vector<FloodFigures> rounds;
  StatusOr<FloodFigures> Round(size_t n) {
    if (n < rounds.size()) return rounds[n];
    KVT_ASSIGN_OR_RETURN(FloodFigures f, RunFloodBench(opts));
    rounds.push_back(f);
    return f;
  }
};

// What compression saved and cost in a get: wire bytes against payload bytes, and the CPU the
// node spent encoding and the client decoding (GB of payload per CPU second).
std::string CodecDetail(const LoopbackFigures& f) {
  char d[256];
  std::snprintf(d, sizeof d,
                "last round: %.1f%% of the payload on the wire (saved %.1f of %.1f MiB), node "
                "encode %.3f s (%.2f GB/s per core), client decode %.3f s (%.2f GB/s per core)",
                100.0 * f.get_wire_bytes / f.bytes, (f.bytes - f.get_wire_bytes) / 1048576.0,
                f.bytes / 1048576.0, f.get_encode_s,
                f.get_encode_s > 0 ? f.bytes / f.get_encode_s / 1e9 : 0, f.get_decode_s,
                f.get_decode_s > 0 ? f.bytes / f.get_decode_s / 1e9 : 0);
  return d;
}

std::string Us(double s) { return std::to_string(static_cast<long>(s * 1e6 + 0.5)) + " us"; }

Status AddFloodTests(uint64_t block, const std::string& dir, TestSet* set) {
  auto fx = std::make_unique<FloodFixture>();
  FloodFixture* f = fx.get();
  f->opts.dir = dir + "/flood";
  f->opts.block_bytes = block;
  for (const bool flooded : {false, true}) {
    Test t;
    t.path = flooded ? "net/get_p99_flood" : "net/get_p99_unloaded";
    t.kind = flooded ? Kind::kEngine : Kind::kLimit;
    t.block_bytes = block;
    t.op_rate = true;
    if (flooded) t.limit = "net/get_p99_unloaded";
    t.note = flooded
                 ? "1/p99 of single-block RemoteTier::Get (authenticated, pooled connection) "
                   "while ~200 sockets that never authenticate, a quarter announcing a 64 MiB PUT, "
                   "are kept open (reopened at up to 2000/s) against the node's default limits; "
                   "vs limit = unloaded p99 / flooded p99 (target >= 0.5)"
                 : "1/p99 of single-block RemoteTier::Get, authenticated, nothing else running";
    auto runs = std::make_shared<size_t>(0);
    t.run = [f, runs, flooded]() -> StatusOr<Sample> {
      KVT_ASSIGN_OR_RETURN(FloodFigures fig, f->Round((*runs)++));
      Sample s;
      s.seconds = flooded ? fig.p99_flood_s : fig.p99_unloaded_s;
      s.ops = 1;
      s.detail = flooded ? "last round: p99 " + Us(fig.p99_flood_s) + ", p50 " +
                               Us(fig.p50_flood_s) + "; " + std::to_string(fig.flood_connects) +
                               " flood connects, " + std::to_string(fig.evicted) + " evicted"
                         : "last round: p99 " + Us(fig.p99_unloaded_s) + ", p50 " +
                               Us(fig.p50_unloaded_s);
      return s;
    };
    set->tests.push_back(std::move(t));
  }
  set->fixtures.push_back(std::move(fx));
  return Status::Ok();
}

}  // namespace

Status AddNetTests(const Config& c, uint64_t block, const std::string& dir, TestSet* set) {
  if (block % (64u << 10) != 0) return Status::Ok();  // the remote tier's block granularity
  auto fx = std::make_unique<NetFixture>();
  NetFixture* f = fx.get();
  f->opts.dir = dir + "/net";
  f->opts.block_bytes = block;
  f->opts.total_bytes = std::max<uint64_t>(c.mem_bytes_per_test / block, 8) * block;
  f->zstd_opts = f->opts;
  f->zstd_opts.dir = dir + "/net-zstd";
  f->zstd_opts.compression = "zstd";
  f->zstd_opts.fetch = false;
  f->fp8_opts = f->zstd_opts;
  f->fp8_opts.dir = dir + "/net-fp8";
  f->fp8_opts.compression = "fp8";
  LoopbackBenchOptions tls = f->opts;
  tls.dir = dir + "/net-tls";
  if (MakeLoopbackCerts(dir + "/net-certs", &tls).ok()) f->tls_opts = tls;
  struct Path {
    const char* name;
    double LoopbackFigures::*seconds;
    const char* note;
    bool tls = false;
    const char* plain = nullptr;  // the plaintext row a TLS row is compared with
    LoopbackFigures NetRound::*figures = &NetRound::plain;
  };
  const Path paths[] = {
      {"net/tcp_loopback", &LoopbackFigures::tcp_s,
       "limit: one loopback TCP socket, 4 MiB writes, the reader discarding"},
      {"net/remote_put", &LoopbackFigures::put_s,
       "RemoteTier::Put of every block to a kvtierd node (gather writes; the node verifies and "
       "stores)"},
      {"net/remote_get", &LoopbackFigures::get_s,
       "RemoteTier::Get, pipelined and streamed, payloads read straight into place and "
       "checksum-verified"},
      {"net/remote_fetch", &LoopbackFigures::fetch_s,
       "a client Store's prefetch of remote blocks into its host-tier slots (the store path)"},
      {"net/remote_put_tls", &LoopbackFigures::put_s,
       "net/remote_put over TLS 1.3 (mutual certificates, AES-128-GCM, no frame MAC inside TLS)",
       true, "net/remote_put"},
      {"net/remote_get_tls", &LoopbackFigures::get_s,
       "net/remote_get over TLS 1.3 (mutual certificates, AES-128-GCM, no frame MAC inside TLS)",
       true, "net/remote_get"},
      {"net/remote_fetch_tls", &LoopbackFigures::fetch_s,
       "net/remote_fetch over TLS 1.3 (mutual certificates, AES-128-GCM, no frame MAC inside "
       "TLS)",
       true, "net/remote_fetch"},
      {"net/remote_get_zstd", &LoopbackFigures::get_s,
       "net/remote_get with remote_compression=zstd (node --compression zstd: 16-bit byte shuffle "
       "+ zstd -1 per block, node encodes, client decodes) on KV-like blocks (normal(0,1) values "
       "as fp16); goodput counts decoded payload bytes",
       false, "net/remote_get", &NetRound::zstd},
      {"net/remote_get_fp8", &LoopbackFigures::get_s,
       "net/remote_get with remote_compression=fp8 (lossy: fp16 quantized to fp8-e4m3, a scale "
       "per layer, K/V and head; namespace flagged KVT_NS_LOSSY_OK) on the same KV-like blocks; "
       "goodput counts decoded payload bytes",
       false, "net/remote_get", &NetRound::fp8},
  };
  for (const Path& p : paths) {
    if (p.tls && !f->tls_opts) continue;
    Test t;
    t.path = p.name;
    const bool limit = p.seconds == &LoopbackFigures::tcp_s;
    t.kind = limit ? Kind::kLimit : Kind::kEngine;
    t.block_bytes = block;
    if (!limit) t.limit = "net/tcp_loopback";
    if (p.plain != nullptr) t.baselines = {p.plain};  // "vs baselines": TLS / plaintext
    t.note = p.note;
    auto runs = std::make_shared<size_t>(0);
    t.run = [f, runs, seconds = p.seconds, tls = p.tls, which = p.figures]() -> StatusOr<Sample> {
      KVT_ASSIGN_OR_RETURN(NetRound r, f->Round((*runs)++));
      const LoopbackFigures& fig = tls ? r.tls : r.*which;
      Sample s;
      s.seconds = fig.*seconds;
      s.bytes = fig.bytes;
      s.ops = fig.blocks;
      if (which != &NetRound::plain) s.detail = CodecDetail(fig);
      return s;
    };
    set->tests.push_back(std::move(t));
  }
  set->fixtures.push_back(std::move(fx));
  // The latency rows once per run, at the smallest size net rows run at.
  uint64_t smallest = 0;
  for (uint64_t b : c.sizes) {
    if (b % (64u << 10) == 0 && (smallest == 0 || b < smallest)) smallest = b;
  }
  if (c.quick ? block == c.sizes.back() : block == smallest) {
    KVT_RETURN_IF_ERROR(AddFloodTests(block, dir, set));
  }
  return Status::Ok();
}

}  // namespace kvt::bench
