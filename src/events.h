// EventQueue: the store's block events for cache-aware routers (kvt_events_poll). A bounded ring:
// when full, the oldest event is dropped and counted as lost, so a router that polls too rarely
// learns that it missed something (and resynchronizes) instead of the store growing without bound
// or blocking the data path.
//
// STORED: a block became readable (no tier held it before). REMOVED: no tier holds it any more
// (eviction from the last tier holding it, remove, namespace drop, checksum failure).
//
// Thread safety: every method may be called from any thread. Push never blocks on a reader.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <vector>

#include "base/hash.h"

namespace kvt {

enum class EventKind : uint8_t { kStored = 1, kRemoved = 2 };

struct BlockEvent {
  EventKind kind = EventKind::kStored;
  uint64_t ns = 0;
  Hash128 key;
};

class EventQueue {
 public:
  explicit EventQueue(size_t capacity) : ring_(capacity) {}

  void Push(EventKind kind, uint64_t ns, const Hash128& key);
  // Copies up to `cap` events into out, oldest first, and removes them. *lost: events dropped
  // because the queue was full since the previous Poll.
  size_t Poll(BlockEvent* out, size_t cap, uint64_t* lost);

  size_t capacity() const { return ring_.size(); }
  uint64_t pushed() const { return pushed_.load(std::memory_order_relaxed); }
  uint64_t lost_total() const { return lost_total_.load(std::memory_order_relaxed); }
  size_t queued() const;

 private:
  mutable std::mutex mu_;
  std::vector<BlockEvent> ring_;  // GUARDED_BY(mu_)
  size_t head_ = 0;               // GUARDED_BY(mu_): index of the oldest event
  size_t size_ = 0;               // GUARDED_BY(mu_)
  uint64_t lost_since_poll_ = 0;  // GUARDED_BY(mu_)
  std::atomic<uint64_t> pushed_{0}, lost_total_{0};
};

}  // namespace kvt
