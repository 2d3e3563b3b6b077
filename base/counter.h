// Counters: every component counts events in relaxed atomics. They are read only for statistics,
// never to order other memory, so relaxed increments are enough and cost one locked add.
#pragma once

#include <atomic>
#include <cstdint>

namespace kvt {

inline void Add(std::atomic<uint64_t>& c, uint64_t v = 1) {
  c.fetch_add(v, std::memory_order_relaxed);
}

}  // namespace kvt
