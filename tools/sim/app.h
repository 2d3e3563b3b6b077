// kvtier-sim's command line: the flag table, option resolution and the jobs (replay, sweep,
// cluster). main.cc only forwards argv here, so tests drive the whole tool in-process.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "tools/sim/cluster.h"
#include "tools/sim/model.h"
#include "tools/sim/sweep.h"
#include "tools/sim/synth.h"

namespace kvt::sim {

struct CliOptions {
  // Input.
  std::string trace;  // empty: the embedded trace (unless --synth)
  bool synth = false;
  SynthOptions synth_opts;
  bool skip_bad_lines = false;
  uint32_t block_tokens = 512;
  std::string write_trace;
  // Model and compute.
  std::string model = "llama-3-70b";
  std::string geometry;
  std::string kv_dtype = "bf16";
  std::string gpu = "h100";
  uint32_t gpus = 8;
  double mfu = 0.5;
  double prefill_tps = 0;  // 0: from GPU preset and model
  // Tiers.
  struct TierSpec {
    std::string name;
    Capacity cap;
    std::string policy;  // empty: --policy
    std::string admission = "all";
  };
  std::vector<TierSpec> tiers;
  std::string policy = "lru";
  std::optional<Capacity> capacity;  // single-tier shorthand
  std::string nvme_admission;
  bool write_through = false;
  // Links (0: default, scaled by --gpus where per GPU).
  double bw_pcie = 0, bw_nvme_read = 0, bw_nvme_write = 0, bw_net = 0;
  bool overlap = false;
  bool always_load = false;
  double overhead_ms = 0;
  // Measured link figures: kvtier-bench's JSON (--bw-net-from) and the row to take (--bw-net-row;
  // default the first wan/fetch_ row), a fixed latency per request that loads remote blocks.
  std::string bw_net_from, bw_net_row;
  double net_latency_ms = 0;
  // One prompt instead of a replay: load its KV over the net link or recompute it (0: replay).
  uint64_t prompt_tokens = 0;
  // Jobs and output.
  bool json = false;
  bool sweep = false;
  std::vector<Capacity> sweep_caps;
  std::vector<std::string> sweep_policies;
  std::string sweep_metric = "prefix";
  std::string plot = "kvtier-sim-sweep.svg";
  uint32_t nodes = 0;
  std::string routing = "rr";
  double balance = 1.25;
  bool ablation = true;
  bool progress = true;
  bool validate = false;
  uint64_t validate_requests = 2000;
  uint64_t validate_block_bytes = 16384;
  std::string validate_dir;
  bool list_presets = false;
  bool help = false;
  bool default_job = false;  // no arguments at all
};

StatusOr<CliOptions> ParseArgs(const std::vector<std::string>& args);
std::string HelpText();

// Runs what the options ask for; returns the process exit code: 0, 2 for bad input (a value, a
// trace line), 1 for a failure while running or a --validate disagreement. argv0 locates the
// embedded trace.
int RunCli(const CliOptions& o, const std::string& argv0, std::ostream& out, std::ostream& err);

// The embedded default trace (data/traces/conversation_trace.jsonl) found next to the executable
// (walking up from its directory) or in the source tree; empty when not found.
std::string FindEmbeddedTrace(const std::string& argv0);

}  // namespace kvt::sim
