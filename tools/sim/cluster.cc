#include "tools/sim/cluster.h"

#include <algorithm>

namespace kvt::sim {

StatusOr<Routing> ParseRouting(std::string_view s) {
  if (s == "rr" || s == "round_robin" || s == "round-robin") return Routing::kRoundRobin;
  if (s == "cache" || s == "cache_aware" || s == "cache-aware") return Routing::kCacheAware;
  return Status::InvalidArgument("routing '" + std::string(s) + "' is not rr or cache");
}

const char* RoutingName(Routing r) { return r == Routing::kRoundRobin ? "rr" : "cache"; }

StatusOr<ClusterResult> RunCluster(const ClusterConfig& c, const SourceFactory& src_factory,
                                   const ProgressFn& progress) {
  if (c.nodes == 0) return Status::InvalidArgument("--nodes must be at least 1");
  ClusterResult out;
  out.nodes = c.nodes;
  out.routing = c.routing;
  out.node_requests.assign(c.nodes, 0);

  std::vector<std::unique_ptr<Simulator>> nodes;
  for (uint32_t i = 0; i < c.nodes; ++i) {
    KVT_ASSIGN_OR_RETURN(auto s, Simulator::Create(c.node));
    nodes.push_back(std::move(s));
  }
  // Recent assignments (a sliding window) for the cache-aware router's load bound.
  const size_t window = 8 * static_cast<size_t>(c.nodes);
  std::vector<uint32_t> recent(window, UINT32_MAX);
  std::vector<uint64_t> in_window(c.nodes, 0);
  const double cap = std::max(1.0, c.balance * static_cast<double>(window) / c.nodes);

  auto src = src_factory();
  const uint64_t total = src->size() * 2;
  Request r;
  uint64_t done = 0;
  uint32_t rr = 0;
  while (src->Next(&r)) {
    uint32_t pick = rr;
    if (c.routing == Routing::kCacheAware) {
      size_t best_hits = 0;
      bool have = false;
      for (uint32_t k = 0; k < c.nodes; ++k) {
        const uint32_t i = (rr + k) % c.nodes;  // rotate so ties spread
        if (static_cast<double>(in_window[i]) + 1 > cap) continue;
        const size_t h = nodes[i]->PrefixHits(r);
        if (!have || h > best_hits || (h == best_hits && in_window[i] < in_window[pick])) {
          pick = i, best_hits = h, have = true;
        }
      }
    }
    rr = (rr + 1) % c.nodes;
    const size_t slot = done % window;
    if (recent[slot] != UINT32_MAX) --in_window[recent[slot]];
    recent[slot] = pick;
    ++in_window[pick];
    nodes[pick]->Process(r);
    ++out.node_requests[pick];
    ++done;
    if (progress && (done & 1023) == 0) progress(done, total);
  }
  for (auto& n : nodes) MergeInto(&out.local, n->Result());

  SimConfig g = c.node;
  for (TierConfig& t : g.tiers) {
    if (t.capacity_blocks != UINT64_MAX) {
      t.capacity_blocks = t.capacity_blocks > UINT64_MAX / c.nodes ? UINT64_MAX
                                                                   : t.capacity_blocks * c.nodes;
    }
  }
  auto gsrc = src_factory();
  const uint64_t base = done;
  KVT_ASSIGN_OR_RETURN(out.global, Replay(g, *gsrc, [&](uint64_t d, uint64_t) {
                         if (progress) progress(base + d, total);
                       }));
  out.local.blocks_unique = out.global.blocks_unique;
  return out;
}

}  // namespace kvt::sim
