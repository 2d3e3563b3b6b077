// Counters every tier keeps. Relaxed atomics: they are statistics, read while the tier runs.
#pragma once

#include <atomic>
#include <cstdint>

#include <nlohmann/json_fwd.hpp>

#include "base/counter.h"

namespace kvt {

struct TierCounters {
  std::atomic<uint64_t> hits{0};
  std::atomic<uint64_t> misses{0};
  std::atomic<uint64_t> inserts{0};
  std::atomic<uint64_t> duplicate_puts{0};  // put of a block already stored: refreshed, not copied
  std::atomic<uint64_t> evictions{0};
  std::atomic<uint64_t> removals{0};
  std::atomic<uint64_t> rejections{0};  // puts refused: full and everything pinned
  std::atomic<uint64_t> collisions{0};  // key found but parent/tokens differ: served as a miss
  std::atomic<uint64_t> checksum_failures{0};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};

  void ToJson(nlohmann::json* out) const;
};

}  // namespace kvt
