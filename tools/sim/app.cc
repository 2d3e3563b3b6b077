#include "tools/sim/app.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <ostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "base/units.h"
#include "tools/sim/progress.h"

#ifndef KVT_SOURCE_DIR
#define KVT_SOURCE_DIR ""
#endif

namespace kvt::sim {

namespace {

using Setter = std::function<Status(CliOptions&, std::string_view)>;

struct Flag {
  const char* group;
  const char* name;
  const char* arg;  // nullptr: boolean flag
  const char* help;
  Setter set;
};

Status SetU32(uint32_t* dst, std::string_view v, const char* flag, uint32_t min = 0) {
  auto n = ParseCount(v);
  if (!n.ok() || *n != std::floor(*n) || *n > 4294967295.0 || *n < min) {
    return Status::InvalidArgument(std::string(flag) + " '" + std::string(v) +
                                   "' is not an integer >= " + std::to_string(min));
  }
  *dst = static_cast<uint32_t>(*n);
  return Status::Ok();
}

Status SetPositive(double* dst, std::string_view v, const char* flag) {
  auto n = ParseCount(v);
  if (!n.ok() || *n <= 0) {
    return Status::InvalidArgument(std::string(flag) + " '" + std::string(v) +
                                   "' is not a positive number");
  }
  *dst = *n;
  return Status::Ok();
}

Status SetBw(double* dst, std::string_view v, const char* flag) {
  auto b = ParseBandwidth(v);
  if (!b.ok()) return b.status().WithContext(flag);
  *dst = *b;
  return Status::Ok();
}

Status SetCapacity(CliOptions& o, std::string_view v, const char* unit_suffix) {
  if (o.capacity) return Status::InvalidArgument("give one --capacity* flag");
  std::string text(v);
  if (unit_suffix && v != "inf") text += unit_suffix;
  auto c = ParseCapacity(text);
  if (!c.ok()) return c.status();
  if (unit_suffix && std::string_view(unit_suffix) == "B" && c->unit != Capacity::Unit::kBytes) {
    return Status::InvalidArgument("--capacity-bytes '" + std::string(v) + "' is not a size");
  }
  o.capacity = *c;
  return Status::Ok();
}

std::vector<std::string> SplitList(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t c = s.find(',', start);
    if (c == std::string_view::npos) c = s.size();
    if (c > start) out.emplace_back(s.substr(start, c - start));
    start = c + 1;
  }
  return out;
}

// "NAME=CAPACITY[,policy=P][,admit=A]"
Status ParseTierSpec(std::string_view v, CliOptions::TierSpec* t) {
  auto parts = SplitList(v);
  if (parts.empty()) return Status::InvalidArgument("--tier needs NAME=CAPACITY");
  const size_t eq = parts[0].find('=');
  if (eq == std::string::npos) {
    return Status::InvalidArgument("--tier '" + std::string(v) +
                                   "': expected NAME=CAPACITY[,policy=P][,admit=A]");
  }
  t->name = parts[0].substr(0, eq);
  KVT_RETURN_IF_ERROR(TierKindOf(t->name).status());
  KVT_ASSIGN_OR_RETURN(t->cap, ParseCapacity(parts[0].substr(eq + 1)));
  for (size_t i = 1; i < parts.size(); ++i) {
    const size_t e = parts[i].find('=');
    const std::string k = parts[i].substr(0, e);
    const std::string val = e == std::string::npos ? "" : parts[i].substr(e + 1);
    if (k == "policy") {
      t->policy = val;
    } else if (k == "admit") {
      t->admission = val;
    } else {
      return Status::InvalidArgument("--tier: unknown field '" + k + "' (policy, admit)");
    }
  }
  return Status::Ok();
}

const std::vector<Flag>& Flags() {
  static const std::vector<Flag> kFlags = {
      // Input.
      {"input", "--trace", "FILE",
       "Mooncake jsonl trace (timestamp, input_length, output_length, hash_ids). Default: the "
       "embedded data/traces/conversation_trace.jsonl",
       [](CliOptions& o, std::string_view v) { o.trace = v; return Status::Ok(); }},
      {"input", "--skip-bad-lines", nullptr,
       "skip (and count) malformed lines instead of stopping at the first one",
       [](CliOptions& o, std::string_view) { o.skip_bad_lines = true; return Status::Ok(); }},
      {"input", "--block-tokens", "N", "tokens per block of the trace (512 for Mooncake)",
       [](CliOptions& o, std::string_view v) {
         return SetU32(&o.block_tokens, v, "--block-tokens", 1);
       }},
      {"input", "--synth", "K=V,...",
       "replay a generated trace instead (requests, seed, rate, prompts, prompt_zipf, "
       "prompt_min, prompt_max, docs, doc_zipf, doc_prob, doc_min, doc_max, turns, user_tokens, "
       "output_tokens, max_active, max_context); '--synth default' takes the defaults",
       [](CliOptions& o, std::string_view v) {
         o.synth = true;
         return v == "default" ? Status::Ok() : ParseSynthSpec(v, &o.synth_opts);
       }},
      {"input", "--seed", "N", "seed of the synthetic generator (same seed, same trace)",
       [](CliOptions& o, std::string_view v) {
         auto n = ParseUint(v);
         if (!n.ok()) return n.status().WithContext("--seed");
         o.synth_opts.seed = *n;
         return Status::Ok();
       }},
      {"input", "--write-trace", "FILE", "also write the input trace (e.g. the synthetic one) as "
       "Mooncake jsonl",
       [](CliOptions& o, std::string_view v) { o.write_trace = v; return Status::Ok(); }},
      // Model.
      {"model", "--model", "NAME", "model preset for KV bytes per token (--list-presets)",
       [](CliOptions& o, std::string_view v) { o.model = v; return Status::Ok(); }},
      {"model", "--geometry", "SPEC",
       "explicit geometry instead of a preset: layers=L,kv_heads=H,head_dim=D[,mla][,params=N]",
       [](CliOptions& o, std::string_view v) { o.geometry = v; return Status::Ok(); }},
      {"model", "--kv-dtype", "T", "KV element type: fp16, bf16, fp8_e4m3, int8 (default bf16)",
       [](CliOptions& o, std::string_view v) {
         KVT_RETURN_IF_ERROR(ParseKvDType(v).status());
         o.kv_dtype = v;
         return Status::Ok();
       }},
      {"model", "--gpu", "NAME", "GPU preset for prefill speed (h100, h200, h800, h20, a100, "
       "a800, l40s, b200)",
       [](CliOptions& o, std::string_view v) {
         KVT_RETURN_IF_ERROR(FindGpu(v).status());
         o.gpu = v;
         return Status::Ok();
       }},
      {"model", "--gpus", "N", "GPUs per prefill instance (default 8); scales prefill speed and "
       "the default per-GPU links",
       [](CliOptions& o, std::string_view v) { return SetU32(&o.gpus, v, "--gpus", 1); }},
      {"model", "--mfu", "F", "model FLOPs utilisation of prefill (default 0.5)",
       [](CliOptions& o, std::string_view v) { return SetPositive(&o.mfu, v, "--mfu"); }},
      {"model", "--prefill-tps", "N", "prefill speed in tokens/s (overrides --gpu/--gpus/--mfu)",
       [](CliOptions& o, std::string_view v) {
         return SetPositive(&o.prefill_tps, v, "--prefill-tps");
       }},
      // Tiers.
      {"tiers", "--tier", "NAME=CAP[,policy=P][,admit=A]",
       "add a tier, top first; NAME is hbm, host, nvme or remote; CAP in blocks (1000blk), tokens "
       "(3Mtok) or bytes (512GiB, 1TB) or inf; A: all, seen_twice, budget:BYTES_PER_DAY, joined "
       "by '+'",
       [](CliOptions& o, std::string_view v) {
         CliOptions::TierSpec t;
         KVT_RETURN_IF_ERROR(ParseTierSpec(v, &t));
         for (const auto& x : o.tiers) {
           if (x.name == t.name) return Status::InvalidArgument("tier " + t.name + " given twice");
         }
         o.tiers.push_back(t);
         return Status::Ok();
       }},
      {"tiers", "--policy", "P", "eviction policy: lru, s3fifo, chain_lru (default lru)",
       [](CliOptions& o, std::string_view v) {
         KVT_RETURN_IF_ERROR(MakeEvictionPolicy(v).status());
         o.policy = v;
         return Status::Ok();
       }},
      {"tiers", "--capacity-blocks", "N", "single-tier replay: one 'host' tier of N blocks",
       [](CliOptions& o, std::string_view v) { return SetCapacity(o, v, "blk"); }},
      {"tiers", "--capacity-tokens", "N", "single-tier replay: capacity in tokens (3M, 5e6)",
       [](CliOptions& o, std::string_view v) { return SetCapacity(o, v, "tok"); }},
      {"tiers", "--capacity-bytes", "SIZE", "single-tier replay: capacity in bytes (1TiB)",
       [](CliOptions& o, std::string_view v) { return SetCapacity(o, v, nullptr); }},
      {"tiers", "--capacity", "CAP", "single-tier replay: capacity with unit (1000blk, 3Mtok, "
       "1TiB, inf)",
       [](CliOptions& o, std::string_view v) { return SetCapacity(o, v, nullptr); }},
      {"tiers", "--nvme-admission", "A", "admission policy of the nvme tier (seen_twice, "
       "budget:2TB, seen_twice+budget:2TB)",
       [](CliOptions& o, std::string_view v) {
         KVT_RETURN_IF_ERROR(MakeAdmissionPolicy(v).status());
         o.nvme_admission = v;
         return Status::Ok();
       }},
      {"tiers", "--write-through", nullptr,
       "computed blocks are also written to the nvme tier at once (default: write-back, NVMe "
       "written on eviction from the tier above)",
       [](CliOptions& o, std::string_view) { o.write_through = true; return Status::Ok(); }},
      // Links and TTFT.
      {"links", "--bw-pcie", "RATE", "host<->HBM bandwidth (default 50GB/s per GPU)",
       [](CliOptions& o, std::string_view v) { return SetBw(&o.bw_pcie, v, "--bw-pcie"); }},
      {"links", "--bw-nvme-read", "RATE", "NVMe read bandwidth (default 24GB/s)",
       [](CliOptions& o, std::string_view v) {
         return SetBw(&o.bw_nvme_read, v, "--bw-nvme-read");
       }},
      {"links", "--bw-nvme-write", "RATE", "NVMe write bandwidth (default 12GB/s)",
       [](CliOptions& o, std::string_view v) {
         return SetBw(&o.bw_nvme_write, v, "--bw-nvme-write");
       }},
      {"links", "--bw-net", "RATE", "network bandwidth to remote nodes (default 100Gbit/s per GPU)",
       [](CliOptions& o, std::string_view v) { return SetBw(&o.bw_net, v, "--bw-net"); }},
      {"links", "--bw-net-from", "FILE",
       "take the net bandwidth from kvtier-bench --json output: the goodput (median GB/s) of the "
       "row --bw-net-row, default the first wan/fetch_ row (a prefix fetched across a limited link)",
       [](CliOptions& o, std::string_view v) { o.bw_net_from = v; return Status::Ok(); }},
      {"links", "--bw-net-row", "PATH", "the kvtier-bench row --bw-net-from reads, e.g. "
       "wan/fetch_5000mbit",
       [](CliOptions& o, std::string_view v) { o.bw_net_row = v; return Status::Ok(); }},
      {"links", "--net-latency-ms", "MS",
       "latency added once to a request's load when it takes blocks from a remote node",
       [](CliOptions& o, std::string_view v) {
         auto n = ParseCount(v);
         if (!n.ok() || *n < 0) return Status::InvalidArgument("--net-latency-ms '" + std::string(v) + "'");
         o.net_latency_ms = *n;
         return Status::Ok();
       }},
      {"links", "--prompt-tokens", "N",
       "no replay: for one prompt of N tokens whose KV a remote node holds, the time to load it "
       "over the net link next to the time to recompute it, and the decision",
       [](CliOptions& o, std::string_view v) {
         auto n = ParseCount(v);
         if (!n.ok() || *n < 1) return Status::InvalidArgument("--prompt-tokens '" + std::string(v) + "'");
         o.prompt_tokens = static_cast<uint64_t>(*n);
         return Status::Ok();
       }},
      {"links", "--overlap", nullptr,
       "layer-wise overlap of loading and prefill: TTFT = max(load, compute) instead of the sum",
       [](CliOptions& o, std::string_view) { o.overlap = true; return Status::Ok(); }},
      {"links", "--always-load", nullptr,
       "load every cached prefix block, even where recomputing it would be faster",
       [](CliOptions& o, std::string_view) { o.always_load = true; return Status::Ok(); }},
      {"links", "--overhead-ms", "MS", "fixed per-request latency added to every TTFT",
       [](CliOptions& o, std::string_view v) {
         auto n = ParseCount(v);
         if (!n.ok()) return n.status().WithContext("--overhead-ms");
         o.overhead_ms = *n;
         return Status::Ok();
       }},
      // Jobs and output.
      {"output", "--json", nullptr, "print one JSON object on stdout instead of tables",
       [](CliOptions& o, std::string_view) { o.json = true; return Status::Ok(); }},
      {"output", "--sweep", nullptr,
       "sweep single-tier capacities for several policies: a table and an SVG plot",
       [](CliOptions& o, std::string_view) { o.sweep = true; return Status::Ok(); }},
      {"output", "--sweep-capacities", "LIST", "capacities to sweep (1000blk,3Mtok,1TiB,...); "
       "default: 1,2,5,10,20,30,50,75,100% of the unique blocks",
       [](CliOptions& o, std::string_view v) {
         for (const std::string& s : SplitList(v)) {
           KVT_ASSIGN_OR_RETURN(Capacity c, ParseCapacity(s));
           if (c.unit == Capacity::Unit::kInfinite) {
             return Status::InvalidArgument("--sweep-capacities: 'inf' cannot be plotted");
           }
           o.sweep_caps.push_back(c);
         }
         return Status::Ok();
       }},
      {"output", "--sweep-policies", "LIST", "policies to sweep (default lru,s3fifo,chain_lru)",
       [](CliOptions& o, std::string_view v) {
         for (const std::string& s : SplitList(v)) {
           KVT_RETURN_IF_ERROR(MakeEvictionPolicy(s).status());
           o.sweep_policies.push_back(s);
         }
         return Status::Ok();
       }},
      {"output", "--sweep-metric", "M", "ratio plotted: prefix (default), block or token",
       [](CliOptions& o, std::string_view v) {
         KVT_RETURN_IF_ERROR(ParseMetric(v).status());
         o.sweep_metric = v;
         return Status::Ok();
       }},
      {"output", "--plot", "FILE", "where --sweep writes its SVG (default kvtier-sim-sweep.svg)",
       [](CliOptions& o, std::string_view v) { o.plot = v; return Status::Ok(); }},
      {"output", "--nodes", "N", "cluster mode: N prefill nodes with local caches (the tiers, "
       "per node) against one global pool of N times the size",
       [](CliOptions& o, std::string_view v) { return SetU32(&o.nodes, v, "--nodes", 1); }},
      {"output", "--routing", "R", "cluster routing: rr (round robin, default) or cache "
       "(longest cached prefix, load-bounded)",
       [](CliOptions& o, std::string_view v) {
         KVT_RETURN_IF_ERROR(ParseRouting(v).status());
         o.routing = v;
         return Status::Ok();
       }},
      {"output", "--balance", "F", "cache routing: a node takes at most F times its fair share "
       "of recent requests (default 1.25)",
       [](CliOptions& o, std::string_view v) { return SetPositive(&o.balance, v, "--balance"); }},
      {"output", "--no-ablation", nullptr,
       "skip the extra replays that give TTFT without each tier",
       [](CliOptions& o, std::string_view) { o.ablation = false; return Status::Ok(); }},
      {"output", "--no-progress", nullptr, "never draw the progress bar",
       [](CliOptions& o, std::string_view) { o.progress = false; return Status::Ok(); }},
      {"output", "--validate", nullptr,
       "replay the first requests through a real store (host tier, then NVMe) with real bytes, "
       "in lockstep with the simulator, and check both put every block in the same tier; exits "
       "1 when they differ. Tiers: host[,nvme] from --tier/--capacity, or host at 10% of the "
       "unique blocks over an unbounded nvme",
       [](CliOptions& o, std::string_view) { o.validate = true; return Status::Ok(); }},
      {"output", "--validate-requests", "N", "requests --validate replays (default 2000)",
       [](CliOptions& o, std::string_view v) {
         auto n = ParseUint(v);
         if (!n.ok() || *n == 0) {
           return Status::InvalidArgument("--validate-requests '" + std::string(v) +
                                          "' is not a positive integer");
         }
         o.validate_requests = *n;
         return Status::Ok();
       }},
      {"output", "--validate-block-bytes", "SIZE",
       "payload bytes per block in --validate (default 16KiB; a multiple of 4 KiB)",
       [](CliOptions& o, std::string_view v) {
         auto n = ParseBytes(v);
         if (!n.ok() || *n == 0 || *n % 4096 != 0) {
           return Status::InvalidArgument("--validate-block-bytes '" + std::string(v) +
                                          "' is not a positive multiple of 4 KiB");
         }
         o.validate_block_bytes = *n;
         return Status::Ok();
       }},
      {"output", "--validate-dir", "DIR",
       "store directory for --validate (must not exist; kept afterwards). Default: a fresh "
       "directory under $TMPDIR, removed at the end",
       [](CliOptions& o, std::string_view v) {
         if (v.empty()) return Status::InvalidArgument("--validate-dir: empty path");
         o.validate_dir = v;
         return Status::Ok();
       }},
      {"output", "--list-presets", nullptr, "list model and GPU presets",
       [](CliOptions& o, std::string_view) { o.list_presets = true; return Status::Ok(); }},
      {"output", "--help", nullptr, "this text",
       [](CliOptions& o, std::string_view) { o.help = true; return Status::Ok(); }},
  };
  return kFlags;
}

}  // namespace

