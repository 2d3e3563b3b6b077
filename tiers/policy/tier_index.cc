#include "tiers/policy/tier_index.h"

namespace kvt {

uint32_t TierIndex::Tag(uint64_t ns, const Hash128& key) {
  // Keys are uniform hashes already (XXH3, or the simulator's mixed ids); fold in the namespace
  // so one key in two namespaces lands apart, and finish with a multiply so every bit mixes.
  uint64_t h = key.lo ^ (key.hi * 0x9E3779B97F4A7C15ull) ^ (ns * 0xC2B2AE3D27D4EB4Full);
  h *= 0xFF51AFD7ED558CCDull;
  return static_cast<uint32_t>(h >> 32);
}

EntryId TierIndex::Find(uint64_t ns, const Hash128& key) const {
  const uint32_t tag = Tag(ns, key);
  const size_t mask = slots_.size() - 1;
  for (size_t i = Home(tag);; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.id == kNoEntry) return kNoEntry;
    if (s.tag == tag) {
      const BlockMeta& m = entries_[s.id].meta;
      if (m.key == key && m.ns == ns) return s.id;
    }
  }
}

size_t TierIndex::SlotOf(EntryId id) const {
  const BlockMeta& m = entries_[id].meta;
  const size_t mask = slots_.size() - 1;
  size_t i = Home(Tag(m.ns, m.key));
  while (slots_[i].id != id) i = (i + 1) & mask;
  return i;
}

void TierIndex::Grow() {
  std::vector<Slot> old = std::move(slots_);
  ++bits_;
  slots_.assign(size_t{1} << bits_, Slot{});
  const size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.id == kNoEntry) continue;
    size_t i = Home(s.tag);
    while (slots_[i].id != kNoEntry) i = (i + 1) & mask;
    slots_[i] = s;
  }
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
  if (2 * (size_ + 1) > slots_.size()) Grow();
  const uint32_t tag = Tag(meta.ns, meta.key);
  const size_t mask = slots_.size() - 1;
  size_t i = Home(tag);
  while (slots_[i].id != kNoEntry) i = (i + 1) & mask;
  slots_[i] = Slot{tag, id};
  ++size_;
  policy_->Insert(id, Find(meta.ns, meta.parent), meta.key.lo ^ meta.ns);
  return id;
}

void TierIndex::Erase(EntryId id, bool evicted) {
  Entry& e = entries_[id];
  if (!e.live) return;
  policy_->Remove(id, evicted);
  // Backward-shift deletion: pull later members of the probe run into the hole unless their home
  // lies cyclically in (hole, their slot], so every run stays unbroken and no tombstones pile up.
  const size_t mask = slots_.size() - 1;
  size_t hole = SlotOf(id);
  for (size_t j = (hole + 1) & mask; slots_[j].id != kNoEntry; j = (j + 1) & mask) {
    const size_t home = Home(slots_[j].tag);
    const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (stays) continue;
    slots_[hole] = slots_[j];
    hole = j;
  }
  slots_[hole] = Slot{};
  --size_;
  charged_ -= e.charge;
  e.live = false;
  free_ids_.push_back(id);
}

EntryId TierIndex::PickVictim(const std::function<bool(const Entry&)>& can_evict) {
  return policy_->PickVictim([&](EntryId id) { return can_evict(entries_[id]); });
}

std::vector<BlockId> TierIndex::Ids() const {
  std::vector<BlockId> out;
  out.reserve(size_);
  for (const Entry& e : entries_) {
    if (e.live) out.push_back(BlockId{e.meta.ns, e.meta.key});
  }
  return out;
}

std::vector<EntryId> TierIndex::EntriesOf(uint64_t ns) const {
  std::vector<EntryId> out;
  for (EntryId id = 0; id < entries_.size(); ++id) {
    if (entries_[id].live && entries_[id].meta.ns == ns) out.push_back(id);
  }
  return out;
}

}  // namespace kvt
