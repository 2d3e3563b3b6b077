// The tier contract: what every tier offers the store and the mover, so that the store loops over
// its configured tiers (fastest first) instead of naming them, and one mover moves blocks between
// any two of them. Host and HBM implement it directly; NVMe and remote through thin adapters
// (tiers/tier_adapters.h) over NvmeTier and RemoteTier.
//
//   Lookup / LookupBatch   metadata of stored blocks, no payload I/O (a remote tier asks its node)
//   Read                   one block into a caller buffer (host memory), verified where the bytes
//                          crossed a disk or a wire
//   Reserve / Publish /    two-phase slots, for tiers that hold blocks in slots of their own
//   Abort / Pin / Unpin    memory (host, HBM): a reserved slot is pinned and invisible to lookups
//                          until Publish; the mover fills it (an NVMe read, a socket read, a device
//                          copy) outside the tier's lock. Other tiers answer Internal.
//   Remove, DropNamespace, Snapshot, VisitCounters
//
// Statuses: NotFound is a miss (absent, stale, corrupt, node unreachable). InvalidArgument: a
// buffer of the wrong size. Busy: a slot tier full with everything pinned. PermissionDenied: a
// remote node refused our credentials (reported, never a miss).
//
// Thread safety: every method of every implementation is safe to call from any thread.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/status.h"
#include "tiers/policy/block_meta.h"
#include "tiers/policy/tier_counters.h"
#include "tiers/policy/tier_index.h"

namespace kvt {

enum class TierKind : int8_t { kHbm = 0, kHost = 1, kNvme = 2, kRemote = 3 };
const char* TierKindName(TierKind k);

// A block held in place in a slot tier (host or HBM): pinned (never evicted, overwritten or
// reused) until Unpin, or, when reserved and not yet published, until Publish + Unpin or Abort.
struct SlotPin {
  uint64_t slot = 0;        // tier-defined: a host pool slot, an HBM slot index
  uint8_t* data = nullptr;  // the payload (device memory for a real HBM tier)
  BlockMeta meta;
};

class StorageTier {
 public:
  virtual ~StorageTier() = default;
  virtual TierKind kind() const = 0;

  // Metadata of a stored block; `touch` counts it as a use for eviction (a lookup is not a use;
  // a get or prefetch is).
  virtual bool Lookup(uint64_t ns, const Hash128& key, BlockMeta* out, bool touch) = 0;
  // Lookup of many keys at once: found[i] and metas[i] for every i where todo[i] is set (and
  // clears todo[i] for those found). Tiers with a round trip per call (remote) override it.
  virtual Status LookupBatch(uint64_t ns, std::span<const Hash128> keys, std::span<uint8_t> todo,
                             std::span<BlockMeta> metas);
  // Copies a block into dst (host memory). NotFound: a miss. InvalidArgument: dst_bytes differs
  // from the block's size.
  virtual Status Read(uint64_t ns, const Hash128& key, void* dst, size_t dst_bytes,
                      BlockMeta* meta) = 0;
  virtual Status Remove(uint64_t ns, const Hash128& key) = 0;
  // Removes every block of a namespace; *dropped (optional) gets how many, where known.
  virtual Status DropNamespace(uint64_t ns, size_t* dropped = nullptr) = 0;
  // The (namespace, key) of every block held now (empty for tiers that cannot list theirs).
  virtual std::vector<BlockId> Snapshot() const = 0;
  virtual void VisitCounters(const CounterVisitor& visit) const = 0;

  // --- slot tiers (host, HBM) ---
  // A pinned slot for meta that no lookup sees yet, evicting as the tier's policy says.
  virtual StatusOr<SlotPin> Reserve(const BlockMeta& meta);
  // Makes a reserved, filled slot visible under b.meta's key (replacing any block there). It
  // stays pinned for the caller until Unpin.
  virtual void Publish(const SlotPin& b);
  // Gives back a reserved slot that was never published.
  virtual void Abort(const SlotPin& b);
  // Pins a stored block in place; `touch` as for Lookup.
  virtual bool Pin(uint64_t ns, const Hash128& key, SlotPin* out, bool touch);
  virtual void Unpin(const SlotPin& b);
  bool holds_slots() const { return holds_slots_; }

 protected:
  explicit StorageTier(bool holds_slots) : holds_slots_(holds_slots) {}

 private:
  const bool holds_slots_;
};

// Whether two metas name the same stored block (so a put of it again need not copy it).
inline bool SameBlockIdentity(const BlockMeta& a, const BlockMeta& b) {
  return a.parent == b.parent && a.has_tokens == b.has_tokens &&
         (!a.has_tokens || a.tokens_digest == b.tokens_digest) &&
         a.payload_bytes == b.payload_bytes;
}

}  // namespace kvt