StatusOr<CliOptions> ParseArgs(const std::vector<std::string>& args) {
  CliOptions o;
  if (args.empty()) {
    o.default_job = true;
    o.sweep = true;
    return o;
  }
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (a == "-h") a = "--help";
    std::string_view name = a, value;
    bool inline_value = false;
    if (const size_t eq = a.find('='); a.substr(0, 2) == "--" && eq != std::string_view::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      inline_value = true;
    }
    const Flag* f = nullptr;
    for (const Flag& x : Flags()) {
      if (name == x.name) f = &x;
    }
    if (!f) {
      return Status::InvalidArgument("unknown argument '" + std::string(a) +
                                     "' (kvtier-sim --help lists the flags)");
    }
    if (f->arg && !inline_value) {
      if (i + 1 >= args.size()) {
        return Status::InvalidArgument(std::string(f->name) + " needs a value (" + f->arg + ")");
      }
      value = args[++i];
    } else if (!f->arg && inline_value) {
      return Status::InvalidArgument(std::string(f->name) + " takes no value");
    }
    KVT_RETURN_IF_ERROR(f->set(o, value));
  }
  if (o.capacity && !o.tiers.empty()) {
    return Status::InvalidArgument("use either --capacity* (one tier) or --tier, not both");
  }
  if (!o.trace.empty() && o.synth) {
    return Status::InvalidArgument("use either --trace or --synth, not both");
  }
  return o;
}

