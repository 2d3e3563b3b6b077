// TierIndex: the in-memory index of one tier: which blocks it holds, their identity (BlockMeta),
// where their bytes are (an opaque slot the tier interprets), and the eviction order (a pluggable
// EvictionPolicy). It holds no payload bytes, which is what lets the simulator drive the same index
// and policies as the store in metadata-only mode.
//
// Thread safety: none; the owning tier serializes calls with its own mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "tiers/block_meta.h"
#include "tiers/eviction_policy.h"

namespace kvt {

struct BlockId {
  uint64_t ns = 0;
  Hash128 key;
  bool operator==(const BlockId&) const = default;
};

struct BlockIdHash {
  size_t operator()(const BlockId& b) const {
    // Keys are already uniform hashes; mix in ns so equal keys in two namespaces spread.
    return static_cast<size_t>(b.key.lo ^ (b.key.hi * 0x9E3779B97F4A7C15ull) ^
                               (b.ns * 0xC2B2AE3D27D4EB4Full));
  }
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

  size_t size() const { return map_.size(); }
  uint64_t charged() const { return charged_; }
  std::string_view policy_name() const { return policy_->name(); }

 private:
  std::unique_ptr<EvictionPolicy> policy_;
  std::unordered_map<BlockId, EntryId, BlockIdHash> map_;
  std::vector<Entry> entries_;
  std::vector<EntryId> free_ids_;
  uint64_t charged_ = 0;
};

}  // namespace kvt
