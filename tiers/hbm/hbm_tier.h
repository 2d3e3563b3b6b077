// HbmTier: hot blocks in device memory (tier 0). One region of the tier's byte budget is allocated
// once at open (cudaMalloc through DeviceMemory) and cut into fixed-size block slots: slot i lives
// at base() + i * slot_bytes(), so the decode kernels read stored blocks in place through a block
// table (kernels/kv_layout.h PoolLayerView / PayloadSlots: block id = slot index). An index
// (TierIndex with the same pluggable eviction policies as the host tier) maps (namespace, key) to a
// slot.
//
// Slot size: fixed by the first block placed in the tier (its payload rounded up to 256 bytes);
// a later block larger than that is refused with InvalidArgument (one model per store is the
// common case; a smaller block wastes the rest of its slot).
//
// Without a GPU (or in a build without CUDA) the same tier runs on DeviceMemory's emulated
// implementation: the slots are host memory and copies are memcpy, so every test runs in CI.
//
// Filling a slot is asynchronous and happens outside the tier's lock: Reserve hands out a pinned
// slot that no lookup can see; the caller copies into it (layer by layer, on a stream) and then
// Publishes it, or Abandons it on failure. A pinned slot is never evicted, overwritten or reused;
// removing or replacing a pinned block defers freeing its slot to the last Unpin.
//
// Eviction calls the EvictSink (the store demotes the block to the host tier) with the victim's
// device address; the slot stays pinned until the sink returns.
//
// Thread safety: every method is safe to call from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tiers/policy/block_meta.h"
#include "tiers/hbm/device_memory.h"
#include "tiers/policy/tier_counters.h"
#include "tiers/policy/tier_index.h"

namespace kvt {

struct HbmTierOptions {
  uint64_t budget_bytes = 0;
  std::string policy = "lru";
};

// A slot held in place for a reader or a writer. Release with Unpin (or Abandon, for a reserved
// slot that was never published).
struct HbmBlock {
  uint32_t slot = 0;
  uint8_t* data = nullptr;  // device address of the payload (host memory when emulated)
  BlockMeta meta;
};

class HbmTier {
 public:
  // `device` is not owned and must outlive the tier. NoSpace when the region cannot be allocated.
  static StatusOr<std::unique_ptr<HbmTier>> Create(const HbmTierOptions& o, DeviceMemory* device);
  ~HbmTier();

  // Receives each evicted block after it left the index, without the tier's lock; `device_data`
  // stays valid until the sink returns.
  using EvictSink = std::function<void(const BlockMeta& meta, const uint8_t* device_data)>;
  void SetEvictSink(EvictSink sink) { sink_ = std::move(sink); }

  bool Lookup(uint64_t ns, const Hash128& key, BlockMeta* out, bool touch);

  // A pinned, unpublished slot for `meta` (its checksum must be known: the tier never reads device
  // bytes to compute one), evicting as the policy says. InvalidArgument: larger than a slot;
  // NoSpace: the budget holds no slot of this size; Busy: full and every slot pinned.
  StatusOr<HbmBlock> Reserve(const BlockMeta& meta);
  // Makes a reserved and filled slot visible under b.meta's key, replacing whatever block was
  // there. It stays pinned for the caller until Unpin.
  void Publish(const HbmBlock& b);
  // Returns a reserved slot that was never published.
  void Abandon(const HbmBlock& b);

  bool Pin(uint64_t ns, const Hash128& key, HbmBlock* out);
  void Unpin(const HbmBlock& b);

  // Copies a host block into the tier and waits for the copy (Reserve + copy + Publish).
  Status Put(const BlockMeta& meta, const void* host_data);
  // Copies a block out to host memory and waits. NotFound when absent; InvalidArgument when
  // dst_bytes differs from its size.
  Status Read(uint64_t ns, const Hash128& key, void* dst, size_t dst_bytes, BlockMeta* meta);

  Status Remove(uint64_t ns, const Hash128& key);
  size_t DropNamespace(uint64_t ns);
  std::vector<BlockId> Snapshot() const;

  // The pool: slot i at base() + i * slot_bytes(). slot_bytes() is 0 until the first Reserve.
  uint8_t* base() const { return region_.data(); }
  uint64_t slot_bytes() const;
  uint64_t capacity_bytes() const { return region_.size(); }
  DeviceMemory* device() const { return device_; }
  const TierCounters& counters() const { return counters_; }
  TierCounters& counters() { return counters_; }
  void StatsJson(nlohmann::json* out) const;

 private:
  HbmTier() = default;
  uint8_t* Data(uint32_t slot) const { return region_.data() + uint64_t{slot} * slot_bytes_; }
  // Fixes the slot size (first block) and builds the free list. REQUIRES: mu_ held.
  Status ConfigureLocked(uint64_t payload_bytes);
  void ReleaseLocked(uint32_t slot);  // frees now, or at the last Unpin when pinned
  void UnpinLocked(uint32_t slot);
  void DropEntryLocked(EntryId id, bool evicted);
  static bool SameIdentity(const BlockMeta& a, const BlockMeta& b);

  HbmTierOptions opts_;
  DeviceMemory* device_ = nullptr;
  DeviceRegion region_;
  mutable std::mutex mu_;
  uint64_t slot_bytes_ = 0;                 // GUARDED_BY(mu_) (written once)
  std::vector<uint32_t> free_;              // GUARDED_BY(mu_)
  std::vector<uint16_t> pins_;              // GUARDED_BY(mu_)
  std::vector<bool> release_pending_;       // GUARDED_BY(mu_)
  std::unique_ptr<TierIndex> index_;        // GUARDED_BY(mu_)
  uint64_t deferred_frees_ = 0;             // GUARDED_BY(mu_)
  EvictSink sink_;
  TierCounters counters_;
};

}  // namespace kvt
