// IdList: a doubly linked list over dense EntryIds, stored in two arrays, O(1) push/erase without
// allocation per node. The building block of the LRU and FIFO policies.
#pragma once

#include <vector>

#include "tiers/policy/eviction_policy.h"

namespace kvt {

class IdList {
 public:
  bool Contains(EntryId id) const { return id < in_.size() && in_[id]; }
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  EntryId front() const { return head_; }  // oldest
  EntryId back() const { return tail_; }   // newest
  EntryId next(EntryId id) const { return next_[id]; }

  void PushBack(EntryId id) {
    Grow(id);
    prev_[id] = tail_;
    next_[id] = kNoEntry;
    if (tail_ != kNoEntry) next_[tail_] = id; else head_ = id;
    tail_ = id;
    in_[id] = true;
    ++size_;
  }
  void Erase(EntryId id) {
    if (!Contains(id)) return;
    EntryId p = prev_[id], n = next_[id];
    if (p != kNoEntry) next_[p] = n; else head_ = n;
    if (n != kNoEntry) prev_[n] = p; else tail_ = p;
    in_[id] = false;
    --size_;
  }
  void MoveToBack(EntryId id) {
    Erase(id);
    PushBack(id);
  }

 private:
  void Grow(EntryId id) {
    if (id >= in_.size()) {
      size_t n = std::max<size_t>(id + 1, in_.size() * 2);
      prev_.resize(n, kNoEntry);
      next_.resize(n, kNoEntry);
      in_.resize(n, false);
    }
  }
  std::vector<EntryId> prev_, next_;
  std::vector<bool> in_;
  EntryId head_ = kNoEntry, tail_ = kNoEntry;
  size_t size_ = 0;
};

}  // namespace kvt
