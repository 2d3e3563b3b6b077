// Counters every tier keeps, and the one way counters leave a component: a visitor called once
// per (name, value), as CacheLib Navy's getCounters. The names are the keys of the component's
// object in kvt_stats_json, so a counter added to a visitor shows up there with nothing else to
// change. Relaxed atomics: they are statistics, read while the tier runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "base/counter.h"

namespace kvt {

// (name, value) of one counter or gauge. Same type as NvmeTier::CounterVisitor.
using CounterVisitor = std::function<void(std::string_view name, uint64_t value)>;
// A visitor that writes each counter as out[name] = value.
CounterVisitor JsonCounterVisitor(nlohmann::json* out);

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

  void Visit(const CounterVisitor& visit) const;
  void ToJson(nlohmann::json* out) const { Visit(JsonCounterVisitor(out)); }
};

}  // namespace kvt
