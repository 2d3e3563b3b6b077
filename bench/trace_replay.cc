// The mixed run: a conversation trace (one JSON object per line with "hash_ids", the chain of
// block ids of each request's prompt) replayed through Store with real bytes. For each request:
// Lookup of its chain; Get of the cached prefix (host hits, NVMe promotions); Put of the rest
// (host copies, evictions demoted to NVMe). The store is reopened empty before each round.
#include <fstream>

#include <nlohmann/json.hpp>

#include "bench/bench.h"
#include "src/store.h"

namespace kvt::bench {
namespace {

constexpr uint64_t kTraceBlock = 256 << 10;

class TraceFixture final : public Fixture {
 public:
  std::vector<std::vector<uint64_t>> requests;
  std::string store_dir;
  std::unique_ptr<Store> store;
  uint64_t ns = 0;
  uint64_t host_bytes = 0, nvme_bytes = 0, segment_bytes = 0;
  AlignedBuffer dst;
};

Hash128 TraceKey(uint64_t id) { return Hash128{id + 1, 0x7472616365ull}; }

}  // namespace

Status AddTraceTests(const Config& c, const Source& src, const std::string& dir, TestSet* set) {
  if (c.trace_path.empty()) return Status::Ok();
  auto fx = std::make_unique<TraceFixture>();
  TraceFixture* f = fx.get();
  std::ifstream in(c.trace_path);
  if (!in) return Status::InvalidArgument("--trace: cannot open " + c.trace_path);
  std::string line;
  uint64_t lineno = 0;
  while (f->requests.size() < c.trace_requests && std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.contains("hash_ids") || !j["hash_ids"].is_array()) {
      return Status::InvalidArgument(c.trace_path + ":" + std::to_string(lineno) +
                                     ": not a JSON object with a hash_ids array");
    }
    std::vector<uint64_t> ids;
    for (const auto& v : j["hash_ids"]) {
      if (!v.is_number_unsigned()) {
        return Status::InvalidArgument(c.trace_path + ":" + std::to_string(lineno) +
                                       ": hash_ids holds a non-integer");
      }
      ids.push_back(v.get<uint64_t>());
    }
    f->requests.push_back(std::move(ids));
  }
  if (f->requests.empty()) return Status::InvalidArgument("--trace: no requests in " + c.trace_path);
  uint64_t max_blocks = 1;
  for (const auto& r : f->requests) max_blocks = std::max<uint64_t>(max_blocks, r.size());
  KVT_ASSIGN_OR_RETURN(f->dst, AlignedBuffer::Allocate(max_blocks * kTraceBlock, false));
  f->store_dir = dir + "/trace-store";
  // Small tiers on purpose, so the run moves blocks between host and NVMe.
  f->host_bytes = c.quick ? (32ull << 20) : (128ull << 20);
  f->nvme_bytes = c.quick ? (256ull << 20) : (1ull << 30);
  f->segment_bytes = c.segment_bytes;

  Test t;
  t.path = "trace_replay";
  t.kind = Kind::kEngine;
  t.block_bytes = kTraceBlock;
  t.note = std::to_string(f->requests.size()) + " requests of " + c.trace_path +
           " through Store (host " + HumanSize(f->host_bytes) + ", NVMe " +
           HumanSize(f->nvme_bytes) + "); GB/s of blocks got + put";
  t.prepare = [f] {
    f->store.reset();
    KVT_RETURN_IF_ERROR(RemoveTree(f->store_dir));
    KVT_ASSIGN_OR_RETURN(f->store, OpenBenchStore(f->store_dir, f->host_bytes, 16ull << 20,
                                                  f->nvme_bytes, f->segment_bytes, "write_back"));
    NamespaceDesc d;
    d.model = "kvtier-bench-trace";
    d.kv_dtype = "fp16";
    d.layers = static_cast<uint32_t>(kTraceBlock / 4096);
    d.kv_heads = 1;
    d.head_dim = 1024;
    d.block_tokens = 1;
    KVT_ASSIGN_OR_RETURN(f->ns, f->store->OpenNamespace(d));
    return Status::Ok();
  };
  t.run = [f, &src]() -> StatusOr<Sample> {
    uint64_t got = 0, put = 0;
    std::vector<Hash128> keys;
    const double t0 = NowSeconds();
    for (const auto& req : f->requests) {
      keys.clear();
      for (uint64_t id : req) keys.push_back(TraceKey(id));
      size_t prefix = 0;
      KVT_RETURN_IF_ERROR(f->store->Lookup(f->ns, keys, &prefix, nullptr));
      size_t i = 0;
      for (; i < prefix; ++i) {
        Status s = f->store->Get(f->ns, keys[i], f->dst.data() + i * kTraceBlock, kTraceBlock);
        if (s.IsNotFound()) break;  // evicted since the lookup: recompute from here
        KVT_RETURN_IF_ERROR(s);
        ++got;
      }
      for (; i < keys.size(); ++i) {
        KVT_RETURN_IF_ERROR(f->store->Put(f->ns, keys[i], i == 0 ? Hash128{} : keys[i - 1],
                                          nullptr, src.Block(req[i], kTraceBlock), kTraceBlock));
        ++put;
      }
    }
    Sample s;
    s.seconds = NowSeconds() - t0;
    s.ops = got + put;
    s.bytes = s.ops * kTraceBlock;
    s.detail = "last round: " + std::to_string(got) + " blocks got from the cache, " +
               std::to_string(put) + " put";
    return s;
  };
  set->tests.push_back(std::move(t));
  set->fixtures.push_back(std::move(fx));
  return Status::Ok();
}

}  // namespace kvt::bench
