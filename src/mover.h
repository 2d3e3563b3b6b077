// Mover: the one place that moves block bytes between tiers, for every path: get (with promotion
// into the host tier), put (with write-through to NVMe and the remote owner), flush, demotion on
// eviction (host -> NVMe through the bounded DemotionQueue, HBM -> host), prefetch to host and HBM
// (FetchToHost), kvt_gpu_load/kvt_gpu_save, and the remote tier. The store loops over tiers() for
// lookups, removal and drops, and calls the mover whenever bytes move.
//
// Where bytes land: an NVMe read lands straight in a reserved host slot (4 KiB-aligned, registered
// with io_uring), so a get's copy to the caller is the only copy; a remote get streams from the
// socket into a reserved host slot; a put keeps the pin of its new slot for write-through. Batched
// paths (FetchToHost of many keys, flush, demotion) keep up to io_depth blocks in flight.
//
// No tier calls the store: evictions reach the mover through the tiers' sinks, which never wait for
// an NVMe write (host victims are queued; HBM victims are copied to the host tier).
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "src/demotion_queue.h"
#include "src/options.h"
#include "tiers/admission.h"
#include "tiers/hbm_tier.h"
#include "tiers/host_tier.h"
#include "tiers/nvme_tier.h"
#include "tiers/tier_adapters.h"

namespace kvt {

struct MoverCounters {
  std::atomic<uint64_t> demotions{0}, demotions_skipped{0}, demotion_failures{0};
  std::atomic<uint64_t> admission_rejects{0};
  std::atomic<uint64_t> promotions{0}, promotion_failures{0};
  std::atomic<uint64_t> promotions_skipped{0};  // get read around the host tier: queue full
  std::atomic<uint64_t> write_throughs{0}, write_through_failures{0};
  std::atomic<uint64_t> hbm_demotions{0}, hbm_demotions_skipped{0}, hbm_demotion_failures{0};
  std::atomic<uint64_t> remote_fetches{0}, remote_fetch_failures{0};
  std::atomic<uint64_t> remote_puts{0}, remote_put_failures{0};
  std::atomic<uint64_t> flush_blocks{0}, flush_batches{0};
  std::atomic<uint64_t> fetch_batches{0}, fetch_nvme_reads{0};
};

// Where a block was found (FetchToHost, Get).
struct FetchResult {
  Status status;
  TierKind from = TierKind::kHost;
};

struct FetchOptions {
  bool skip_hbm = false;    // the caller pins HBM blocks itself (prefetch to HBM, GPU load)
  bool local_only = false;  // never ask the remote tier (serving a peer)
  uint64_t block_bytes = 0;  // remote blocks of another size are misses (0: any)
  std::function<bool()> cancelled;  // checked between blocks; null: never
};

class Mover {
 public:
  struct Tiers {
    HostTier* host = nullptr;  // required
    HbmTier* hbm = nullptr;
    NvmeTier* nvme = nullptr;
    RemoteTierAdapter* remote = nullptr;
  };
  // Tiers are not owned and must outlive the mover. Sets the host and HBM eviction sinks.
  Mover(const Options& o, Tiers t, std::unique_ptr<AdmissionPolicy> admission);
  ~Mover();  // drains the demotion queue
  Mover(const Mover&) = delete;
  Mover& operator=(const Mover&) = delete;

  // Every configured tier, fastest first (HBM, host, blocks on their way to NVMe, NVMe, remote).
  const std::vector<StorageTier*>& tiers() const { return tiers_; }
  HostTier* host() const { return t_.host; }
  HbmTier* hbm() const { return t_.hbm; }

  // Stores a block in the host tier, then (write-through) on NVMe and at its remote owner, from
  // the same pinned slot. The first failure is returned (the block stays stored locally).
  Status Put(const BlockMeta& meta, const void* data, bool checksum_known, bool remote_write);
  // Copies a block into dst from the first tier holding it (host, HBM, queue, NVMe, remote);
  // NVMe and remote blocks are promoted into the host tier on the way. NotFound on a miss.
  Status Get(uint64_t ns, const Hash128& key, void* dst, size_t bytes, TierKind* from);
  // Pins keys[i] in the host tier in out[i]: in place, or brought there (HBM unless skip_hbm, the
  // demotion queue, NVMe with up to io_depth reads in flight into reserved host slots, the remote
  // owner in one streamed request). results[i] says how; a key nobody holds is NotFound. Stops
  // early when cancelled() turns true (the rest: Unavailable). Unpin each OK out[i] with
  // host()->Unpin.
  void FetchToHost(uint64_t ns, std::span<const Hash128> keys, std::span<SlotPin> out,
                   std::span<FetchResult> results, const FetchOptions& fo);
  // Makes everything acknowledged durable: host-only blocks go to NVMe (write-back, batched),
  // the demotion queue drains, NVMe syncs. Reports a background demotion failure since the last
  // flush (sticky) before the flush's own.
  Status Flush();
  // HBM -> host when a block leaves HBM (skipped when the host tier holds it already).
  bool DemoteFromHbm(const SlotPin& victim);
  // Sends a block now pinned in the host tier to its owning node.
  Status RemotePut(const SlotPin& b);

  const MoverCounters& counters() const { return c_; }
  // The mover's counters (names as in kvt_stats_json's "store" object).
  void VisitCounters(const CounterVisitor& visit) const;
  // The demotion queue (null without NVMe or in write-through mode).
  const DemotionQueue* demotion_queue() const { return queue_.get(); }

 private:
  bool NvmeHolds(const BlockMeta& meta) const;
  // Admission (write budget, seen-twice) and "already on NVMe"; counts why not.
  bool ShouldDemote(const BlockMeta& meta);
  // NVMe -> a reserved host slot (the read lands there), published and pinned in out.
  Status PromoteFromNvme(uint64_t ns, const Hash128& key, SlotPin* out);
  // Any readable tier -> a reserved host slot through a caller-buffer read (HBM, queue).
  Status CopyIntoHost(StorageTier* from, const BlockMeta& meta, SlotPin* out);
  // Streams keys from their remote owners into reserved host slots (pinned in out[i]).
  void FetchRemote(uint64_t ns, std::span<const Hash128> keys, std::span<const size_t> which,
                   uint64_t block_bytes, std::span<SlotPin> out, std::span<FetchResult> results);
  bool write_through() const { return write_through_; }

  const Tiers t_;
  const bool write_through_;
  const size_t io_depth_;
  std::mutex admission_mu_;
  std::unique_ptr<AdmissionPolicy> admission_;  // GUARDED_BY(admission_mu_)
  std::unique_ptr<NvmeTierAdapter> nvme_adapter_;
  mutable MoverCounters c_;
  std::unique_ptr<DemotionQueue> queue_;  // write-back with NVMe only
  std::vector<StorageTier*> tiers_;
};

}  // namespace kvt
