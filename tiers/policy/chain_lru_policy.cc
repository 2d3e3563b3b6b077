#include "tiers/policy/chain_lru_policy.h"

namespace kvt {

bool ChainLruPolicy::ParentLinkValid(const Node& n) const {
  return n.parent != kNoEntry && n.parent < nodes_.size() && nodes_[n.parent].live &&
         nodes_[n.parent].incarnation == n.parent_incarnation;
}

void ChainLruPolicy::Insert(EntryId id, EntryId parent, uint64_t) {
  if (id >= nodes_.size()) nodes_.resize(std::max<size_t>(id + 1, nodes_.size() * 2));
  Node& n = nodes_[id];
  n.tick = ++clock_;
  ++n.incarnation;
  n.children = 0;
  n.live = true;
  n.parent = kNoEntry;
  if (parent != kNoEntry && parent != id && parent < nodes_.size() && nodes_[parent].live) {
    Node& p = nodes_[parent];
    n.parent = parent;
    n.parent_incarnation = p.incarnation;
    if (p.children++ == 0) leaves_.erase({p.tick, parent});
  }
  leaves_.insert({n.tick, id});
}

void ChainLruPolicy::Touch(EntryId id) {
  if (id >= nodes_.size() || !nodes_[id].live) return;
  Node& n = nodes_[id];
  if (n.children == 0) leaves_.erase({n.tick, id});
  n.tick = ++clock_;
  if (n.children == 0) leaves_.insert({n.tick, id});
}

void ChainLruPolicy::Remove(EntryId id, bool) {
  if (id >= nodes_.size() || !nodes_[id].live) return;
  Node& n = nodes_[id];
  if (n.children == 0) leaves_.erase({n.tick, id});
  n.live = false;
  if (ParentLinkValid(n)) {
    Node& p = nodes_[n.parent];
    if (--p.children == 0) leaves_.insert({p.tick, n.parent});
  }
  // Children of a removed interior node lose their link lazily: their parent's incarnation
  // no longer matches once the id is reused, and the node is not live before that.
}

EntryId ChainLruPolicy::PickVictim(const std::function<bool(EntryId)>& can_evict) {
  for (const auto& [tick, id] : leaves_) {
    if (can_evict(id)) return id;
  }
  // Every leaf is pinned: fall back to the least recent evictable interior node rather than
  // failing, since a tier that cannot evict must reject writes.
  EntryId best = kNoEntry;
  uint64_t best_tick = UINT64_MAX;
  for (EntryId id = 0; id < nodes_.size(); ++id) {
    const Node& n = nodes_[id];
    if (n.live && n.tick < best_tick && can_evict(id)) {
      best = id;
      best_tick = n.tick;
    }
  }
  return best;
}

}  // namespace kvt
