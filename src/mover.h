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
#include "tiers/policy/admission.h"
#include "tiers/hbm/hbm_tier.h"
#include "tiers/host/host_tier.h"
#include "tiers/nvme/nvme_tier.h"
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
  // Puts many blocks (the engine-facing put batch): each into the host tier with its pin, then
  // (write-through) every block not on NVMe yet in one NVMe WriteBatch, then the remote owners,
  // all from the pins. out[i]: the first failure of block i (it stays stored locally when only
  // a write-through failed), stored[i]: whether the host tier took it.
  void PutBatch(std::span<const BlockMeta> metas, const void* const* datas, bool remote_write,
                std::span<Status> out, std::span<uint8_t> stored);
  // Copies a block into dst from the first tier holding it (host, HBM, queue, NVMe, remote);
  // NVMe and remote blocks are promoted into the host tier on the way. NotFound on a miss.
  Status Get(uint64_t ns, const Hash128& key, void* dst, size_t bytes, TierKind* from);
  // The memory part of Get: host, HBM, then blocks on their way to NVMe. NotFound: none holds it.
  Status ReadFromMemory(uint64_t ns, const Hash128& key, void* dst, size_t bytes, TierKind* from);
  // The NVMe part of a batch get: every item read straight into its caller buffer (dst) with up
  // to io_depth reads in flight, then promoted into the host tier from that buffer (skipped, and
  // counted, when the demotion queue is full: a get never waits for an NVMe write).
  void ReadNvmeBatch(std::span<NvmeReadItem> items);
  // The remote part of Get: streamed into a reserved host slot, then copied out.
  Status GetFromRemote(uint64_t ns, const Hash128& key, void* dst, size_t bytes);
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
  // Waits until every eviction queued so far has been written to NVMe (or failed); no sync.
  // For tools that compare the store with a synchronous model (kvtier-sim --validate).
  void DrainDemotions() {
    if (queue_) queue_->Drain();
  }
  // HBM -> host when a block leaves HBM (skipped when the host tier holds it already).
  bool DemoteFromHbm(const SlotPin& victim);
  // Sends a block now pinned in the host tier to its owning node.
  Status RemotePut(const SlotPin& b);

  // Called with every block that left a tier (host or HBM eviction, a demotion that was dropped,
  // failed or not admitted) once it is gone from there; the store notes REMOVED events when no
  // tier holds it any more. Set once, at open, before any block moves.
  using GoneHook = std::function<void(uint64_t ns, const Hash128& key)>;
  void SetGoneHook(GoneHook hook) { gone_ = std::move(hook); }

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
  // Copies from a just-read caller buffer into the host tier, unless a full demotion queue would
  // drop the victim (counted promotions_skipped).
  void PromoteCopy(const BlockMeta& meta, const void* data);
  void Gone(const BlockMeta& m) {
    if (gone_) gone_(m.ns, m.key);
  }

  const Tiers t_;
  const bool write_through_;
  const size_t io_depth_;
  std::mutex admission_mu_;
  std::unique_ptr<AdmissionPolicy> admission_;  // GUARDED_BY(admission_mu_)
  std::unique_ptr<NvmeTierAdapter> nvme_adapter_;
  mutable MoverCounters c_;
  std::unique_ptr<DemotionQueue> queue_;  // write-back with NVMe only
  std::vector<StorageTier*> tiers_;
  GoneHook gone_;
};

}  // namespace kvt
