// RunCli: resolves the options into a simulator setup and runs the jobs (replay with per-tier
// ablations, sweep, cluster), printing tables or one JSON object.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <ostream>

#include <nlohmann/json.hpp>

#include "base/units.h"
#include "tools/sim/app.h"
#include "tools/sim/progress.h"
#include "tools/sim/text.h"
#include "tools/sim/validate.h"

namespace kvt::sim {

namespace {

using json = nlohmann::json;

struct Setup {
  std::string source_desc;
  Trace trace;  // when replaying a file
  LoadStats load;
  bool synth = false;
  SynthOptions synth_opts;
  ModelSpec model;
  std::string compute_desc;
  std::string net_desc;  // where the net bandwidth came from
  SimConfig cfg;
  SourceFactory factory() const {
    if (synth) {
      SynthOptions so = synth_opts;
      return [so] { return std::unique_ptr<RequestSource>(new SyntheticSource(so)); };
    }
    const Trace* t = &trace;
    return [t] { return std::unique_ptr<RequestSource>(new TraceSource(t)); };
  }
};

// Strings in the report (a trace path, a quoted bad line) may hold bytes that are not UTF-8:
// replace them rather than let dump() throw.
std::string DumpJson(const json& j) {
  return j.dump(2, ' ', false, json::error_handler_t::replace);
}

std::string CapText(uint64_t blocks) { return blocks == UINT64_MAX ? "inf" : Thousands(blocks); }

// The goodput of one kvtier-bench row (median GB/s of results[]), bytes/s.
StatusOr<double> BenchGoodput(const std::string& path, std::string* row) {
  std::ifstream f(path);
  if (!f) return Status::NotFound("--bw-net-from " + path + ": cannot read it");
  const json j = json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("results") || !j["results"].is_array()) {
    return Status::InvalidArgument("--bw-net-from " + path + ": not kvtier-bench --json output");
  }
  for (const json& e : j["results"]) {
    if (!e.is_object() || !e.contains("path") || !e["path"].is_string()) continue;
    const std::string p = e["path"].get<std::string>();
    const bool match = row->empty() ? p.rfind("wan/fetch_", 0) == 0 && p.find("1conn") == std::string::npos
                                    : p == *row;
    if (!match) continue;
    if (!e.contains("gbps") || !e["gbps"].is_number() || e["gbps"].get<double>() <= 0) {
      return Status::InvalidArgument("--bw-net-from " + path + ": row " + p + " has no goodput");
    }
    *row = p;
    return e["gbps"].get<double>() * 1e9;
  }
  return Status::NotFound("--bw-net-from " + path + ": no row " +
                          (row->empty() ? std::string("wan/fetch_*") : *row) +
                          " (run kvtier-bench as root, where the wan/ rows are measured)");
}

Status Resolve(const CliOptions& o, const std::string& argv0, Setup* s, std::ostream& err) {
  // Input (none for a single prompt).
  if (o.prompt_tokens > 0) {
    s->synth = true;
    s->source_desc = "one prompt";
  } else if (o.synth) {
    s->synth = true;
    s->synth_opts = o.synth_opts;
    s->synth_opts.block_tokens = o.block_tokens;
    s->source_desc = DescribeSynth(s->synth_opts);
  } else {
    std::string path = o.trace;
    if (path.empty()) {
      path = FindEmbeddedTrace(argv0);
      if (path.empty()) {
        return Status::NotFound(
            "no --trace given and the embedded data/traces/conversation_trace.jsonl was not "
            "found next to the executable or in the source tree");
      }
    }
    LoadOptions lo;
    lo.skip_bad_lines = o.skip_bad_lines;
    lo.block_tokens = o.block_tokens;
    KVT_ASSIGN_OR_RETURN(s->trace, LoadMooncakeJsonl(path, lo, &s->load));
    if (s->load.bad_lines) {
      err << "kvtier-sim: skipped " << s->load.bad_lines << " malformed line(s); first: "
          << s->load.first_error << "\n";
    }
    if (s->load.reordered) err << "kvtier-sim: " << path << " was not sorted by timestamp; "
                               << "replaying it stable-sorted\n";
    s->source_desc = path;
  }
  // Model and compute.
  KVT_ASSIGN_OR_RETURN(DType dt, ParseKvDType(o.kv_dtype));
  if (!o.geometry.empty()) {
    KVT_ASSIGN_OR_RETURN(s->model, ModelFromGeometry(o.geometry, dt, o.block_tokens));
  } else {
    KVT_ASSIGN_OR_RETURN(s->model, ModelFromPreset(o.model, dt, o.block_tokens));
  }
  SimConfig& c = s->cfg;
  c.block_tokens = o.block_tokens;
  c.block_bytes = s->model.geometry.BlockBytes();
  c.kv_bytes_per_token = s->model.kv_bytes_per_token();
  if (o.prefill_tps > 0) {
    c.prefill_tps = o.prefill_tps;
    s->compute_desc = "prefill " + FormatCount(o.prefill_tps) + " tokens/s (--prefill-tps)";
  } else {
    KVT_ASSIGN_OR_RETURN(const GpuPreset* g, FindGpu(o.gpu));
    if (s->model.active_params <= 0) {
      return Status::InvalidArgument("--geometry without params=N needs --prefill-tps");
    }
    c.prefill_tps = g->dense_bf16_flops * o.gpus * o.mfu / (2.0 * s->model.active_params);
    s->compute_desc = "prefill " + FormatCount(std::round(c.prefill_tps)) + " tokens/s (" +
                      std::to_string(o.gpus) + "x " + g->name + ", MFU " + Fmt("%.2f", o.mfu) +
                      ", 2 x " + FormatCount(s->model.active_params) + " FLOP/token)";
  }
  c.links.host_hbm = o.bw_pcie > 0 ? o.bw_pcie : 50e9 * o.gpus;
  c.links.nvme_read = o.bw_nvme_read > 0 ? o.bw_nvme_read : 24e9;
  c.links.nvme_write = o.bw_nvme_write > 0 ? o.bw_nvme_write : 12e9;
  c.links.net = o.bw_net > 0 ? o.bw_net : 12.5e9 * o.gpus;
  s->net_desc = o.bw_net > 0 ? "--bw-net" : "default, 100 Gbit/s per GPU";
  if (!o.bw_net_from.empty()) {
    if (o.bw_net > 0) return Status::InvalidArgument("give --bw-net or --bw-net-from, not both");
    std::string row = o.bw_net_row;
    KVT_ASSIGN_OR_RETURN(c.links.net, BenchGoodput(o.bw_net_from, &row));
    s->net_desc = "measured: " + row + " in " + o.bw_net_from;
  } else if (!o.bw_net_row.empty()) {
    return Status::InvalidArgument("--bw-net-row needs --bw-net-from");
  }
  c.links.net_latency_s = o.net_latency_ms / 1000.0;
  c.overlap = o.overlap;
  c.always_load = o.always_load;
  c.overhead_s = o.overhead_ms / 1000.0;
  // Tiers.
  std::vector<CliOptions::TierSpec> specs = o.tiers;
  if (o.capacity) {
    specs = {CliOptions::TierSpec{"host", *o.capacity, "", "all"}};
  } else if (specs.empty()) {
    // The default hierarchy of one prefill node.
    specs = {CliOptions::TierSpec{"hbm", *ParseCapacity("64GiB"), "", "all"},
             CliOptions::TierSpec{"host", *ParseCapacity("1TiB"), "", "all"},
             CliOptions::TierSpec{"nvme", *ParseCapacity("8TB"), "", "all"}};
  }
  static const char* kOrder[] = {"hbm", "host", "nvme", "remote"};
  int last_rank = -1;
  for (const auto& t : specs) {
    int rank = 0;
    while (t.name != kOrder[rank]) ++rank;
    if (rank <= last_rank) {
      return Status::InvalidArgument("tiers must be given top first: hbm, host, nvme, remote");
    }
    last_rank = rank;
    TierConfig tc;
    tc.name = t.name;
    tc.capacity_blocks = t.cap.Blocks(c.block_bytes, c.block_tokens);
    tc.policy = t.policy.empty() ? o.policy : t.policy;
    tc.admission = t.admission;
    if (t.name == "nvme" && !o.nvme_admission.empty()) tc.admission = o.nvme_admission;
    c.tiers.push_back(tc);
  }
  if (!o.nvme_admission.empty() &&
      std::none_of(c.tiers.begin(), c.tiers.end(), [](auto& t) { return t.name == "nvme"; })) {
    return Status::InvalidArgument("--nvme-admission given but there is no nvme tier");
  }
  if (o.write_through) {
    for (size_t t = 1; t < c.tiers.size(); ++t) {
      if (c.tiers[t].name == "nvme") c.write_through_tier = static_cast<int>(t);
    }
    if (c.write_through_tier < 0) {
      return Status::InvalidArgument("--write-through needs an nvme tier below the top tier");
    }
  }
  return Status::Ok();
}

json Ratios(double block, double prefix, double token) {
  return json{{"block_hit_ratio", block}, {"prefix_hit_ratio", prefix}, {"token_hit_ratio", token}};
}

json TtftJson(const LogHistogram& h) {
  return json{{"p50", h.Quantile(0.5)}, {"p90", h.Quantile(0.9)}, {"p99", h.Quantile(0.99)},
              {"mean", h.mean()}, {"max", h.max()}};
}

json SummaryJson(const SimResult& r) {
  json j;
  j["requests"] = r.requests;
  j["blocks_total"] = r.blocks_total;
  j["blocks_unique"] = r.blocks_unique;
  j["tokens_total"] = r.tokens_total;
  j["ideal_hit_ratio"] = r.ideal_hit_ratio();
  j["block_hit_ratio"] = r.block_hit_ratio();
  j["prefix_hit_ratio"] = r.prefix_hit_ratio();
  j["token_hit_ratio"] = r.token_hit_ratio();
  j["block_hits"] = r.block_hits;
  j["prefix_hits"] = r.prefix_hits;
  j["prefix_hit_tokens"] = r.prefix_hit_tokens;
  json tiers = json::array();
  for (const TierResult& t : r.tiers) {
    json x;
    x["name"] = t.cfg.name;
    x["capacity_blocks"] =
        t.cfg.capacity_blocks == UINT64_MAX ? json(nullptr) : json(t.cfg.capacity_blocks);
    x["capacity_bytes"] = t.cfg.capacity_blocks == UINT64_MAX
                              ? json(nullptr)
                              : json(t.cfg.capacity_blocks * r.block_bytes);
    x["policy"] = t.cfg.policy;
    x["admission"] = t.admission_name;
    x["hits"] = t.hits;
    x["block_hit_ratio"] = r.blocks_total ? double(t.hits) / r.blocks_total : 0;
    x["prefix_hits"] = t.prefix_hits;
    x["prefix_hit_ratio"] = r.blocks_total ? double(t.prefix_hits) / r.blocks_total : 0;
    x["token_hit_ratio"] = r.tokens_total ? double(t.prefix_hit_tokens) / r.tokens_total : 0;
    x["loaded_blocks"] = t.loaded_blocks;
    x["held_blocks"] = t.held_blocks;
    const TierMoveStats& m = t.moves;
    x["moves"] = json{{"computed_in", m.computed_in},     {"promoted_in", m.promoted_in},
                      {"promoted_out", m.promoted_out},   {"demoted_in", m.demoted_in},
                      {"demote_present", m.demote_present}, {"written_through", m.written_through},
                      {"evicted", m.evicted},             {"dropped", m.dropped},
                      {"admission_rejected", m.admission_rejected}};
    x["blocks_written"] = m.written();
    x["bytes_written"] = m.written() * r.block_bytes;
    x["admission_stats"] = json{{"offered", t.admission.offered},
                                {"admitted", t.admission.admitted},
                                {"rejected", t.admission.rejected}};
    tiers.push_back(x);
  }
  j["tiers"] = tiers;
  json paths = json::array();
  for (const PathResult& p : r.paths) {
    paths.push_back(json{{"path", p.name}, {"blocks", p.blocks}, {"bytes", p.bytes}});
  }
  j["paths"] = paths;
  const uint64_t nvme = r.bytes_written("nvme");
  j["nvme_bytes_written"] = nvme;
  j["nvme_bytes_written_per_day"] = r.span_s() > 0 ? nvme * 86400.0 / r.span_s() : 0.0;
  j["span_s"] = r.span_s();
  j["decisions"] = json{{"no_prefix_hit", r.req_no_prefix_hit},
                        {"load_all", r.req_load_all},
                        {"load_partial", r.req_load_partial},
                        {"recompute", r.req_recompute}};
  j["loaded_tokens"] = r.loaded_tokens;
  j["computed_tokens"] = r.computed_tokens;
  j["prefill_compute_s"] = r.prefill_compute_s;
  j["nocache_compute_s"] = r.nocache_compute_s;
  return j;
}

void PrintHitTable(const SimResult& r, std::ostream& out) {
  out << "hit ratios                                        block   prefix    token\n";
  auto row = [&](const std::string& label, double b, double p, double t) {
    out << "  " << Pad(label, 46) << Pad(Fmt("%.4f", b), 7, true) << Pad(Fmt("%.4f", p), 9, true)
        << Pad(Fmt("%.4f", t), 9, true) << "\n";
  };
  row("all tiers", r.block_hit_ratio(), r.prefix_hit_ratio(), r.token_hit_ratio());
  for (const TierResult& t : r.tiers) {
    row(t.cfg.name + " (" + CapText(t.cfg.capacity_blocks) + " blocks, " + t.cfg.policy + ")",
        r.blocks_total ? double(t.hits) / r.blocks_total : 0,
        r.blocks_total ? double(t.prefix_hits) / r.blocks_total : 0,
        r.tokens_total ? double(t.prefix_hit_tokens) / r.tokens_total : 0);
  }
  out << "  " << Pad("ideal (infinite cache: 1 - unique/total)", 46)
      << Pad(Fmt("%.4f", r.ideal_hit_ratio()), 7, true) << "\n";
}

void PrintReplay(const Setup& s, const SimResult& r,
                 const std::vector<std::pair<std::string, SimResult>>& ablations, double secs,
                 std::ostream& out) {
  out << "trace   " << s.source_desc << "\n        " << Thousands(r.requests) << " requests, "
      << Thousands(r.blocks_total) << " blocks (" << Thousands(r.blocks_unique) << " unique), "
      << Thousands(r.tokens_total) << " input tokens, span " << Fmt("%.1f", r.span_s() / 60)
      << " min\n";
  out << "model   " << s.model.name << " " << DTypeName(s.model.geometry.dtype) << ": "
      << FormatBytes(s.cfg.kv_bytes_per_token) << "/token, " << FormatBytes(s.cfg.block_bytes)
      << " per " << s.cfg.block_tokens << "-token block; " << s.compute_desc << "\n\n";
  PrintHitTable(r, out);

  out << "\ntier    capacity             policy     admission          held      evicted"
         "      dropped  written\n";
  for (const TierResult& t : r.tiers) {
    std::string cap = t.cfg.capacity_blocks == UINT64_MAX
                          ? "inf"
                          : FormatBytes(t.cfg.capacity_blocks * r.block_bytes);
    out << "  " << Pad(t.cfg.name, 6) << Pad(cap, 21) << Pad(t.cfg.policy, 11)
        << Pad(t.admission_name, 16) << Pad(Thousands(t.held_blocks), 9, true)
        << Pad(Thousands(t.moves.evicted), 13, true) << Pad(Thousands(t.moves.dropped), 13, true)
        << "  " << FormatBytes(t.moves.written() * r.block_bytes) << "\n";
    if (t.admission.offered && t.admission_name != "all") {
      out << "          admission: " << Thousands(t.admission.offered) << " offered, "
          << Thousands(t.admission.admitted) << " admitted, " << Thousands(t.admission.rejected)
          << " rejected\n";
    }
  }
  out << "\ndata movement          blocks        bytes\n";
  for (const PathResult& p : r.paths) {
    out << "  " << Pad(p.name, 16) << Pad(Thousands(p.blocks), 12, true) << "  "
        << FormatBytes(p.bytes) << "\n";
  }
  const uint64_t nvme = r.bytes_written("nvme");
  if (std::any_of(r.tiers.begin(), r.tiers.end(), [](auto& t) { return t.cfg.name == "nvme"; })) {
    const double per_day = r.span_s() > 0 ? nvme * 86400.0 / r.span_s() : 0;
    const double util = r.span_s() > 0 ? nvme / r.span_s() / s.cfg.links.nvme_write : 0;
    out << "  NVMe written: " << FormatBytes(nvme) << " in " << Fmt("%.1f", r.span_s() / 60)
        << " min = " << FormatBytes(static_cast<uint64_t>(per_day)) << "/day ("
        << Fmt("%.1f", util * 100) << "% of " << FormatRate(s.cfg.links.nvme_write)
        << " write bandwidth)\n";
  }
  out << "\nload vs recompute (per request): " << Thousands(r.req_load_all)
      << " loaded their whole cached prefix, " << Thousands(r.req_load_partial)
      << " part of it, " << Thousands(r.req_recompute) << " recomputed it, "
      << Thousands(r.req_no_prefix_hit) << " had no prefix hit\n";
  out << "links: host<->hbm " << FormatRate(s.cfg.links.host_hbm) << ", nvme read "
      << FormatRate(s.cfg.links.nvme_read) << ", net " << FormatRate(s.cfg.links.net) << " ("
      << s.net_desc << (s.cfg.links.net_latency_s > 0
                            ? ", +" + Fmt("%.1f", s.cfg.links.net_latency_s * 1e3) + " ms"
                            : std::string())
      << ")"
      << (s.cfg.overlap ? "; layer-wise overlap" : "; load then compute") << "\n";
  out << "\nTTFT estimate (no queueing)       p50        p90        p99       mean\n";
  auto trow = [&](const std::string& label, const LogHistogram& h) {
    out << "  " << Pad(label, 26) << Pad(FormatSeconds(h.Quantile(0.5)), 11, true)
        << Pad(FormatSeconds(h.Quantile(0.9)), 11, true)
        << Pad(FormatSeconds(h.Quantile(0.99)), 11, true) << Pad(FormatSeconds(h.mean()), 11, true)
        << "\n";
  };
  trow("all tiers", r.ttft);
  for (const auto& [name, a] : ablations) trow("without " + name, a.ttft);
  trow("no cache", r.ttft_nocache);
  out << "prefill GPU time " << Fmt("%.1f", r.prefill_compute_s) << " s (no cache "
      << Fmt("%.1f", r.nocache_compute_s) << " s: "
      << Fmt("%.2fx", r.nocache_compute_s > 0 ? r.prefill_compute_s / r.nocache_compute_s : 0)
      << ")\n";
  out << "replay  " << Fmt("%.3f", secs) << " s (" << FormatCount(std::round(r.requests / secs))
      << " requests/s)\n";
}

SimConfig Without(const SimConfig& c, size_t drop) {
  SimConfig a = c;
  a.tiers.erase(a.tiers.begin() + static_cast<std::ptrdiff_t>(drop));
  if (a.write_through_tier >= 0) {
    if (static_cast<size_t>(a.write_through_tier) == drop) a.write_through_tier = -1;
    else if (static_cast<size_t>(a.write_through_tier) > drop) --a.write_through_tier;
    if (a.write_through_tier == 0) a.write_through_tier = -1;
  }
  return a;
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// --validate: the simulator against a real store (validate.h). Exit 0 when they agree, 1 when not.
int RunValidate(const CliOptions& o, const Setup& s, std::ostream& out, std::ostream& err) {
  ValidateConfig vc;
  vc.sim = s.cfg;
  if (o.tiers.empty() && !o.capacity) vc.sim.tiers.clear();  // the validate default
  vc.policy = o.policy;
  vc.max_requests = o.validate_requests;
  vc.block_bytes = o.validate_block_bytes;
  vc.dir = o.validate_dir;
  auto src = s.factory()();
  auto r = Validate(vc, *src);
  if (!r.ok()) {
    err << "kvtier-sim: " << r.status().message() << "\n";
    return 1;
  }
  if (o.json) {
    json j = ValidateJson(*r);
    j["source"] = s.source_desc;
    out << DumpJson(j) << "\n";
  } else {
    PrintValidate(*r, out);
  }
  return r->agree() ? 0 : 1;
}

}  // namespace

// One prompt whose KV a remote node holds: load it over the net link (then host->HBM), or
// recompute it. Compute is the sim's prefill model (2 x active params FLOP per token, no
// attention term), so recompute is if anything underestimated for long prompts.
int RunPrompt(const CliOptions& o, const Setup& s, std::ostream& out) {
  const SimConfig& c = s.cfg;
  const double tokens = static_cast<double>(o.prompt_tokens);
  const double bytes = tokens * static_cast<double>(c.kv_bytes_per_token);
  const double net_s = NetSeconds(c.links, bytes);
  const double load_s = std::max(net_s, bytes / c.links.host_hbm);
  const double compute_s = c.prefill_tps > 0 ? tokens / c.prefill_tps : 0;
  const double ttft_load = load_s + 1 / std::max(c.prefill_tps, 1.0);  // then the last token
  const bool load = c.prefill_tps > 0 && ttft_load < compute_s;
  if (o.json) {
    json doc;
    doc["model"] = s.model.name;
    doc["kv_dtype"] = DTypeName(s.model.geometry.dtype);
    doc["prompt_tokens"] = o.prompt_tokens;
    doc["kv_bytes"] = bytes;
    doc["net_bytes_per_s"] = c.links.net;
    doc["net_source"] = s.net_desc;
    doc["net_latency_s"] = c.links.net_latency_s;
    doc["prefill_tokens_per_s"] = c.prefill_tps;
    doc["load_s"] = load_s;
    doc["recompute_s"] = compute_s;
    doc["ttft_s"] = json{{"with_remote_tier", std::min(ttft_load, compute_s)},
                         {"recompute", compute_s}};
    doc["decision"] = load ? "load" : "recompute";
    out << DumpJson(doc) << "\n";
    return 0;
  }
  out << "prompt  " << o.prompt_tokens << " tokens of " << s.model.name << " "
      << DTypeName(s.model.geometry.dtype) << ": " << FormatBytes(static_cast<uint64_t>(bytes))
      << " of KV at a remote node\n";
  out << "link    net " << FormatRate(c.links.net) << " (" << s.net_desc << ")"
      << (c.links.net_latency_s > 0 ? ", +" + Fmt("%.1f", c.links.net_latency_s * 1e3) + " ms" : "")
      << "\n";
  out << "compute " << s.compute_desc << "\n\n";
  out << "  load over the link   " << Pad(FormatSeconds(load_s), 10, true) << "\n";
  out << "  recompute            " << Pad(FormatSeconds(compute_s), 10, true) << "\n";
  out << "  TTFT with the remote tier " << FormatSeconds(std::min(ttft_load, compute_s))
      << " (decision: " << (load ? "load" : "recompute") << "), recomputing "
      << FormatSeconds(compute_s) << "\n";
  return 0;
}

int RunCli(const CliOptions& o, const std::string& argv0, std::ostream& out, std::ostream& err) {
  if (o.help) {
    out << HelpText();
    return 0;
  }
  if (o.list_presets) {
    out << "model presets (KV bytes per token in bf16):\n";
    for (const ModelPreset& p : ModelPresets()) {
      Geometry g{p.layers, p.kv_heads, p.head_dim, 1, DType::kBf16, p.mla};
      out << "  " << Pad(p.name, 18) << Pad(FormatBytes(g.BlockBytes()), 12) << p.note << "\n";
    }
    out << "GPU presets (dense bf16 FLOP/s):\n";
    for (const GpuPreset& g : GpuPresets()) {
      out << "  " << Pad(g.name, 8) << Fmt("%.0f TFLOP/s", g.dense_bf16_flops / 1e12) << "\n";
    }
    return 0;
  }
  Setup s;
  Status st = Resolve(o, argv0, &s, err);
  if (!st.ok()) {
    err << "kvtier-sim: " << st.message() << "\n";
    return 2;  // bad input (a trace, a model, a value): as a usage error
  }
  if (o.prompt_tokens > 0) return RunPrompt(o, s, out);
  if (o.validate) return RunValidate(o, s, out, err);
  if (!o.write_trace.empty()) {
    std::ofstream f(o.write_trace, std::ios::binary);
    auto src = s.factory()();
    Request r;
    std::string line;
    while (src->Next(&r)) {
      line.clear();
      AppendMooncakeLine(r, &line);
      f << line;
    }
    if (!f.good()) {
      err << "kvtier-sim: cannot write " << o.write_trace << "\n";
      return 1;
    }
    err << "kvtier-sim: wrote the trace to " << o.write_trace << "\n";
  }
  const bool show_progress = o.progress;
  Progress bar("kvtier-sim", show_progress);
  auto progress = [&](uint64_t d, uint64_t t) { bar.Update(d, t); };
  json doc;
  const bool replay_job = (!o.sweep && o.nodes == 0) || o.default_job;

  if (replay_job) {
    bar.set_label("replay");
    const auto t0 = std::chrono::steady_clock::now();
    auto src = s.factory()();
    auto r = Replay(s.cfg, *src, progress);
    if (!r.ok()) {
      err << "kvtier-sim: " << r.status().message() << "\n";
      return 1;
    }
    const double secs = Seconds(t0);
    std::vector<std::pair<std::string, SimResult>> ablations;
    if (o.ablation && s.cfg.tiers.size() > 1) {
      for (size_t t = 0; t < s.cfg.tiers.size(); ++t) {
        bar.set_label("without " + s.cfg.tiers[t].name);
        auto asrc = s.factory()();
        auto a = Replay(Without(s.cfg, t), *asrc, progress);
        if (!a.ok()) {
          err << "kvtier-sim: " << a.status().message() << "\n";
          return 1;
        }
        ablations.emplace_back(s.cfg.tiers[t].name, std::move(a).value());
      }
    }
    bar.Done();
    if (o.json) {
      doc = SummaryJson(*r);
      doc["source"] = s.source_desc;
      doc["model"] = json{{"name", s.model.name},
                          {"kv_dtype", DTypeName(s.model.geometry.dtype)},
                          {"kv_bytes_per_token", s.cfg.kv_bytes_per_token},
                          {"block_bytes", s.cfg.block_bytes},
                          {"block_tokens", s.cfg.block_tokens}};
      doc["prefill_tokens_per_s"] = s.cfg.prefill_tps;
      json ttft;
      ttft["all_tiers"] = TtftJson(r->ttft);
      for (const auto& [name, a] : ablations) ttft["without_" + name] = TtftJson(a.ttft);
      ttft["no_cache"] = TtftJson(r->ttft_nocache);
      doc["ttft_s"] = ttft;
      doc["replay_seconds"] = secs;
      if (!s.synth) {
        doc["input"] = json{{"lines", s.load.lines}, {"bad_lines", s.load.bad_lines},
                            {"first_error", s.load.first_error}};
      }
    } else {
      PrintReplay(s, *r, ablations, secs, out);
    }
  }

  if (o.sweep) {
    SweepConfig sc;
    sc.base = s.cfg;
    sc.base.prefill_tps = 0;  // hit ratios only
    sc.tier_name = "host";
    if (!o.sweep_policies.empty()) sc.policies = o.sweep_policies;
    for (const Capacity& c : o.sweep_caps) {
      sc.capacities.push_back(c.Blocks(s.cfg.block_bytes, s.cfg.block_tokens));
    }
    bar.set_label("sweep");
    const auto t0 = std::chrono::steady_clock::now();
    auto r = RunSweep(sc, s.factory(), progress);
    bar.Done();
    if (!r.ok()) {
      err << "kvtier-sim: " << r.status().message() << "\n";
      return 1;
    }
    const double secs = Seconds(t0);
    const Metric metric = *ParseMetric(o.sweep_metric);
    const std::string title = "kvtier-sim: " + std::string(MetricName(metric)) +
                              " hit ratio vs capacity (" + Thousands(r->requests) + " requests)";
    std::ofstream f(o.plot, std::ios::binary);
    f << RenderSvg(SweepPlot(*r, metric, title));
    f.close();
    const bool plot_ok = f.good();
    if (!plot_ok) err << "kvtier-sim: cannot write the plot to " << o.plot << "\n";
    if (o.json) {
      json sw;
      sw["blocks_total"] = r->blocks_total;
      sw["blocks_unique"] = r->blocks_unique;
      sw["ideal_hit_ratio"] = r->ideal();
      sw["metric_plotted"] = MetricName(metric);
      sw["plot"] = plot_ok ? json(o.plot) : json(nullptr);
      json pts = json::array();
      for (const SweepPoint& p : r->points) {
        json x = Ratios(p.block, p.prefix, p.token);
        x["policy"] = p.policy;
        x["capacity_blocks"] = p.capacity_blocks;
        x["capacity_tokens"] = p.capacity_blocks * s.cfg.block_tokens;
        x["seconds"] = p.seconds;
        pts.push_back(x);
      }
      sw["points"] = pts;
      sw["seconds"] = secs;
      if (!doc.contains("requests")) {
        doc["requests"] = r->requests;
        doc["blocks_total"] = r->blocks_total;
        doc["blocks_unique"] = r->blocks_unique;
        doc["source"] = s.source_desc;
      }
      doc["sweep"] = sw;
    } else {
      if (replay_job) out << "\n";
      out << "capacity sweep (one tier; " << MetricName(metric) << " hit ratio; "
          << Thousands(r->blocks_unique) << " unique blocks; ideal "
          << Fmt("%.4f", r->ideal()) << ")\n";
      out << "  " << Pad("blocks", 10, true) << Pad("tokens", 10, true) << Pad("% unique", 10, true);
      for (const auto& p : r->policies) out << Pad(p, 11, true);
      out << "\n";
      for (uint64_t cap : r->capacities) {
        out << "  " << Pad(Thousands(cap), 10, true)
            << Pad(FormatCount(double(cap) * s.cfg.block_tokens), 10, true)
            << Pad(Fmt("%.1f%%", r->blocks_unique ? 100.0 * cap / r->blocks_unique : 0), 10, true);
        for (const auto& pol : r->policies) {
          for (const SweepPoint& p : r->points) {
            if (p.policy == pol && p.capacity_blocks == cap) {
              out << Pad(Fmt("%.4f", r->Value(p, metric)), 11, true);
            }
          }
        }
        out << "\n";
      }
      out << "  " << r->points.size() << " replays in " << Fmt("%.2f", secs) << " s\n";
      if (plot_ok) out << "plot: " << o.plot << "\n";
    }
  }

  if (o.nodes > 0) {
    ClusterConfig cc;
    cc.node = s.cfg;
    cc.nodes = o.nodes;
    cc.routing = *ParseRouting(o.routing);
    cc.balance = o.balance;
    bar.set_label("cluster");
    auto r = RunCluster(cc, s.factory(), progress);
    bar.Done();
    if (!r.ok()) {
      err << "kvtier-sim: " << r.status().message() << "\n";
      return 1;
    }
    const SimResult& L = r->local;
    const SimResult& G = r->global;
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    if (o.json) {
      json c;
      c["nodes"] = r->nodes;
      c["routing"] = RoutingName(r->routing);
      c["node_requests"] = r->node_requests;
      c["local"] = SummaryJson(L);
      c["global"] = SummaryJson(G);
      c["global_over_local"] =
          json{{"prefix_hit_ratio", ratio(G.prefix_hit_ratio(), L.prefix_hit_ratio())},
               {"block_hit_ratio", ratio(G.block_hit_ratio(), L.block_hit_ratio())},
               {"prefill_compute_s", ratio(G.prefill_compute_s, L.prefill_compute_s)}};
      if (!doc.contains("requests")) {
        doc["requests"] = L.requests;
        doc["blocks_total"] = L.blocks_total;
        doc["blocks_unique"] = L.blocks_unique;
        doc["source"] = s.source_desc;
      }
      doc["cluster"] = c;
    } else {
      out << "cluster: " << r->nodes << " prefill nodes, routing " << RoutingName(r->routing)
          << "; per node:";
      for (const TierConfig& t : s.cfg.tiers) {
        out << " " << t.name << " " << CapText(t.capacity_blocks) << " blocks ("
            << FormatCount(double(t.capacity_blocks) * s.cfg.block_tokens) << " tokens)";
      }
      out << "\n        trace " << s.source_desc << "\n";
      out << "                                       block   prefix    token   prefill GPU s\n";
      auto row = [&](const std::string& label, const SimResult& x) {
        out << "  " << Pad(label, 34) << Pad(Fmt("%.4f", x.block_hit_ratio()), 8, true)
            << Pad(Fmt("%.4f", x.prefix_hit_ratio()), 9, true)
            << Pad(Fmt("%.4f", x.token_hit_ratio()), 9, true)
            << Pad(Fmt("%.1f", x.prefill_compute_s), 16, true) << "\n";
      };
      row(std::to_string(r->nodes) + " local caches", L);
      row("1 global pool (" + std::to_string(r->nodes) + "x capacity)", G);
      out << "  " << Pad("global / local", 34)
          << Pad(Fmt("%.2fx", ratio(G.block_hit_ratio(), L.block_hit_ratio())), 8, true)
          << Pad(Fmt("%.2fx", ratio(G.prefix_hit_ratio(), L.prefix_hit_ratio())), 9, true)
          << Pad(Fmt("%.2fx", ratio(G.token_hit_ratio(), L.token_hit_ratio())), 9, true)
          << Pad(Fmt("%.2fx", ratio(G.prefill_compute_s, L.prefill_compute_s)), 16, true)
          << "\n";
      out << "  ideal (infinite cache) " << Fmt("%.4f", G.ideal_hit_ratio())
          << "; requests per node:";
      for (uint64_t n : r->node_requests) out << " " << n;
      out << "\n  Mooncake FAST'25 Fig. 10 (10 nodes x 3M tokens, conversation trace): local "
             "~0.17, global ~0.38 (2.22x), prefill GPU time 0.76x\n";
    }
  }
  if (o.json) out << DumpJson(doc) << "\n";
  return 0;
}

}  // namespace kvt::sim
