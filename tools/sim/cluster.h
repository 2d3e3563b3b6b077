// Cluster mode: N prefill nodes, each with its own tier stack (the per-node capacities of the
// config), fed by a router (round robin, or cache-aware: the node holding the longest prefix,
// among nodes not over their share of recent requests), against one global pool of the same total
// size (every tier's capacity times N) that all requests share. This is the local-versus-global
// comparison of the Mooncake paper (FAST'25, Fig. 10).
#pragma once

#include <cstdint>
#include <vector>

#include "tools/sim/simulator.h"

namespace kvt::sim {

enum class Routing { kRoundRobin, kCacheAware };
StatusOr<Routing> ParseRouting(std::string_view s);
const char* RoutingName(Routing r);

struct ClusterConfig {
  SimConfig node;
  uint32_t nodes = 2;
  Routing routing = Routing::kRoundRobin;
  double balance = 1.25;  // cache-aware: a node may take at most this times its fair share
};

struct ClusterResult {
  uint32_t nodes = 0;
  Routing routing = Routing::kRoundRobin;
  SimResult local;   // the N local caches, summed
  SimResult global;  // one pool of N times the capacity
  std::vector<uint64_t> node_requests;
};

// Replays the source twice (local, then global); src_factory makes a fresh source per pass.
StatusOr<ClusterResult> RunCluster(const ClusterConfig& c, const SourceFactory& src_factory,
                                   const ProgressFn& progress = {});

}  // namespace kvt::sim
