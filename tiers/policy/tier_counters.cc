#include "tiers/policy/tier_counters.h"

#include <nlohmann/json.hpp>

namespace kvt {

void TierCounters::ToJson(nlohmann::json* out) const {
  auto& j = *out;
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  j["hits"] = get(hits);
  j["misses"] = get(misses);
  j["inserts"] = get(inserts);
  j["duplicate_puts"] = get(duplicate_puts);
  j["evictions"] = get(evictions);
  j["removals"] = get(removals);
  j["rejections"] = get(rejections);
  j["collisions"] = get(collisions);
  j["checksum_failures"] = get(checksum_failures);
  j["bytes_in"] = get(bytes_in);
  j["bytes_out"] = get(bytes_out);
}

}  // namespace kvt
