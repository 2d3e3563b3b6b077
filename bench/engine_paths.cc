// The engine's data paths, each through the real classes with the options a deployment uses:
//   host_put / host_get       HostTier (slab pool, LRU index, XXH3 checksum on put)
//   (every NVMe write row passes the checksum the host tier computed at put, as the engine does;
//   every read row puts the n-th block of a round at its own place, dst[n]: see BlockBuffers)
//   nvme_write                NvmeTier::Write from `threads` callers (what demotion and
//                             write-through call), not durable until Flush
//   nvme_write_batch          NvmeTier::WriteBatch of 64 blocks from one thread
//   nvme_flush_batch          NvmeTier::WriteBatch of 16 blocks + Flush, `threads` callers
//   nvme_write_durable        NvmeTier::Write + Flush per block (fdatasync, no index sync)
//   nvme_read                 NvmeTier::Read of random blocks from `threads` callers, verified
//   nvme_read_batch           NvmeTier::ReadBatch of a 64-block prefix, one thread, verified
//   store_get_promote         Store::Get of blocks on NVMe only: read, verify, copy to the caller,
//                             promote into the host tier (what a cache hit on NVMe costs)
//   store_get_batch           Store::GetBatch (kvt_get_batch) of a 64-block prefix in one call, into
//                             registered memory: the NVMe part in one ReadBatch, then promotion
//   store_put_write_through   Store::Put with write_policy = write_through: host copy + NVMe write
//   store_put_write_back      Store::Put with write_policy = write_back into a full host tier: each
//                             put evicts a block, which the demotion queue writes in the
//                             background (puts wait for room in the bounded queue, so in the
//                             steady state they run at the demotion writer's pace)
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "base/hash.h"
#include "bench/bench.h"
#include "src/store.h"
#include "tiers/host/host_tier.h"
#include "tiers/nvme/nvme_tier.h"

