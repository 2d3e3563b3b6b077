#include "tools/sim/sweep.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "tools/sim/stats.h"

namespace kvt::sim {

StatusOr<Metric> ParseMetric(std::string_view s) {
  if (s == "block") return Metric::kBlock;
  if (s == "prefix") return Metric::kPrefix;
  if (s == "token") return Metric::kToken;
  return Status::InvalidArgument("metric '" + std::string(s) + "' is not block, prefix or token");
}

const char* MetricName(Metric m) {
  return m == Metric::kBlock ? "block" : m == Metric::kPrefix ? "prefix" : "token";
}

StatusOr<SweepResult> RunSweep(const SweepConfig& c, const SourceFactory& src_factory,
                               const ProgressFn& progress) {
  SweepResult out;
  out.block_tokens = c.base.block_tokens;
  out.policies = c.policies;
  out.capacities = c.capacities;
  if (out.capacities.empty()) {
    // One counting pass for the unique blocks.
    IdSet unique;
    auto src = src_factory();
    Request r;
    while (src->Next(&r)) {
      for (uint64_t id : r.hash_ids) unique.Insert(id);
    }
    for (double f : c.fractions) {
      out.capacities.push_back(std::max<uint64_t>(1, std::llround(f * unique.size())));
    }
  }
  std::sort(out.capacities.begin(), out.capacities.end());
  out.capacities.erase(std::unique(out.capacities.begin(), out.capacities.end()),
                       out.capacities.end());
  const uint64_t runs = out.capacities.size() * c.policies.size();
  uint64_t run = 0;
  for (const std::string& pol : c.policies) {
    for (uint64_t cap : out.capacities) {
      SimConfig sc = c.base;
      sc.tiers = {TierConfig{c.tier_name, cap, pol, c.admission}};
      sc.write_through_tier = -1;
      auto src = src_factory();
      const uint64_t per = std::max<uint64_t>(src->size(), 1);
      const auto t0 = std::chrono::steady_clock::now();
      KVT_ASSIGN_OR_RETURN(SimResult r, Replay(sc, *src, [&](uint64_t d, uint64_t) {
                             if (progress) progress(run * per + d, runs * per);
                           }));
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      out.requests = r.requests;
      out.blocks_total = r.blocks_total;
      out.blocks_unique = r.blocks_unique;
      out.points.push_back(SweepPoint{pol, cap, r.block_hit_ratio(), r.prefix_hit_ratio(),
                                      r.token_hit_ratio(), secs});
      ++run;
    }
  }
  return out;
}

PlotSpec SweepPlot(const SweepResult& r, Metric m, const std::string& title) {
  PlotSpec p;
  p.title = title;
  p.x_label = "cache capacity (tokens, " + std::to_string(r.block_tokens) + "-token blocks)";
  p.y_label = std::string(MetricName(m)) + " hit ratio";
  p.log_x = true;
  double top = r.ideal();
  for (const SweepPoint& pt : r.points) top = std::max(top, r.Value(pt, m));
  p.y_min = 0;
  p.y_max = std::min(1.0, std::max(0.1, std::ceil(top * 10 + 0.5) / 10));
  for (const std::string& pol : r.policies) {
    PlotSeries s;
    s.name = pol;
    for (const SweepPoint& pt : r.points) {
      if (pt.policy == pol) {
        s.points.emplace_back(static_cast<double>(pt.capacity_blocks) * r.block_tokens,
                              r.Value(pt, m));
      }
    }
    p.series.push_back(std::move(s));
  }
  char buf[96];
  std::snprintf(buf, sizeof buf, "ideal (infinite cache) %.3f", r.ideal());
  p.ref_lines.push_back(PlotRefLine{buf, r.ideal()});
  return p;
}

}  // namespace kvt::sim
