#include "tiers/policy/tier_counters.h"

#include <nlohmann/json.hpp>

namespace kvt {

CounterVisitor JsonCounterVisitor(nlohmann::json* out) {
  return [out](std::string_view name, uint64_t v) { (*out)[std::string(name)] = v; };
}

void TierCounters::Visit(const CounterVisitor& visit) const {
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  visit("hits", get(hits));
  visit("misses", get(misses));
  visit("inserts", get(inserts));
  visit("duplicate_puts", get(duplicate_puts));
  visit("evictions", get(evictions));
  visit("removals", get(removals));
  visit("rejections", get(rejections));
  visit("collisions", get(collisions));
  visit("checksum_failures", get(checksum_failures));
  visit("bytes_in", get(bytes_in));
  visit("bytes_out", get(bytes_out));
}

}  // namespace kvt
