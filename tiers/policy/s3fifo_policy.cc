#include "tiers/policy/s3fifo_policy.h"

namespace kvt {

void S3FifoPolicy::Insert(EntryId id, EntryId, uint64_t fingerprint) {
  if (id >= freq_.size()) {
    freq_.resize(std::max<size_t>(id + 1, freq_.size() * 2), 0);
    fingerprint_.resize(freq_.size(), 0);
  }
  freq_[id] = 0;
  fingerprint_[id] = fingerprint;
  if (GhostTake(fingerprint)) {
    main_.PushBack(id);
  } else {
    small_.PushBack(id);
  }
}

void S3FifoPolicy::Touch(EntryId id) {
  if (id < freq_.size() && freq_[id] < kMaxFreq) ++freq_[id];
}

void S3FifoPolicy::Remove(EntryId id, bool evicted) {
  // Only a block evicted from the small queue is a candidate for a quick return; that is where
  // PickVictim picks its small-queue victims, so record every eviction from small in the ghost.
  if (evicted && small_.Contains(id)) GhostAdd(fingerprint_[id]);
  small_.Erase(id);
  main_.Erase(id);
}

EntryId S3FifoPolicy::PickVictim(const std::function<bool(EntryId)>& can_evict) {
  // Each step either returns, or moves one entry (promotion, lazy reinsertion, or a pinned entry
  // rotated past). A queue whose every entry was rotated past as pinned is exhausted, so the other
  // queue is tried; when both are, nothing can be evicted. The step budget bounds the walk.
  size_t small_skips = 0, main_skips = 0;
  size_t budget = 4 * (small_.size() + main_.size()) + 8;
  while (budget-- > 0) {
    const bool small_done = small_.empty() || small_skips >= small_.size();
    const bool main_done = main_.empty() || main_skips >= main_.size();
    if (small_done && main_done) break;
    const size_t total = small_.size() + main_.size();
    const bool from_small = !small_done && (small_.size() * 10 >= total || main_done);
    if (from_small) {
      EntryId t = small_.front();
      if (!can_evict(t)) {
        small_.MoveToBack(t);
        ++small_skips;
      } else if (freq_[t] >= 1) {
        small_.Erase(t);
        freq_[t] = 0;
        main_.PushBack(t);
      } else {
        return t;
      }
    } else {
      EntryId t = main_.front();
      if (!can_evict(t)) {
        main_.MoveToBack(t);
        ++main_skips;
      } else if (freq_[t] > 0) {
        --freq_[t];
        main_.MoveToBack(t);
      } else {
        return t;
      }
    }
  }
  return kNoEntry;
}

void S3FifoPolicy::GhostAdd(uint64_t fp) {
  const uint64_t seq = ghost_next_seq_++;
  ghost_fifo_.emplace_back(fp, seq);
  ghost_seq_[fp] = seq;
  // The ghost remembers about as many keys as the cache holds.
  const size_t cap = std::max<size_t>(main_.size() + small_.size(), 16);
  while (ghost_fifo_.size() > cap) {
    auto [old_fp, old_seq] = ghost_fifo_.front();
    ghost_fifo_.pop_front();
    auto it = ghost_seq_.find(old_fp);
    if (it != ghost_seq_.end() && it->second == old_seq) ghost_seq_.erase(it);
  }
}

bool S3FifoPolicy::GhostTake(uint64_t fp) { return ghost_seq_.erase(fp) > 0; }

}  // namespace kvt
