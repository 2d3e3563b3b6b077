// Prefix lookups of long chains: Store::Lookup (keys given) and Store::MatchPrefix (tokens hashed,
// then looked up and verified), over a chain held in the host tier and one held on NVMe (the host
// tier misses, the NVMe index's in-memory map answers). Rates are keys per second, one thread.
#include <nlohmann/json.hpp>

#include "bench/bench.h"
#include "src/store.h"

namespace kvt::bench {
namespace {

constexpr uint64_t kBlock = 4096;  // metadata is what a lookup touches; small blocks fill fast

class LookupFixture final : public Fixture {
 public:
  std::unique_ptr<Store> host_store, nvme_store;
  uint64_t ns_host = 0, ns_nvme = 0;
  std::vector<int32_t> tokens;
  std::vector<Hash128> keys_host, keys_nvme;
};

Status FillChain(Store* s, uint64_t ns, const std::vector<int32_t>& tokens,
                 std::vector<Hash128>* keys, const uint8_t* data) {
  KVT_RETURN_IF_ERROR(s->HashTokens(ns, tokens, keys));
  for (size_t i = 0; i < keys->size(); ++i) {
    KVT_RETURN_IF_ERROR(s->Put(ns, (*keys)[i], i == 0 ? Hash128{} : (*keys)[i - 1], &tokens[i],
                               data, kBlock));
  }
  return Status::Ok();
}

}  // namespace

Status AddLookupTests(const Config& c, const std::string& dir, TestSet* set) {
  auto fx = std::make_unique<LookupFixture>();
  LookupFixture* f = fx.get();
  const uint64_t chain = c.quick ? 1024 : 4096;
  const uint64_t passes = c.quick ? 20 : 100;
  NamespaceDesc d;
  d.model = "kvtier-bench-lookup";
  d.kv_dtype = "fp16";
  d.layers = 1;
  d.kv_heads = 1;
  d.head_dim = 1024;
  d.block_tokens = 1;
  f->tokens.resize(chain);
  for (uint64_t i = 0; i < chain; ++i) f->tokens[i] = static_cast<int32_t>(i * 7919 % 151000);
  KVT_ASSIGN_OR_RETURN(AlignedBuffer data, AlignedBuffer::Allocate(kBlock, false));

  KVT_ASSIGN_OR_RETURN(f->host_store, OpenBenchStore(dir + "/lookup-host", 64ull << 20, 4ull << 20, 0,
                                                    c.segment_bytes, "write_back"));
  KVT_ASSIGN_OR_RETURN(f->ns_host, f->host_store->OpenNamespace(d));
  KVT_RETURN_IF_ERROR(FillChain(f->host_store.get(), f->ns_host, f->tokens, &f->keys_host, data.data()));
  // A host tier of one 1 MiB slab: all but the last 256 blocks of the chain are demoted to NVMe.
  KVT_ASSIGN_OR_RETURN(f->nvme_store, OpenBenchStore(dir + "/lookup-nvme", 1ull << 20, 1ull << 20,
                                                     256ull << 20, c.segment_bytes,
                                                     "write_back"));
  KVT_ASSIGN_OR_RETURN(f->ns_nvme, f->nvme_store->OpenNamespace(d));
  KVT_RETURN_IF_ERROR(FillChain(f->nvme_store.get(), f->ns_nvme, f->tokens, &f->keys_nvme, data.data()));

  auto add = [&](std::string name, std::string note, std::function<StatusOr<Sample>()> run) {
    Test t;
    t.path = std::move(name);
    t.kind = Kind::kEngine;
    t.block_bytes = 0;
    t.op_rate = true;
    t.note = std::move(note);
    t.run = std::move(run);
    set->tests.push_back(std::move(t));
  };
  auto lookup = [f, chain, passes](Store* s, uint64_t ns, const std::vector<Hash128>& keys)
      -> StatusOr<Sample> {
    const double t0 = NowSeconds();
    for (uint64_t p = 0; p < passes; ++p) {
      size_t prefix = 0;
      KVT_RETURN_IF_ERROR(s->Lookup(ns, keys, &prefix, nullptr));
      if (prefix != chain) {
        return Status::Internal("lookup found a prefix of " + std::to_string(prefix) + " of " +
                                std::to_string(chain) + " blocks");
      }
    }
    Sample smp;
    smp.seconds = NowSeconds() - t0;
    smp.ops = passes * chain;
    return smp;
  };
  auto match = [f, chain, passes](Store* s, uint64_t ns) -> StatusOr<Sample> {
    std::vector<Hash128> keys;
    const double t0 = NowSeconds();
    for (uint64_t p = 0; p < passes; ++p) {
      size_t prefix = 0;
      KVT_RETURN_IF_ERROR(s->MatchPrefix(ns, f->tokens, &keys, &prefix, nullptr));
      if (prefix != chain) return Status::Internal("match_prefix found a short prefix");
    }
    Sample smp;
    smp.seconds = NowSeconds() - t0;
    smp.ops = passes * chain;
    return smp;
  };
  const std::string len = std::to_string(chain);
  add("lookup_host_chain", "Store::Lookup of a " + len + "-block chain in the host tier, keys/s",
      [f, lookup] { return lookup(f->host_store.get(), f->ns_host, f->keys_host); });
  add("lookup_nvme_chain", "Store::Lookup of a " + len + "-block chain on NVMe, keys/s",
      [f, lookup] { return lookup(f->nvme_store.get(), f->ns_nvme, f->keys_nvme); });
  add("match_prefix_host_chain",
      "Store::MatchPrefix (hash tokens, look up, verify digests), " + len + "-block chain, keys/s",
      [f, match] { return match(f->host_store.get(), f->ns_host); });
  set->fixtures.push_back(std::move(fx));
  return Status::Ok();
}

}  // namespace kvt::bench
