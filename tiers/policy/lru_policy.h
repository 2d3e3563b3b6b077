// Least recently used: evicts the entry touched longest ago.
#pragma once

#include "tiers/policy/eviction_policy.h"
#include "tiers/policy/intrusive_list.h"

namespace kvt {

class LruPolicy final : public EvictionPolicy {
 public:
  void Insert(EntryId id, EntryId, uint64_t) override { list_.PushBack(id); }
  void Touch(EntryId id) override {
    if (list_.Contains(id)) list_.MoveToBack(id);
  }
  void Remove(EntryId id, bool) override { list_.Erase(id); }
  EntryId PickVictim(const std::function<bool(EntryId)>& can_evict) override {
    for (EntryId id = list_.front(); id != kNoEntry; id = list_.next(id)) {
      if (can_evict(id)) return id;
    }
    return kNoEntry;
  }
  std::string_view name() const override { return "lru"; }

 private:
  IdList list_;
};

}  // namespace kvt
