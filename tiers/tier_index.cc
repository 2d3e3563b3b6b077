#include "tiers/tier_index.h"

namespace kvt {

EntryId TierIndex::Find(uint64_t ns, const Hash128& key) const {
  auto it = map_.find(BlockId{ns, key});
  return it == map_.end() ? kNoEntry : it->second;
}

EntryId TierIndex::Insert(const BlockMeta& meta, uint64_t slot, uint64_t charge) {
  EntryId id;
  if (!free_ids_.empty()) {
    id = free_ids_.back();
    free_ids_.pop_back();
  } else {
    id = static_cast<EntryId>(entries_.size());
    entries_.emplace_back();
  }
  Entry& e = entries_[id];
  e.meta = meta;
  e.slot = slot;
  e.charge = charge;
  e.live = true;
  charged_ += charge;
  map_.emplace(BlockId{meta.ns, meta.key}, id);
  policy_->Insert(id, Find(meta.ns, meta.parent), meta.key.lo ^ meta.ns);
  return id;
}

void TierIndex::Erase(EntryId id, bool evicted) {
  Entry& e = entries_[id];
  if (!e.live) return;
  policy_->Remove(id, evicted);
  map_.erase(BlockId{e.meta.ns, e.meta.key});
  charged_ -= e.charge;
  e.live = false;
  free_ids_.push_back(id);
}

EntryId TierIndex::PickVictim(const std::function<bool(const Entry&)>& can_evict) {
  return policy_->PickVictim([&](EntryId id) { return can_evict(entries_[id]); });
}

std::vector<BlockId> TierIndex::Ids() const {
  std::vector<BlockId> out;
  out.reserve(map_.size());
  for (const auto& [bid, id] : map_) out.push_back(bid);
  return out;
}

std::vector<EntryId> TierIndex::EntriesOf(uint64_t ns) const {
  std::vector<EntryId> out;
  for (const auto& [bid, id] : map_) {
    if (bid.ns == ns) out.push_back(id);
  }
  return out;
}

}  // namespace kvt
