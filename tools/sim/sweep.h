// Capacity sweep: single-tier replays of one trace at several capacities for several policies,
// rendered as a table and an SVG plot of hit ratio against capacity (one line per policy).
#pragma once

#include <string>
#include <vector>

#include "tools/sim/simulator.h"
#include "tools/sim/svg.h"

namespace kvt::sim {

enum class Metric { kBlock, kPrefix, kToken };
StatusOr<Metric> ParseMetric(std::string_view s);
const char* MetricName(Metric m);

struct SweepConfig {
  SimConfig base;                      // block size, bytes; its tiers are replaced
  std::string tier_name = "host";
  std::vector<uint64_t> capacities;    // blocks; empty: fractions of the unique blocks
  std::vector<double> fractions = {0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0};
  std::vector<std::string> policies = {"lru", "s3fifo", "chain_lru"};
  std::string admission = "all";
};

struct SweepPoint {
  std::string policy;
  uint64_t capacity_blocks = 0;
  double block = 0, prefix = 0, token = 0;
  double seconds = 0;  // wall time of this replay
};

struct SweepResult {
  uint64_t requests = 0, blocks_total = 0, blocks_unique = 0;
  uint32_t block_tokens = 512;
  std::vector<uint64_t> capacities;
  std::vector<std::string> policies;
  std::vector<SweepPoint> points;  // policy-major
  double ideal() const { return blocks_total ? 1.0 - double(blocks_unique) / blocks_total : 0; }
  double Value(const SweepPoint& p, Metric m) const {
    return m == Metric::kBlock ? p.block : m == Metric::kPrefix ? p.prefix : p.token;
  }
};

StatusOr<SweepResult> RunSweep(const SweepConfig& c, const SourceFactory& src,
                               const ProgressFn& progress = {});
PlotSpec SweepPlot(const SweepResult& r, Metric m, const std::string& title);

}  // namespace kvt::sim
