// TierIndex: the in-memory index of one tier: which blocks it holds, their identity (BlockMeta),
// where their bytes are (an opaque slot the tier interprets), and the eviction order (a pluggable
// EvictionPolicy). It holds no payload bytes, which is what lets the simulator drive the same index
// and policies as the store in metadata-only mode.
//
// The (namespace, key) -> entry map is an open-addressing table of 8-byte slots (32 bits of hash
// and the entry id; the key itself is compared in the entry) with linear probing and
// backward-shift deletion: a lookup costs one cache line of slots, where a node-based map cost a
// pointer chase per lookup and was half of the simulator's time.
//
// Thread safety: none; the owning tier serializes calls with its own mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "tiers/policy/block_meta.h"
#include "tiers/policy/eviction_policy.h"

namespace kvt {

struct BlockId {
  uint64_t ns = 0;
  Hash128 key;
  bool operator==(const BlockId&) const = default;
};

class TierIndex {
 public:
  struct Entry {
    BlockMeta meta;
    uint64_t slot = 0;    // tier-defined: a host pool slot, a device slot, nothing (simulator)
    uint64_t charge = 0;  // units counted against the tier's capacity (bytes, or 1 per block)
    bool live = false;
  };

  explicit TierIndex(std::unique_ptr<EvictionPolicy> policy) : policy_(std::move(policy)) {}

  // The entry for id, or kNoEntry. Does not count as an access.
  EntryId Find(uint64_t ns, const Hash128& key) const;
  // Starts loading the slot Find(ns, key) will read first: callers about to look up many keys (a
  // request's blocks) issue these first so the cache misses overlap instead of queueing.
  void Prefetch(uint64_t ns, const Hash128& key) const {
    __builtin_prefetch(&slots_[Home(Tag(ns, key))]);
  }
  const Entry& Get(EntryId id) const { return entries_[id]; }
  Entry& Get(EntryId id) { return entries_[id]; }
  void Touch(EntryId id) { policy_->Touch(id); }

  // Adds an entry. REQUIRES: the key is not present. Its parent link for the policy is the entry
  // of meta.parent in the same namespace, when this tier holds it.
  EntryId Insert(const BlockMeta& meta, uint64_t slot, uint64_t charge);
  // Removes an entry; `evicted` tells the policy whether it chose it.
  void Erase(EntryId id, bool evicted);
  // The policy's next victim among entries for which can_evict(entry) holds, or kNoEntry.
  EntryId PickVictim(const std::function<bool(const Entry&)>& can_evict);
  // Every live entry's id, in no particular order.
  std::vector<BlockId> Ids() const;
  // Every live entry of a namespace (for drop).
  std::vector<EntryId> EntriesOf(uint64_t ns) const;

  size_t size() const { return size_; }
  uint64_t charged() const { return charged_; }
  std::string_view policy_name() const { return policy_->name(); }

 private:
  struct Slot {
    uint32_t tag = 0;          // 32 bits of the key's hash; its top bits are the home slot
    EntryId id = kNoEntry;     // kNoEntry: empty
  };
  static uint32_t Tag(uint64_t ns, const Hash128& key);
  size_t Home(uint32_t tag) const { return tag >> (32 - bits_); }
  // The slot holding id (REQUIRES: id is live).
  size_t SlotOf(EntryId id) const;
  void Grow();

  std::unique_ptr<EvictionPolicy> policy_;
  std::vector<Slot> slots_ = std::vector<Slot>(16);  // a power of two, at most half full
  uint32_t bits_ = 4;                                 // log2(slots_.size())
  size_t size_ = 0;
  std::vector<Entry> entries_;
  std::vector<EntryId> free_ids_;
  uint64_t charged_ = 0;
};

}  // namespace kvt
