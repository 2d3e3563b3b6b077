// EvictionPolicy: decides which block a tier gives up next. Pluggable per tier (LRU, S3-FIFO,
// chain-aware LRU) and shared by the store and the simulator, which drives the very same classes
// in metadata-only mode.
//
// Entries are named by EntryId, a small dense integer the owning index assigns and may reuse after
// Remove. The policy never sees keys or bytes, only ids, an optional parent id (chain-aware LRU) and
// a 64-bit fingerprint of the key (S3-FIFO's ghost queue remembers evicted keys by it).
//
// Thread safety: none; the owning tier serializes calls.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "base/status.h"

namespace kvt {

using EntryId = uint32_t;
inline constexpr EntryId kNoEntry = UINT32_MAX;

class EvictionPolicy {
 public:
  virtual ~EvictionPolicy() = default;
  // A new entry. parent is the entry holding the previous block of the same prefix in this tier,
  // or kNoEntry. REQUIRES: id is not currently inserted.
  virtual void Insert(EntryId id, EntryId parent, uint64_t fingerprint) = 0;
  // The entry was read or looked up.
  virtual void Touch(EntryId id) = 0;
  // The entry left the tier: evicted (chosen by PickVictim) or removed by the caller.
  virtual void Remove(EntryId id, bool evicted) = 0;
  // The entry the policy would evict next among those for which can_evict returns true, or
  // kNoEntry when none can be. Does not remove it; the caller calls Remove(id, true).
  virtual EntryId PickVictim(const std::function<bool(EntryId)>& can_evict) = 0;
  virtual std::string_view name() const = 0;
};

// "lru", "s3fifo" or "chain_lru"; InvalidArgument for any other name.
StatusOr<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(std::string_view name);

}  // namespace kvt
