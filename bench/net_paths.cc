// The network path: the remote tier over loopback TCP next to plain TCP, measured in the same
// call (bench/loopback_bench.h: a kvtierd server and a client store in this process).
// One RunLoopbackBench call per round measures all four figures back to back, so the ratio of a
// remote path to TCP is always of the same round: the first of this round's tests to run makes
// the call, the others read its figures.
#include "bench/bench.h"
#include "bench/loopback_bench.h"

namespace kvt::bench {
namespace {

class NetFixture final : public Fixture {
 public:
  LoopbackBenchOptions opts;
  std::vector<LoopbackFigures> rounds;  // rounds[n]: the figures of round n

  // The figures of the n-th run of a test: round n's, measured now if no test ran in it yet.
  StatusOr<LoopbackFigures> Round(size_t n) {
    if (n < rounds.size()) return rounds[n];
    KVT_ASSIGN_OR_RETURN(LoopbackFigures f, RunLoopbackBench(opts));
    rounds.push_back(f);
    return f;
  }
};

}  // namespace

Status AddNetTests(const Config& c, uint64_t block, const std::string& dir, TestSet* set) {
  if (block % (64u << 10) != 0) return Status::Ok();  // the remote tier's block granularity
  auto fx = std::make_unique<NetFixture>();
  NetFixture* f = fx.get();
  f->opts.dir = dir + "/net";
  f->opts.block_bytes = block;
  f->opts.total_bytes = std::max<uint64_t>(c.mem_bytes_per_test / block, 8) * block;
  struct Path {
    const char* name;
    double LoopbackFigures::*seconds;
    const char* note;
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
  };
  for (const Path& p : paths) {
    Test t;
    t.path = p.name;
    const bool limit = p.seconds == &LoopbackFigures::tcp_s;
    t.kind = limit ? Kind::kLimit : Kind::kEngine;
    t.block_bytes = block;
    if (!limit) t.limit = "net/tcp_loopback";
    t.note = p.note;
    auto runs = std::make_shared<size_t>(0);
    t.run = [f, runs, seconds = p.seconds]() -> StatusOr<Sample> {
      KVT_ASSIGN_OR_RETURN(LoopbackFigures fig, f->Round((*runs)++));
      Sample s;
      s.seconds = fig.*seconds;
      s.bytes = fig.bytes;
      s.ops = fig.blocks;
      return s;
    };
    set->tests.push_back(std::move(t));
  }
  set->fixtures.push_back(std::move(fx));
  return Status::Ok();
}

}  // namespace kvt::bench
