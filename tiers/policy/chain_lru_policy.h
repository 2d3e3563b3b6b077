// Chain-aware LRU: least recently used among the entries with no cached descendant. Losing a
// middle block of a prefix strands every block after it (a prefix hit stops at the first miss), so
// a block whose descendants are cached is evicted only after them.
//
// Parent links come from the index (Insert's parent). Ids are reused after Remove, so each link
// remembers its parent's incarnation and a stale link is ignored.
#pragma once

#include <set>
#include <vector>

#include "tiers/policy/eviction_policy.h"

namespace kvt {

class ChainLruPolicy final : public EvictionPolicy {
 public:
  void Insert(EntryId id, EntryId parent, uint64_t fingerprint) override;
  void Touch(EntryId id) override;
  void Remove(EntryId id, bool evicted) override;
  EntryId PickVictim(const std::function<bool(EntryId)>& can_evict) override;
  std::string_view name() const override { return "chain_lru"; }

 private:
  struct Node {
    uint64_t tick = 0;         // last access
    uint64_t incarnation = 0;  // bumped on every Insert of this id
    EntryId parent = kNoEntry;
    uint64_t parent_incarnation = 0;
    uint32_t children = 0;  // cached children in this tier
    bool live = false;
  };
  bool ParentLinkValid(const Node& n) const;

  std::vector<Node> nodes_;
  std::set<std::pair<uint64_t, EntryId>> leaves_;  // (tick, id) of live nodes with no children
  uint64_t clock_ = 0;
};

}  // namespace kvt