namespace kvt::bench {
namespace {

// An NVMe budget that holds `bytes` of blocks with headers, plus the two spare segments the log
// needs to rotate.
uint64_t NvmeBudget(uint64_t bytes, uint64_t block, uint64_t seg) {
  const uint64_t per_seg = (seg - 4096) / (block + 4096);
  const uint64_t blocks = (bytes + block - 1) / block;
  return ((blocks + per_seg - 1) / per_seg + 2) * seg;
}

BlockMeta Meta(uint64_t i, uint64_t tag, uint64_t block) {
  BlockMeta m;
  m.ns = 1;
  m.key = Hash128{i + 1, tag};
  m.payload_bytes = static_cast<uint32_t>(block);
  return m;
}

class EngineFixture final : public Fixture {
 public:
  ~EngineFixture() override {
    // dst is freed before store_r (declared later): unregister it first.
    if (store_r && dst.region.data() != nullptr) (void)store_r->UnregisterMemory(dst.region.data());
  }
  std::unique_ptr<HostTier> host_put, host_get;
  AlignedBuffer host_dst;
  std::unique_ptr<NvmeTier> nvme_w, nvme_r;
  BlockBuffers dst;  // where reads land: the n-th block a round reads at dst[n] (registered)
  std::unique_ptr<Store> store_r, store_wt, store_wb;
  uint64_t ns_r = 0, ns_wt = 0, ns_wb = 0;
  uint64_t demotions_seen = 0;
  std::vector<uint64_t> order;  // random read order
  uint64_t round = 0;           // fresh keys per write round
  uint64_t promotions_seen = 0;
  uint64_t prefix = 0;                  // blocks per batched prefix read
  std::vector<uint64_t> prefix_starts;  // which prefix each batch reads, in units of `prefix`
  uint64_t direct_seen = 0;
  std::vector<uint64_t> sums;  // XXH3-64 of each source block, as the host tier has it
  // A write's meta as demotion, flush and write-through give it: the checksum the host tier
  // computed at put (fused with its copy; host_put measures that), which the NVMe tier stores.
  BlockMeta WriteMeta(uint64_t i, uint64_t tag, uint64_t block) const {
    BlockMeta m = Meta(i, tag, block);
    m.checksum = sums[i % sums.size()];
    return m;
  }
};

constexpr uint64_t kPrefix = 64;      // blocks of a prefix fetched in one batch
constexpr uint64_t kWriteBatch = 64;  // blocks of a batched write or flush

Sample Done(double t0, uint64_t n, uint64_t block) {
  Sample s;
  s.seconds = NowSeconds() - t0;
  s.bytes = n * block;
  s.ops = n;
  return s;
}

// How far a counter of kvt_stats_json (section.name) moved since the last call with `seen`.
uint64_t CounterDelta(const Store& s, const char* section, const char* name, uint64_t* seen) {
  const uint64_t now = nlohmann::json::parse(s.StatsJson())[section][name].get<uint64_t>();
  const uint64_t moved = now - *seen;
  *seen = now;
  return moved;
}

}  // namespace

NamespaceDesc BenchNamespace(uint64_t block, const char* model) {
  NamespaceDesc d;
  d.model = model;
  d.kv_dtype = "fp16";
  d.layers = static_cast<uint32_t>(block / 4096);
  d.kv_heads = 1;
  d.head_dim = 1024;
  d.block_tokens = 1;
  return d;
}

StatusOr<std::unique_ptr<Store>> OpenBenchStore(const std::string& dir, uint64_t host_bytes,
                                                uint64_t slab, uint64_t nvme_bytes,
                                                uint64_t segment_bytes,
                                                const std::string& write_policy) {
  Options o;
  o.dir = dir;
  o.host_bytes = host_bytes;
  o.host_slab_bytes = slab;
  o.host_mlock = false;  // same bandwidth; keeps the run free of memlock warnings
  o.nvme_bytes = nvme_bytes;
  o.nvme_segment_bytes = segment_bytes;
  o.write_policy = write_policy;
  return Store::Open(o);
}

Status AddEngineTests(const Config& c, const Source& src, uint64_t block, const std::string& dir,
                      TestSet* set) {
  auto fx = std::make_unique<EngineFixture>();
  EngineFixture* f = fx.get();
  const uint64_t nblocks = std::max<uint64_t>(c.bytes_per_test / block, 1);
  const uint64_t durable_blocks = std::max<uint64_t>(nblocks / 4, 1);
  const uint64_t mem_blocks = std::max<uint64_t>(c.mem_bytes_per_test / block, 1);
  const int threads = c.threads;
  const uint64_t slab = std::max<uint64_t>(16ull << 20, block);
  auto round_up = [](uint64_t v, uint64_t a) { return (v + a - 1) / a * a; };

  // --- host tier ---
  HostTierOptions ho;
  ho.try_lock = false;
  ho.slab_bytes = slab;
  // Put: half the blocks fit, so puts run in the steady state where each one evicts.
  ho.budget_bytes = std::max(slab, round_up(mem_blocks * block / 2, slab));
  KVT_ASSIGN_OR_RETURN(f->host_put, HostTier::Create(ho));
  ho.budget_bytes = round_up(mem_blocks * block, slab) + slab;
  KVT_ASSIGN_OR_RETURN(f->host_get, HostTier::Create(ho));
  for (uint64_t i = 0; i < mem_blocks; ++i) {
    KVT_RETURN_IF_ERROR(f->host_get->Put(Meta(i, 0, block), src.Block(i, block), false));
  }
  KVT_ASSIGN_OR_RETURN(f->host_dst, AlignedBuffer::Allocate(mem_blocks * block, false));
  // Fault every page in now, so no round pays first-touch page faults the others do not.
  std::memset(f->host_dst.data(), 0, f->host_dst.size());
  for (uint64_t i = 0; i < mem_blocks; ++i) {
    KVT_RETURN_IF_ERROR(f->host_put->Put(Meta(i, 0, block), src.Block(i, block), false));
  }

  // --- NVMe tier: one for writes (rounds cycle through its log), one filled for reads ---
  for (uint64_t i = 0; i < src.buf.size() / block; ++i) {
    f->sums.push_back(Checksum64(src.Block(i, block), block));
  }
  NvmeOptions no;
  const uint64_t seg = c.segment_bytes;
  no.segment_bytes = seg;
  no.budget_bytes = NvmeBudget(nblocks * block, block, seg);
  no.dir = dir + "/nvme-w";
  KVT_ASSIGN_OR_RETURN(f->nvme_w, NvmeTier::Open(no));
  // Steady state: a cache runs for days, so its log has wrapped and every segment is a file the
  // tier wrote before. Fill the budget once (untimed) so rounds reclaim and overwrite segments
  // instead of converting freshly fallocated (unwritten) extents, which costs ext4 far more.
  {
    const uint64_t fill = no.budget_bytes / (block + 4096);
    KVT_RETURN_IF_ERROR(ParallelFor(threads, fill, [&](int, uint64_t i) {
      return f->nvme_w->Write(Meta(i, ~0ull, block), src.Block(i, block));
    }));
  }
  no.dir = dir + "/nvme-r";
  KVT_ASSIGN_OR_RETURN(f->nvme_r, NvmeTier::Open(no));
  KVT_RETURN_IF_ERROR(ParallelFor(threads, nblocks, [&](int, uint64_t i) {
    return f->nvme_r->Write(Meta(i, 0, block), src.Block(i, block));
  }));
  KVT_RETURN_IF_ERROR(f->nvme_r->Flush());
  KVT_ASSIGN_OR_RETURN(f->dst, MakeBlockBuffers(nblocks, block));
  // Registered like the host slots a mover reads into: READ_FIXED, no per-I/O page pinning.
  KVT_RETURN_IF_ERROR(
      f->nvme_r->RegisterRegion(f->dst.region.data(), f->dst.region.size()).status());
  f->order = Permutation(nblocks, block + 1);
  // Batched prefix reads: prefixes start at random multiples of kPrefix.
  f->prefix = std::min<uint64_t>(kPrefix, nblocks);
  f->prefix_starts = Permutation(nblocks / f->prefix, block + 2);

  // --- Store: every block on NVMe, a host tier an eighth of that (gets mostly promote) ---
  const uint64_t store_slab = std::max<uint64_t>(1ull << 20, block);
  // At least a slot per caller thread beyond what is pinned: with write-through every caller
  // pins its own block during the NVMe write, and puts still copying are in no index, so a host
  // tier smaller than that answers Busy.
  const uint64_t store_host =
      std::max(round_up(nblocks * block / 8, store_slab),
               round_up((2 * static_cast<uint64_t>(threads) + 2) * block, store_slab));
  KVT_ASSIGN_OR_RETURN(f->store_r, OpenBenchStore(dir + "/store-r", store_host, store_slab,
                                                  NvmeBudget(nblocks * block, block, seg), seg,
                                                  "write_back"));
  KVT_ASSIGN_OR_RETURN(f->ns_r, f->store_r->OpenNamespace(BenchNamespace(block, "kvtier-bench")));
  for (uint64_t i = 0; i < nblocks; ++i) {
    KVT_RETURN_IF_ERROR(f->store_r->Put(f->ns_r, Hash128{i + 1, 7}, Hash128{}, nullptr,
                                        src.Block(i, block), block));
  }
  KVT_RETURN_IF_ERROR(f->store_r->Flush());  // the rest goes down too: every block is on NVMe
  KVT_RETURN_IF_ERROR(f->store_r->RegisterMemory(f->dst.region.data(), f->dst.region.size()));
  // The put rows' stores start in the steady state: the NVMe budget filled once (untimed), so
  // their log has wrapped and every timed put lands in a segment written before.
  auto open_filled = [&](const char* name, uint64_t host_bytes, const char* policy,
                         std::unique_ptr<Store>* out, uint64_t* ns) -> Status {
    const uint64_t nvme_bytes = NvmeBudget(nblocks * block, block, seg);
    KVT_ASSIGN_OR_RETURN(*out, OpenBenchStore(dir + "/" + name, host_bytes, store_slab,
                                              nvme_bytes, seg, policy));
    KVT_ASSIGN_OR_RETURN(*ns, (*out)->OpenNamespace(BenchNamespace(block, "kvtier-bench")));
    Store* st = out->get();
    return ParallelFor(threads, nvme_bytes / (block + 4096), [&](int, uint64_t i) {
      return st->Put(*ns, Hash128{i + 1, ~0ull}, Hash128{}, nullptr, src.Block(i, block), block);
    });
  };
  KVT_RETURN_IF_ERROR(open_filled("store-wt", store_host, "write_through", &f->store_wt, &f->ns_wt));
  // Write-back with a host tier of a whole round (its demotion queue, a quarter of that, holds
  // full io_depth batches): every timed put evicts one block to the queue.
  KVT_RETURN_IF_ERROR(open_filled("store-wb", round_up(nblocks * block, store_slab), "write_back",
                                  &f->store_wb, &f->ns_wb));

  auto add = [&](std::string name, std::string limit, std::vector<std::string> baselines,
                 std::string note, std::function<StatusOr<Sample>()> run) {
    Test t;
    t.path = std::move(name);
    t.kind = Kind::kEngine;
    t.block_bytes = block;
    t.limit = std::move(limit);
    t.baselines = std::move(baselines);
    t.note = std::move(note);
    t.run = std::move(run);
    set->tests.push_back(std::move(t));
  };
  const std::vector<std::string> write_bl = {"file_per_block_write", "rocksdb_blob_write"};
  const std::vector<std::string> durable_bl = {"file_per_block_write_durable",
                                               "rocksdb_blob_write_durable"};
  const std::vector<std::string> read_bl = {"file_per_block_read", "rocksdb_blob_read"};

  add("host_put", "memcpy", {}, "HostTier::Put: checksum + copy into a slot, evicting (one thread)",
      [f, &src, block, mem_blocks]() -> StatusOr<Sample> {
        const uint64_t tag = ++f->round;
        const double t0 = NowSeconds();
        for (uint64_t i = 0; i < mem_blocks; ++i) {
          KVT_RETURN_IF_ERROR(f->host_put->Put(Meta(i, tag, block), src.Block(i, block), false));
        }
        return Done(t0, mem_blocks, block);
      });
  add("host_get", "memcpy", {}, "HostTier::Read: copy out of a slot under a pin (one thread)",
      [f, block, mem_blocks]() -> StatusOr<Sample> {
        const double t0 = NowSeconds();
        for (uint64_t i = 0; i < mem_blocks; ++i) {
          KVT_RETURN_IF_ERROR(f->host_get->Read(1, Hash128{i + 1, 0},
                                                f->host_dst.data() + i * block, block, nullptr));
        }
        return Done(t0, mem_blocks, block);
      });
  add("nvme_write", "raw_seq_write", write_bl,
      "NvmeTier::Write from `threads` callers: header + payload O_DIRECT, then indexed",
      [f, &src, block, nblocks, threads]() -> StatusOr<Sample> {
        const uint64_t tag = ++f->round;
        const double t0 = NowSeconds();
        KVT_RETURN_IF_ERROR(ParallelFor(threads, nblocks, [&](int, uint64_t i) {
          return f->nvme_w->Write(f->WriteMeta(i, tag, block), src.Block(i, block));
        }));
        return Done(t0, nblocks, block);
      });
  add("nvme_write_batch", "raw_seq_write", write_bl,
      "NvmeTier::WriteBatch of 64 blocks from one thread (io_depth in flight), then indexed",
      [f, &src, block, nblocks]() -> StatusOr<Sample> {
        const uint64_t tag = ++f->round;
        std::vector<NvmeWriteItem> items;
        const double t0 = NowSeconds();
        for (uint64_t i = 0; i < nblocks;) {
          items.clear();
          for (uint64_t k = 0; k < kWriteBatch && i < nblocks; ++k, ++i) {
            items.push_back(NvmeWriteItem{f->WriteMeta(i, tag, block), src.Block(i, block)});
          }
          KVT_RETURN_IF_ERROR(f->nvme_w->WriteBatch(items));
        }
        return Done(t0, nblocks, block);
      });
  add("nvme_flush_batch", "raw_durable_write", durable_bl,
      "NvmeTier::WriteBatch of 16 blocks + Flush (one fdatasync per touched segment), `threads` "
      "callers",
      [f, &src, block, durable_blocks, threads]() -> StatusOr<Sample> {
        const uint64_t tag = ++f->round;
        const uint64_t per = 16;
        const uint64_t batches = (durable_blocks + per - 1) / per;
        const double t0 = NowSeconds();
        KVT_RETURN_IF_ERROR(ParallelFor(threads, batches, [&](int, uint64_t b) {
          std::vector<NvmeWriteItem> items;
          for (uint64_t i = b * per; i < std::min(durable_blocks, (b + 1) * per); ++i) {
            items.push_back(NvmeWriteItem{f->WriteMeta(i, tag, block), src.Block(i, block)});
          }
          KVT_RETURN_IF_ERROR(f->nvme_w->WriteBatch(items));
          return f->nvme_w->Flush();
        }));
        return Done(t0, durable_blocks, block);
      });
  add("nvme_write_durable", "raw_durable_write", durable_bl,
      "NvmeTier::Write + Flush per block (fdatasync, no index sync), `threads` callers",
      [f, &src, block, durable_blocks, threads]() -> StatusOr<Sample> {
        const uint64_t tag = ++f->round;
        const double t0 = NowSeconds();
        KVT_RETURN_IF_ERROR(ParallelFor(threads, durable_blocks, [&](int, uint64_t i) {
          KVT_RETURN_IF_ERROR(f->nvme_w->Write(f->WriteMeta(i, tag, block), src.Block(i, block)));
          return f->nvme_w->Flush();
        }));
        return Done(t0, durable_blocks, block);
      });
  add("nvme_read", "raw_rand_read", read_bl,
      "NvmeTier::Read of random blocks, `threads` callers, header + payload verified",
      [f, block, nblocks, threads]() -> StatusOr<Sample> {
        const double t0 = NowSeconds();
        KVT_RETURN_IF_ERROR(ParallelFor(threads, nblocks, [&](int, uint64_t i) {
          BlockMeta m;
          return f->nvme_r->Read(1, Hash128{f->order[i] + 1, 0}, f->dst[i], block, &m);
        }));
        return Done(t0, nblocks, block);
      });
  add("nvme_read_batch", "raw_rand_read", read_bl,
      "NvmeTier::ReadBatch of a 64-block prefix (random prefixes) in one call, one thread, "
      "into registered memory, verified",
      [f, block, nblocks]() -> StatusOr<Sample> {
        std::vector<NvmeReadItem> items(f->prefix);
        uint64_t n = 0;
        const double t0 = NowSeconds();
        for (uint64_t p : f->prefix_starts) {
          for (uint64_t k = 0; k < f->prefix; ++k) {
            items[k].ns = 1;
            items[k].key = Hash128{p * f->prefix + k + 1, 0};
            items[k].dst = f->dst[n + k];
            items[k].dst_bytes = block;
          }
          if (f->nvme_r->ReadBatch(items) != f->prefix) {
            for (const NvmeReadItem& it : items) KVT_RETURN_IF_ERROR(it.status);
          }
          n += f->prefix;
        }
        (void)nblocks;
        return Done(t0, n, block);
      });
  add("store_get_promote", "raw_rand_read", read_bl,
      "Store::Get of blocks on NVMe (small host tier): read, verify, copy, promote",
      [f, block, nblocks, threads]() -> StatusOr<Sample> {
        const double t0 = NowSeconds();
        KVT_RETURN_IF_ERROR(ParallelFor(threads, nblocks, [&](int, uint64_t i) {
          return f->store_r->Get(f->ns_r, Hash128{f->order[i] + 1, 7}, f->dst[i], block);
        }));
        Sample s = Done(t0, nblocks, block);
        s.detail = std::to_string(CounterDelta(*f->store_r, "store", "promotions",
                                               &f->promotions_seen)) +
                   " of " + std::to_string(nblocks) + " gets promoted from NVMe in the last round";
        return s;
      });
  add("store_get_batch", "raw_rand_read", read_bl,
      "Store::GetBatch (kvt_get_batch) of a 64-block prefix (random prefixes) in one call, one "
      "thread, into registered memory: host hits copied, the NVMe part in one ReadBatch, promoted",
      [f, block]() -> StatusOr<Sample> {
        std::vector<BatchEntry> v(f->prefix);
        uint64_t n = 0;
        const double t0 = NowSeconds();
        for (uint64_t p : f->prefix_starts) {
          for (uint64_t k = 0; k < f->prefix; ++k) {
            v[k].key = Hash128{p * f->prefix + k + 1, 7};
            v[k].buf = f->dst[n + k];
            v[k].bytes = block;
          }
          KVT_RETURN_IF_ERROR(f->store_r->GetBatch(f->ns_r, v));
          for (const BatchEntry& e : v) KVT_RETURN_IF_ERROR(e.status);
          n += f->prefix;
        }
        Sample s = Done(t0, n, block);
        s.detail =
            std::to_string(CounterDelta(*f->store_r, "engine", "direct_reads", &f->direct_seen)) +
            " of " + std::to_string(n) + " blocks read from NVMe straight into registered memory";
        return s;
      });
  // A round of puts of fresh blocks into `st`, `threads` callers.
  auto put_round = [f, &src, block, nblocks, threads](Store* st, uint64_t ns) -> StatusOr<Sample> {
    const uint64_t tag = ++f->round;
    const double t0 = NowSeconds();
    KVT_RETURN_IF_ERROR(ParallelFor(threads, nblocks, [&](int, uint64_t i) {
      return st->Put(ns, Hash128{i + 1, tag}, Hash128{}, nullptr, src.Block(i, block), block);
    }));
    return Done(t0, nblocks, block);
  };
  add("store_put_write_through", "raw_seq_write", write_bl,
      "Store::Put, write_through: checksum + host copy + NvmeTier::Write, `threads` callers",
      [f, put_round] { return put_round(f->store_wt.get(), f->ns_wt); });
  add("store_put_write_back", "raw_seq_write", write_bl,
      "Store::Put, write_back, full host tier: checksum + host copy, the evicted block queued and "
      "demoted in batches by the background writer, `threads` callers",
      [f, put_round, nblocks]() -> StatusOr<Sample> {
        KVT_ASSIGN_OR_RETURN(Sample s, put_round(f->store_wb.get(), f->ns_wb));
        s.detail =
            std::to_string(CounterDelta(*f->store_wb, "store", "demotions", &f->demotions_seen)) +
            " of " + std::to_string(nblocks) + " blocks demoted to NVMe during the last round";
        return s;
      });
  set->fixtures.push_back(std::move(fx));
  return Status::Ok();
}

}  // namespace kvt::bench