std::string HelpText() {
  std::ostringstream s;
  s << "kvtier-sim: replay LLM request traces through kvtier's tier index, eviction and "
       "admission code\n(metadata only) and report hit ratios, data movement and estimated "
       "TTFT.\n\nUsage: kvtier-sim [flags]          (no flags: tiered replay + sweep of the "
       "embedded trace)\n       kvtier-sim --trace FILE --policy lru --capacity-blocks N --json\n";
  const char* group = "";
  static const std::pair<const char*, const char*> kGroups[] = {
      {"input", "Input"}, {"model", "Model and prefill compute"}, {"tiers", "Tiers"},
      {"links", "Links and TTFT"}, {"output", "Jobs and output"}};
  for (const Flag& f : Flags()) {
    if (std::string_view(group) != f.group) {
      group = f.group;
      for (const auto& [k, title] : kGroups) {
        if (std::string_view(k) == group) s << "\n" << title << ":\n";
      }
    }
    std::string head = std::string("  ") + f.name + (f.arg ? std::string(" ") + f.arg : "");
    s << head;
    if (head.size() < 34) {
      s << std::string(34 - head.size(), ' ');
    } else {
      s << "\n" << std::string(34, ' ');
    }
    // Wrap the help at ~100 columns.
    std::string word, line;
    std::istringstream in(f.help);
    bool first = true;
    while (in >> word) {
      if (!line.empty() && line.size() + 1 + word.size() > 66) {
        s << (first ? "" : std::string(34, ' ')) << line << "\n";
        first = false;
        line.clear();
      }
      line += (line.empty() ? "" : " ") + word;
    }
    s << (first ? "" : std::string(34, ' ')) << line << "\n";
  }
  s << "\nSee tools/sim/README.md for the model behind every number.\n";
  return s.str();
}

std::string FindEmbeddedTrace(const std::string& argv0) {
  namespace fs = std::filesystem;
  const char* rel = "data/traces/conversation_trace.jsonl";
  std::error_code ec;
  std::vector<fs::path> starts;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) starts.push_back(exe.parent_path());
  if (!argv0.empty()) starts.push_back(fs::absolute(fs::path(argv0), ec).parent_path());
  for (fs::path dir : starts) {
    for (int up = 0; up < 6 && !dir.empty(); ++up) {
      if (fs::exists(dir / rel, ec)) return (dir / rel).string();
      if (fs::exists(dir / "share/kvtier/traces/conversation_trace.jsonl", ec)) {
        return (dir / "share/kvtier/traces/conversation_trace.jsonl").string();
      }
      if (dir == dir.parent_path()) break;
      dir = dir.parent_path();
    }
  }
  const fs::path src = fs::path(KVT_SOURCE_DIR) / rel;
  if (!std::string(KVT_SOURCE_DIR).empty() && fs::exists(src, ec)) return src.string();
  return "";
}

}  // namespace kvt::sim
