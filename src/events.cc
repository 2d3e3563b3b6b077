#include "src/events.h"

#include "base/counter.h"

namespace kvt {

void EventQueue::Push(EventKind kind, uint64_t ns, const Hash128& key) {
  std::lock_guard<std::mutex> l(mu_);
  Add(pushed_);
  if (ring_.empty()) return;
  if (size_ == ring_.size()) {  // full: the oldest goes
    head_ = (head_ + 1) % ring_.size();
    --size_;
    ++lost_since_poll_;
    Add(lost_total_);
  }
  ring_[(head_ + size_) % ring_.size()] = BlockEvent{kind, ns, key};
  ++size_;
}

size_t EventQueue::Poll(BlockEvent* out, size_t cap, uint64_t* lost) {
  std::lock_guard<std::mutex> l(mu_);
  size_t n = 0;
  while (n < cap && size_ > 0) {
    out[n++] = ring_[head_];
    head_ = (head_ + 1) % ring_.size();
    --size_;
  }
  if (lost != nullptr) *lost = lost_since_poll_;
  lost_since_poll_ = 0;
  return n;
}

size_t EventQueue::queued() const {
  std::lock_guard<std::mutex> l(mu_);
  return size_;
}

}  // namespace kvt
