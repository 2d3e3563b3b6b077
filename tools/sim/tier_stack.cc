#include "tools/sim/tier_stack.h"

namespace kvt::sim {

namespace {
constexpr uint64_t kNs = 1;  // the simulator replays one namespace
bool AnyVictim(const TierIndex::Entry&) { return true; }
}  // namespace

StatusOr<std::unique_ptr<TierStack>> TierStack::Create(const std::vector<TierConfig>& tiers,
                                                       uint64_t block_bytes,
                                                       int write_through_tier) {
  if (tiers.empty()) return Status::InvalidArgument("a tier stack needs at least one tier");
  if (tiers.size() > kMaxTiers) {
    return Status::InvalidArgument("at most " + std::to_string(kMaxTiers) + " tiers");
  }
  if (write_through_tier >= static_cast<int>(tiers.size()) || write_through_tier == 0) {
    return Status::InvalidArgument("write-through tier must be a lower tier of the stack");
  }
  std::unique_ptr<TierStack> s(new TierStack());
  s->block_bytes_ = block_bytes;
  s->write_through_ = write_through_tier;
  for (const TierConfig& c : tiers) {
    Level l;
    l.cfg = c;
    auto policy = MakeEvictionPolicy(c.policy);
    if (!policy.ok()) return policy.status().WithContext("tier " + c.name);
    l.index = std::make_unique<TierIndex>(std::move(policy).value());
    auto admit = MakeAdmissionPolicy(c.admission);
    if (!admit.ok()) return admit.status().WithContext("tier " + c.name);
    l.admit = std::move(admit).value();
    s->tiers_.push_back(std::move(l));
  }
  return s;
}

BlockMeta TierStack::Meta(const Hash128& key, const Hash128& parent) const {
  BlockMeta m;
  m.ns = kNs;
  m.key = key;
  m.parent = parent;
  m.payload_bytes = static_cast<uint32_t>(std::min<uint64_t>(block_bytes_, UINT32_MAX));
  return m;
}

int TierStack::Locate(const Hash128& key) const {
  for (size_t t = 0; t < tiers_.size(); ++t) {
    if (tiers_[t].index->Find(kNs, key) != kNoEntry) return static_cast<int>(t);
  }
  return -1;
}

void TierStack::Prefetch(const Hash128& key) const {
  for (const Level& l : tiers_) l.index->Prefetch(kNs, key);
}

TierStack::Action TierStack::Reference(const Hash128& key, const Hash128& parent, bool load,
                                       double now_s) {
  Level& top = tiers_[0];
  EntryId id = top.index->Find(kNs, key);
  if (id != kNoEntry) {
    top.index->Touch(id);
    ++top.stats.touches;
    return Action::kTouched;
  }
  // Below the top: the highest copy.
  for (size_t t = 1; t < tiers_.size(); ++t) {
    Level& l = tiers_[t];
    EntryId lid = l.index->Find(kNs, key);
    if (lid == kNoEntry) continue;
    l.index->Touch(lid);
    ++l.stats.touches;
    const BlockMeta meta = l.index->Get(lid).meta;
    if (load) {
      ++l.stats.promoted_out;
      Place(0, meta, static_cast<int>(t), now_s);
      return Action::kPromoted;
    }
    Place(0, meta, -1, now_s);
    return Action::kRecomputed;
  }
  const BlockMeta meta = Meta(key, parent);
  Place(0, meta, -1, now_s);
  if (write_through_ > 0) {
    Level& w = tiers_[write_through_];
    if (w.index->Find(kNs, key) == kNoEntry && w.cfg.capacity_blocks > 0) {
      if (w.admit->Admit(meta.key.lo ^ meta.ns, block_bytes_, now_s)) {
        MakeRoom(write_through_, now_s);
        w.index->Insert(meta, 0, 1);
        ++w.stats.written_through;
        ++paths_[(0 + 1) * kMaxTiers + write_through_];
      } else {
        ++w.stats.admission_rejected;
      }
    }
  }
  return Action::kInserted;
}

void TierStack::Place(size_t t, const BlockMeta& meta, int from, double now_s) {
  Level& l = tiers_[t];
  if (l.cfg.capacity_blocks == 0) {
    // Holds nothing: the block passes straight through as if evicted on arrival.
    Demote(t + 1, meta, from, now_s);
    return;
  }
  MakeRoom(t, now_s);
  l.index->Insert(meta, 0, 1);
  ++paths_[(from + 1) * kMaxTiers + t];
  if (from < 0) ++l.stats.computed_in;
  else if (from > static_cast<int>(t)) ++l.stats.promoted_in;
  else ++l.stats.demoted_in;
}

void TierStack::MakeRoom(size_t t, double now_s) {
  Level& l = tiers_[t];
  while (l.index->size() + 1 > l.cfg.capacity_blocks) {
    EntryId v = l.index->PickVictim(AnyVictim);
    if (v == kNoEntry) break;  // nothing evictable (cannot happen: nothing is pinned here)
    const BlockMeta meta = l.index->Get(v).meta;
    l.index->Erase(v, /*evicted=*/true);
    ++l.stats.evicted;
    Demote(t + 1, meta, static_cast<int>(t), now_s);
  }
}

void TierStack::Demote(size_t t, const BlockMeta& meta, int from, double now_s) {
  if (t >= tiers_.size()) {
    if (from >= 0) ++tiers_[from].stats.dropped;
    return;
  }
  Level& l = tiers_[t];
  EntryId id = l.index->Find(meta.ns, meta.key);
  if (id != kNoEntry) {
    l.index->Touch(id);
    ++l.stats.demote_present;
    return;
  }
  if (l.cfg.capacity_blocks > 0 && !l.admit->Admit(meta.key.lo ^ meta.ns, block_bytes_, now_s)) {
    ++l.stats.admission_rejected;
    if (from >= 0) ++tiers_[from].stats.dropped;
    return;
  }
  Place(t, meta, from, now_s);
}

}  // namespace kvt::sim
