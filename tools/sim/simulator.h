// Simulator: replays requests through a TierStack (the engine's index, policies and admission in
// metadata-only mode) and accounts hit ratios, movement and an estimated TTFT.
//
// Per request, following the definitions of shared/traces/README.md:
//   1. lookup: every block of the request is located (highest tier holding it) before anything
//      changes. A block hit counts here; a prefix hit is a hit before the request's first miss.
//   2. load-versus-recompute: of the P prefix hits, the request loads the first m, m chosen to
//      minimise TTFT(m) = load(m) + compute(rest) (or max of the two with layer-wise overlap).
//   3. insert: the blocks are referenced in hash_ids order (touch, promote, or write computed), so
//      the last block ends most recently used.
//
// Token weighting: each block counts block_tokens tokens except the last, which counts
// input_length - block_tokens * (n - 1).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "tools/sim/stats.h"
#include "tools/sim/tier_stack.h"
#include "tools/sim/trace.h"

namespace kvt::sim {

enum class TierKind { kHbm, kHost, kNvme, kRemote };
StatusOr<TierKind> TierKindOf(std::string_view name);

// Link bandwidths in bytes per second.
struct Links {
  double host_hbm = 50e9;    // PCIe between pinned host RAM and the GPU
  double nvme_read = 12e9;   // NVMe -> host
  double nvme_write = 6e9;   // host -> NVMe (reported as utilisation; off the critical path)
  double net = 12.5e9;       // remote node -> host (100 Gbit/s)
  double net_latency_s = 0;  // added once to a load that takes any block from a remote node
};

// Seconds to move `bytes` from remote nodes: the latency once (when any), then the bandwidth.
inline double NetSeconds(const Links& l, double bytes) {
  return bytes > 0 ? l.net_latency_s + bytes / l.net : 0;
}

struct SimConfig {
  std::vector<TierConfig> tiers;   // top first; capacities in blocks
  uint32_t block_tokens = 512;
  uint64_t block_bytes = 0;        // KV bytes of a full block (one slot)
  uint64_t kv_bytes_per_token = 0;
  double prefill_tps = 0;          // prefill tokens/s; 0 = no TTFT model (every prefix hit loads)
  Links links;
  bool overlap = false;            // layer-wise overlap: TTFT = max(load, compute)
  bool always_load = false;        // skip the decision: load every prefix hit
  double overhead_s = 0;           // fixed per-request latency added to TTFT
  int write_through_tier = -1;
};

struct TierResult {
  TierConfig cfg;
  uint64_t hits = 0;               // blocks found first in this tier at lookup
  uint64_t prefix_hits = 0;        // of those, before the request's first miss
  uint64_t prefix_hit_tokens = 0;
  uint64_t loaded_blocks = 0;      // prefix hits the decision loaded
  uint64_t held_blocks = 0;        // at the end of the replay
  TierMoveStats moves;
  AdmissionStats admission;
  std::string admission_name;
};

struct PathResult {
  std::string name;  // "prefill->hbm", "hbm->host", "nvme->hbm", ...
  uint64_t blocks = 0;
  uint64_t bytes = 0;
};

struct SimResult {
  uint64_t requests = 0, blocks_total = 0, blocks_unique = 0, tokens_total = 0;
  uint64_t block_hits = 0, prefix_hits = 0, prefix_hit_tokens = 0;
  uint64_t first_ts_ms = 0, last_ts_ms = 0;
  std::vector<TierResult> tiers;
  std::vector<PathResult> paths;
  uint64_t block_bytes = 0;
  // Load-versus-recompute decisions, per request.
  uint64_t req_no_prefix_hit = 0, req_load_all = 0, req_load_partial = 0, req_recompute = 0;
  uint64_t loaded_tokens = 0, computed_tokens = 0;
  double prefill_compute_s = 0;  // sum over requests of compute time after the decision
  double nocache_compute_s = 0;  // the same with no cache
  bool has_ttft = false;
  LogHistogram ttft, ttft_nocache;

  double block_hit_ratio() const { return blocks_total ? double(block_hits) / blocks_total : 0; }
  double prefix_hit_ratio() const { return blocks_total ? double(prefix_hits) / blocks_total : 0; }
  double token_hit_ratio() const {
    return tokens_total ? double(prefix_hit_tokens) / tokens_total : 0;
  }
  double ideal_hit_ratio() const {
    return blocks_total ? 1.0 - double(blocks_unique) / blocks_total : 0;
  }
  double span_s() const { return (last_ts_ms - first_ts_ms) / 1000.0; }
  uint64_t bytes_written(std::string_view tier) const;
};

// Adds b's counts into a (cluster aggregation). Tiers must match in number.
void MergeInto(SimResult* a, const SimResult& b);

class Simulator {
 public:
  static StatusOr<std::unique_ptr<Simulator>> Create(const SimConfig& c);
  void Process(const Request& r);
  // Blocks of r's longest prefix cached in any tier; changes nothing (cache-aware routing).
  size_t PrefixHits(const Request& r) const;
  SimResult Result() const;
  const TierStack& stack() const { return *stack_; }
  const SimConfig& config() const { return cfg_; }

  static Hash128 KeyOf(uint64_t id);

 private:
  explicit Simulator(const SimConfig& c) : cfg_(c) {}
  SimConfig cfg_;
  std::unique_ptr<TierStack> stack_;
  std::vector<TierKind> kinds_;
  IdSet unique_;
  SimResult r_;
  std::vector<Hash128> keys_;
  std::vector<int> where_;
  std::vector<uint64_t> tok_;
  bool first_ = true;
};

// A stream of requests in arrival order. size(): how many (for progress), 0 when unknown.
class RequestSource {
 public:
  virtual ~RequestSource() = default;
  virtual bool Next(Request* r) = 0;
  virtual uint64_t size() const = 0;
};
using SourceFactory = std::function<std::unique_ptr<RequestSource>()>;

class TraceSource final : public RequestSource {
 public:
  explicit TraceSource(const Trace* t) : t_(t) {}
  bool Next(Request* r) override {
    if (i_ >= t_->size()) return false;
    *r = t_->at(i_++);
    return true;
  }
  uint64_t size() const override { return t_->size(); }

 private:
  const Trace* t_;
  size_t i_ = 0;
};

// Called every few thousand requests with (done, total); total may be 0.
using ProgressFn = std::function<void(uint64_t, uint64_t)>;

// Replays a whole source through a fresh simulator of config c.
StatusOr<SimResult> Replay(const SimConfig& c, RequestSource& src, const ProgressFn& progress = {});

}  // namespace kvt::sim
