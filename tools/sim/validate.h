// Validate: checks the simulator against the real engine. The first requests of a trace are
// replayed through a real Store (host tier, and an NVMe tier when configured) with real payload
// bytes, in lockstep with the metadata-only Simulator on the same configuration. Before each
// request both locate every block of it; the two must name the same tier (or both a miss) for
// every block of every request. Every block the store serves is compared byte for byte with the
// bytes put.
//
// The store replay follows the simulator's request model (simulator.h): look up every block first,
// then use the blocks in order: a prefix hit is loaded (Store::Get: a touch in host, a promotion
// from NVMe); any other block is recomputed (Store::Put of its bytes) unless host holds it already
// (Store::Get). Every prefix hit loads (the TTFT model is off), since the store has no compute.
//
// What cannot be compared, and is refused with a message saying why:
//   - an hbm or remote tier (the store's emulated HBM and remote tiers are not part of this check);
//   - an NVMe capacity below the replay's unique blocks: the engine reclaims NVMe a whole segment
//     at a time, oldest first, which a block-granular eviction policy does not model; the check
//     sizes the NVMe tier so that it never reclaims;
//   - a budget admission policy: the engine meters its write budget by the wall clock, the
//     simulator by trace time;
//   - write-through with an admission policy other than all: the engine's write-through writes
//     every put (durability is its point) while the simulator offers it to admission.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/status.h"
#include "tools/sim/simulator.h"

namespace kvt::sim {

struct ValidateConfig {
  SimConfig sim;                 // tiers: host, or host then nvme; capacities in blocks. No
                                 // tiers: host at 10% of the replay's unique blocks, then nvme
  std::string policy = "lru";    // host policy of the default tiers
  uint64_t max_requests = 2000;  // the first requests of the source
  uint64_t block_bytes = 16384;  // real payload bytes per block (a multiple of 4 KiB)
  std::string dir;               // store directory, must not exist; empty: a fresh one under /tmp
};

struct ValidateTier {
  std::string name;
  uint64_t capacity_blocks = 0;  // UINT64_MAX: unbounded (sized to never reclaim)
  uint64_t sim_hits = 0, store_hits = 0;
  uint64_t sim_prefix_hits = 0, store_prefix_hits = 0;
};

struct ValidateReport {
  SimResult sim;  // the metadata-only run over the same requests
  uint64_t requests = 0, blocks_total = 0, blocks_unique = 0, tokens_total = 0;
  uint64_t store_block_hits = 0, store_prefix_hits = 0, store_prefix_hit_tokens = 0;
  std::vector<ValidateTier> tiers;
  uint64_t mismatched_blocks = 0;  // blocks the two located in different tiers
  std::string first_mismatch;      // request and block index, and what each said
  uint64_t gets = 0, puts = 0, bytes_checked = 0;
  uint64_t wrong_blocks = 0;       // served with bytes other than those put (must be 0)
  uint64_t failed_calls = 0;       // store calls that failed (must be 0)
  std::string first_failure;
  // Movement the two must also agree on.
  uint64_t sim_nvme_writes = 0, store_nvme_writes = 0;
  uint64_t sim_promotions = 0, store_promotions = 0;
  double seconds = 0;

  double store_block_hit_ratio() const {
    return blocks_total ? double(store_block_hits) / blocks_total : 0;
  }
  double store_prefix_hit_ratio() const {
    return blocks_total ? double(store_prefix_hits) / blocks_total : 0;
  }
  double store_token_hit_ratio() const {
    return tokens_total ? double(store_prefix_hit_tokens) / tokens_total : 0;
  }
  bool agree() const {
    return mismatched_blocks == 0 && wrong_blocks == 0 && failed_calls == 0 &&
           store_block_hits == sim.block_hits && store_prefix_hits == sim.prefix_hits &&
           store_prefix_hit_tokens == sim.prefix_hit_tokens &&
           sim_nvme_writes == store_nvme_writes && sim_promotions == store_promotions;
  }
};

// Runs the check over the first cfg.max_requests requests of src. An error status for a setup that
// cannot be compared (see above) or a store that cannot be opened; otherwise the report, whose
// agree() says whether the simulator and the store behaved the same.
StatusOr<ValidateReport> Validate(const ValidateConfig& cfg, RequestSource& src);

// The report as one JSON object (`agree`, `requests`, `simulator{...}`, `store{...}`, `tiers[]`,
// `mismatched_blocks`, `wrong_blocks`, ...), and as a table for people.
nlohmann::json ValidateJson(const ValidateReport& r);
void PrintValidate(const ValidateReport& r, std::ostream& out);

}  // namespace kvt::sim
