// HostTier: warm blocks in pinned host RAM. An index (TierIndex with a pluggable eviction policy)
// over a slab pool (HostPool) under a hard byte budget.
//
// Copies run outside the tier's lock: a put fills a slot that is not yet in the index, and a read
// pins its slot so that eviction, removal or replacement of the block defers freeing the memory
// until the read ends. A reader therefore never sees a torn or reused slot.
//
// Two-phase slots (the tier contract, tiers/tier.h, as the HBM tier has them): Reserve hands out
// a pinned slot no lookup sees; the mover fills it (an NVMe read lands there straight, a socket
// read too) and Publishes it, or Aborts. Put is Reserve + memcpy + Publish.
//
// Thread safety: every method is safe to call from any thread.
#pragma once

#include <sys/uio.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tiers/policy/block_meta.h"
#include "tiers/host/host_pool.h"
#include "tiers/tier.h"
#include "tiers/policy/tier_counters.h"
#include "tiers/policy/tier_index.h"

namespace kvt {

struct HostTierOptions {
  uint64_t budget_bytes = 1ull << 30;
  uint64_t slab_bytes = 16ull << 20;
  bool try_lock = true;
  std::string policy = "lru";
  bool verify_reads = false;  // host RAM is trusted; NVMe and network reads are always verified
};

// A block held in place for a reader (a prefetch ticket). Release it with HostTier::Unpin.
using PinnedBlock = SlotPin;

class HostTier final : public StorageTier {
 public:
  static StatusOr<std::unique_ptr<HostTier>> Create(const HostTierOptions& o);
  TierKind kind() const override { return TierKind::kHost; }

  // Receives each block evicted to make room, after it left the index and with the tier's lock
  // released. The victim's slot is pinned: the sink returns true to keep that pin (and Unpins
  // when it is done with the bytes: the mover's demotion queue writes them to NVMe later), false
  // to let the tier drop it as the sink returns. The sink must not wait for I/O.
  using EvictSink = std::function<bool(const SlotPin& victim)>;
  void SetEvictSink(EvictSink sink) { sink_ = std::move(sink); }

  // Metadata of a stored block; touches it for eviction when `touch`. No counters change.
  bool Lookup(uint64_t ns, const Hash128& key, BlockMeta* out, bool touch) override;
  // One lock for the whole batch: a prefix match looks up every block of a chain, and the lock
  // was a third of the per-key cost.
  Status LookupBatch(uint64_t ns, std::span<const Hash128> keys, std::span<uint8_t> todo,
                     std::span<BlockMeta> metas) override;

  // Two-phase slots (see the header comment). Reserve: NoSpace when a block of this size can
  // never fit; Busy when full and everything pinned.
  StatusOr<SlotPin> Reserve(const BlockMeta& meta) override;
  void Publish(const SlotPin& b) override;
  void Abort(const SlotPin& b) override;

  // Copies meta.payload_bytes from data into a new slot, evicting as the policy says. When
  // `checksum_known` is false, meta.checksum is computed here. A block already stored with the same
  // identity (parent, tokens) is refreshed and not copied. Busy: full and everything pinned.
  // With `pin`, the stored block (the new one, or the identical one already there) is also pinned
  // for the caller, atomically with the insert, so no eviction can slip in between; Unpin it.
  Status Put(BlockMeta meta, const void* data, bool checksum_known, PinnedBlock* pin = nullptr);

  // Copies a block into dst. NotFound: absent, or checksum failure with verify_reads (dropped).
  // InvalidArgument: dst_bytes differs from the block's size.
  Status Read(uint64_t ns, const Hash128& key, void* dst, size_t dst_bytes,
              BlockMeta* meta) override;

  // Pins a stored block in place (not evictable, bytes stable) until Unpin. `touch`: the pin is a
  // use (a prefetch) and counts for eviction; internal copies (write-through, flush) are not.
  bool Pin(uint64_t ns, const Hash128& key, PinnedBlock* out, bool touch) override;
  bool Pin(uint64_t ns, const Hash128& key, PinnedBlock* out) { return Pin(ns, key, out, true); }
  void Unpin(const PinnedBlock& b) override;

  // The (namespace, key) of every block held now: a snapshot, for flushing write-back blocks.
  std::vector<BlockId> Snapshot() const override;

  // Removes one block; NotFound when absent.
  Status Remove(uint64_t ns, const Hash128& key) override;
  // Removes every block of a namespace.
  Status DropNamespace(uint64_t ns, size_t* dropped = nullptr) override;

  std::vector<iovec> Regions() const { return pool_->Regions(); }
  bool Fits(uint64_t bytes) const { return pool_->Fits(bytes); }
  const TierCounters& counters() const { return counters_; }
  TierCounters& counters() { return counters_; }
  void VisitCounters(const CounterVisitor& visit) const override;
  void StatsJson(nlohmann::json* out) const;

 private:
  HostTier() : StorageTier(/*holds_slots=*/true) {}
  // Frees an entry's slot (deferred while pinned) after it left the index.
  void DropEntryLocked(EntryId id, bool evicted);
  void PinLocked(EntryId id, PinnedBlock* out);

  HostTierOptions opts_;
  mutable std::mutex mu_;
  std::unique_ptr<HostPool> pool_;     // GUARDED_BY(mu_)
  std::unique_ptr<TierIndex> index_;   // GUARDED_BY(mu_)
  EvictSink sink_;
  TierCounters counters_;
};

}  // namespace kvt
