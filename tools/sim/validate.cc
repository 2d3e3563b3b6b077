#include "tools/sim/validate.h"

#include <stdlib.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <ostream>

#include <nlohmann/json.hpp>

#include "base/units.h"
#include "src/store.h"
#include "tools/sim/stats.h"
#include "tools/sim/text.h"
#include "tools/sim/trace.h"

namespace kvt::sim {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kUnbounded = UINT64_MAX;

// The payload of trace block `id`: 8-byte words of a SplitMix64 stream seeded by the id, so every
// block has its own bytes and any mix-up shows.
void FillPayload(uint64_t id, uint8_t* p, size_t bytes) {
  uint64_t x = id * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
  for (size_t off = 0; off < bytes; off += 8) {
    x += 0x9E3779B97F4A7C15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    std::memcpy(p + off, &z, std::min<size_t>(8, bytes - off));
  }
}

const char* TierName(int t, const SimConfig& c) {
  return t < 0 ? "miss" : c.tiers[static_cast<size_t>(t)].name.c_str();
}

Status CheckComparable(const ValidateConfig& c) {
  const auto& tiers = c.sim.tiers;
  if (tiers.empty() || tiers.size() > 2 || tiers[0].name != "host" ||
      (tiers.size() == 2 && tiers[1].name != "nvme")) {
    std::string got;
    for (const TierConfig& t : tiers) got += (got.empty() ? "" : ",") + t.name;
    return Status::InvalidArgument("--validate compares a host tier, or host then nvme, with the "
                                   "store; the tiers given are '" + got + "'");
  }
  if (tiers[0].capacity_blocks == 0 || tiers[0].capacity_blocks == kUnbounded) {
    return Status::InvalidArgument("--validate needs a bounded, non-zero host capacity");
  }
  for (const TierConfig& t : tiers) {
    if (t.admission.find("budget") != std::string::npos) {
      return Status::InvalidArgument(
          "--validate cannot compare a budget admission policy: the engine meters its write "
          "budget by the wall clock, the simulator by trace time");
    }
  }
  if (c.sim.write_through_tier >= 0 && tiers.size() == 2 && tiers[1].admission != "all") {
    return Status::InvalidArgument(
        "--validate with --write-through needs admission 'all' on nvme: the engine writes every "
        "put through, the simulator offers it to admission");
  }
  if (c.block_bytes == 0 || c.block_bytes % kPage != 0) {
    return Status::InvalidArgument("validate block bytes must be a positive multiple of 4 KiB");
  }
  return Status::Ok();
}

// Host tier sizing: slabs of s slots, s the largest divisor of the capacity up to 1024, so the
// pool holds exactly capacity_blocks slots.
void SizeHost(uint64_t capacity_blocks, uint64_t slot_bytes, Options* o) {
  uint64_t per_slab = 1;
  for (uint64_t s = std::min<uint64_t>(capacity_blocks, 1024); s >= 1; --s) {
    if (capacity_blocks % s == 0) {
      per_slab = s;
      break;
    }
  }
  o->host_slab_bytes = per_slab * slot_bytes;
  o->host_bytes = capacity_blocks * slot_bytes;
}

// NVMe sizing: room for every unique block of the replay twice over (a record is a header page plus
// the payload pages), so the tier never reclaims, in segments of 8 MiB or one record.
void SizeNvme(uint64_t unique_blocks, uint64_t slot_bytes, Options* o) {
  const uint64_t record = slot_bytes + kPage;
  const uint64_t seg = std::max<uint64_t>(8ull << 20, 2 * record);
  o->nvme_segment_bytes = seg;
  const uint64_t per_seg = (seg - kPage) / record;  // the segment header takes a page
  o->nvme_bytes = (2 * unique_blocks / per_seg + 4) * seg;
}

class Replayer {
 public:
  Replayer(const ValidateConfig& c, Store* store, uint64_t ns, ValidateReport* rep)
      : c_(c), store_(store), ns_(ns), rep_(rep), put_buf_(c.block_bytes), get_buf_(c.block_bytes),
        want_buf_(c.block_bytes) {}

  void Process(const Request& r, const Simulator& sim, size_t req_index) {
    const size_t n = r.hash_ids.size();
    keys_.resize(n);
    for (size_t i = 0; i < n; ++i) keys_[i] = Simulator::KeyOf(r.hash_ids[i]);
    tiers_.assign(n, Tier::kNone);
    size_t prefix = 0;
    Check(store_->Lookup(ns_, keys_, &prefix, tiers_.data()), "lookup");

    const uint64_t bt = c_.sim.block_tokens;
    for (size_t i = 0; i < n; ++i) {
      const int store_t = StoreTier(tiers_[i]);
      const int sim_t = sim.stack().Locate(keys_[i]);
      if (store_t != sim_t) {
        if (rep_->mismatched_blocks++ == 0) {
          rep_->first_mismatch = "request " + std::to_string(req_index) + " block " +
                                 std::to_string(i) + " (id " + std::to_string(r.hash_ids[i]) +
                                 "): simulator says " + TierName(sim_t, c_.sim) + ", store says " +
                                 TierName(store_t, c_.sim);
        }
      }
      if (store_t >= 0) {
        ++rep_->store_block_hits;
        ++rep_->tiers[static_cast<size_t>(store_t)].store_hits;
      }
      if (i < prefix) {
        ++rep_->tiers[static_cast<size_t>(store_t)].store_prefix_hits;
        const uint64_t before = bt * i;
        rep_->store_prefix_hit_tokens +=
            i + 1 < n ? bt : (r.input_length > before ? r.input_length - before : 0);
      }
    }
    rep_->store_prefix_hits += prefix;

    // Use the blocks in order: load the prefix, recompute the rest unless host holds it.
    for (size_t i = 0; i < n; ++i) {
      if (i < prefix || tiers_[i] == Tier::kHost) {
        GetAndVerify(r.hash_ids[i], keys_[i]);
      } else {
        FillPayload(r.hash_ids[i], put_buf_.data(), put_buf_.size());
        const Hash128 parent = i == 0 ? Hash128{0, 0} : keys_[i - 1];
        ++rep_->puts;
        Check(store_->Put(ns_, keys_[i], parent, nullptr, put_buf_.data(), put_buf_.size()),
              "put");
      }
    }
  }

 private:
  static int StoreTier(Tier t) {
    switch (t) {
      case Tier::kHost: return 0;
      case Tier::kNvme: return 1;
      default: return -1;
    }
  }

  void GetAndVerify(uint64_t id, const Hash128& key) {
    ++rep_->gets;
    Status s = store_->Get(ns_, key, get_buf_.data(), get_buf_.size());
    if (!s.ok()) {
      Check(s, "get of a block the lookup found");
      return;
    }
    FillPayload(id, want_buf_.data(), want_buf_.size());
    rep_->bytes_checked += get_buf_.size();
    if (std::memcmp(get_buf_.data(), want_buf_.data(), get_buf_.size()) != 0) {
      ++rep_->wrong_blocks;
    }
  }

  void Check(const Status& s, const char* what) {
    if (s.ok()) return;
    if (rep_->failed_calls++ == 0) rep_->first_failure = std::string(what) + ": " + s.ToString();
  }

  const ValidateConfig& c_;
  Store* store_;
  uint64_t ns_;
  ValidateReport* rep_;
  std::vector<uint8_t> put_buf_, get_buf_, want_buf_;
  std::vector<Hash128> keys_;
  std::vector<Tier> tiers_;
};

// A scratch directory removed at the end, or the caller's (kept).
class ScratchDir {
 public:
  static StatusOr<ScratchDir> Make(const std::string& wanted) {
    ScratchDir d;
    if (!wanted.empty()) {
      std::error_code ec;
      if (std::filesystem::exists(wanted, ec)) {
        return Status::InvalidArgument("--validate-dir " + wanted +
                                       " exists; give a path that does not, so no data is touched");
      }
      d.path_ = wanted;
      return d;
    }
    std::string tmpl = (std::filesystem::temp_directory_path() / "kvtier-validate-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) return Status::FromErrno(errno, "mkdtemp " + tmpl);
    d.path_ = tmpl;
    d.remove_ = true;
    return d;
  }
  ScratchDir(ScratchDir&& o) noexcept : path_(std::move(o.path_)), remove_(o.remove_) {
    o.remove_ = false;
  }
  ~ScratchDir() {
    if (!remove_) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  ScratchDir() = default;
  std::string path_;
  bool remove_ = false;
};

uint64_t JsonU64(const nlohmann::json& j, const char* a, const char* b) {
  if (!j.contains(a) || !j[a].contains(b)) return 0;
  return j[a][b].get<uint64_t>();
}

}  // namespace

StatusOr<ValidateReport> Validate(const ValidateConfig& cfg, RequestSource& src) {
  if (!cfg.sim.tiers.empty()) KVT_RETURN_IF_ERROR(CheckComparable(cfg));
  const auto t0 = std::chrono::steady_clock::now();

  // The requests, kept so that unique blocks are known before the store is sized.
  Trace trace;
  IdSet unique;
  Request r;
  while (trace.size() < cfg.max_requests && src.Next(&r)) {
    trace.Add(r.timestamp_ms, r.input_length, r.output_length, r.hash_ids);
    for (uint64_t id : r.hash_ids) unique.Insert(id);
  }
  if (trace.empty()) return Status::InvalidArgument("--validate: the trace has no requests");

  ValidateConfig c = cfg;
  if (c.sim.tiers.empty()) {
    c.sim.tiers = {TierConfig{"host", std::max<uint64_t>(1, unique.size() / 10), c.policy, "all"},
                   TierConfig{"nvme", kUnbounded, "lru", "all"}};
    KVT_RETURN_IF_ERROR(CheckComparable(c));
  }
  c.sim.prefill_tps = 0;  // every prefix hit loads: the store has no compute to weigh it against
  c.sim.always_load = false;
  c.sim.block_bytes = c.block_bytes;
  const bool has_nvme = c.sim.tiers.size() == 2;
  if (has_nvme) {
    uint64_t& cap = c.sim.tiers[1].capacity_blocks;
    if (cap != kUnbounded && cap < unique.size()) {
      return Status::InvalidArgument(
          "--validate: nvme capacity " + std::to_string(cap) + " blocks is below the " +
          std::to_string(unique.size()) + " unique blocks of the replay; the engine reclaims NVMe "
          "a whole segment at a time, which the simulator's per-block policy does not model, so "
          "the check needs an nvme tier that never fills (give it 'inf' or fewer requests)");
    }
    cap = kUnbounded;
  }

  KVT_ASSIGN_OR_RETURN(ScratchDir dir, ScratchDir::Make(cfg.dir));
  Options o;
  o.dir = dir.path();
  o.host_mlock = false;  // a check, not a server: do not ask for locked memory
  o.host_policy = c.sim.tiers[0].policy;
  o.verify_host_reads = true;
  SizeHost(c.sim.tiers[0].capacity_blocks, c.block_bytes, &o);
  if (has_nvme) {
    SizeNvme(unique.size(), c.block_bytes, &o);
    o.nvme_admission = c.sim.tiers[1].admission;
    o.write_policy = c.sim.write_through_tier == 1 ? "write_through" : "write_back";
  }
  KVT_RETURN_IF_ERROR(o.Validate());
  KVT_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, Store::Open(o));

  // One layer, one head: head_dim chosen so that a block is exactly block_bytes in fp16.
  NamespaceDesc d;
  d.model = "kvtier-sim-validate";
  d.kv_dtype = "fp16";
  d.layers = 1;
  d.kv_heads = 1;
  d.block_tokens = c.sim.block_tokens;
  const uint64_t per_dim = 2ull * 2 * c.sim.block_tokens;  // K and V, 2 bytes each, per head dim
  if (c.block_bytes % per_dim != 0) {
    return Status::InvalidArgument("validate block bytes " + std::to_string(c.block_bytes) +
                                   " is not a multiple of " + std::to_string(per_dim) +
                                   " (4 bytes per token of a block)");
  }
  d.head_dim = static_cast<uint32_t>(c.block_bytes / per_dim);
  KVT_ASSIGN_OR_RETURN(uint64_t ns, store->OpenNamespace(d));

  KVT_ASSIGN_OR_RETURN(std::unique_ptr<Simulator> sim, Simulator::Create(c.sim));
  ValidateReport rep;
  for (const TierConfig& t : c.sim.tiers) {
    rep.tiers.push_back(ValidateTier{t.name, t.capacity_blocks});
  }
  Replayer replay(c, store.get(), ns, &rep);
  for (size_t i = 0; i < trace.size(); ++i) {
    const Request req = trace.at(i);
    replay.Process(req, *sim, i);  // the store first: the simulator's state is still "before"
    sim->Process(req);
    // The simulator demotes synchronously; the store's evictions wait in its demotion queue.
    store->WaitForDemotions();
  }
  rep.sim = sim->Result();
  rep.requests = rep.sim.requests;
  rep.blocks_total = rep.sim.blocks_total;
  rep.blocks_unique = rep.sim.blocks_unique;
  rep.tokens_total = rep.sim.tokens_total;
  for (size_t t = 0; t < rep.tiers.size(); ++t) {
    rep.tiers[t].sim_hits = rep.sim.tiers[t].hits;
    rep.tiers[t].sim_prefix_hits = rep.sim.tiers[t].prefix_hits;
  }
  if (has_nvme) {
    rep.sim_nvme_writes = rep.sim.tiers[1].moves.written();
    rep.sim_promotions = rep.sim.tiers[1].moves.promoted_out;
  }
  const nlohmann::json stats = nlohmann::json::parse(store->StatsJson());
  rep.store_nvme_writes = has_nvme ? stats["tiers"]["nvme"]["writes"].get<uint64_t>() : 0;
  rep.store_promotions = JsonU64(stats, "store", "promotions");
  rep.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return rep;
}

nlohmann::json ValidateJson(const ValidateReport& r) {
  using nlohmann::json;
  auto side = [&](uint64_t block_hits, uint64_t prefix_hits, uint64_t prefix_tokens) {
    return json{{"block_hits", block_hits},
                {"prefix_hits", prefix_hits},
                {"prefix_hit_tokens", prefix_tokens},
                {"block_hit_ratio", r.blocks_total ? double(block_hits) / r.blocks_total : 0},
                {"prefix_hit_ratio", r.blocks_total ? double(prefix_hits) / r.blocks_total : 0},
                {"token_hit_ratio", r.tokens_total ? double(prefix_tokens) / r.tokens_total : 0}};
  };
  json j;
  j["agree"] = r.agree();
  j["requests"] = r.requests;
  j["blocks_total"] = r.blocks_total;
  j["blocks_unique"] = r.blocks_unique;
  j["tokens_total"] = r.tokens_total;
  j["simulator"] = side(r.sim.block_hits, r.sim.prefix_hits, r.sim.prefix_hit_tokens);
  j["simulator"]["nvme_writes"] = r.sim_nvme_writes;
  j["simulator"]["promotions"] = r.sim_promotions;
  j["store"] = side(r.store_block_hits, r.store_prefix_hits, r.store_prefix_hit_tokens);
  j["store"]["nvme_writes"] = r.store_nvme_writes;
  j["store"]["promotions"] = r.store_promotions;
  json tiers = json::array();
  for (const ValidateTier& t : r.tiers) {
    tiers.push_back(json{{"name", t.name},
                         {"capacity_blocks", t.capacity_blocks == kUnbounded
                                                 ? json(nullptr)
                                                 : json(t.capacity_blocks)},
                         {"sim_hits", t.sim_hits},
                         {"store_hits", t.store_hits},
                         {"sim_prefix_hits", t.sim_prefix_hits},
                         {"store_prefix_hits", t.store_prefix_hits}});
  }
  j["tiers"] = tiers;
  j["mismatched_blocks"] = r.mismatched_blocks;
  j["first_mismatch"] = r.first_mismatch;
  j["gets"] = r.gets;
  j["puts"] = r.puts;
  j["bytes_checked"] = r.bytes_checked;
  j["wrong_blocks"] = r.wrong_blocks;
  j["failed_calls"] = r.failed_calls;
  j["first_failure"] = r.first_failure;
  j["seconds"] = r.seconds;
  return j;
}

void PrintValidate(const ValidateReport& r, std::ostream& out) {
  out << "validate: " << r.requests << " requests, " << r.blocks_total << " blocks ("
      << r.blocks_unique << " unique) through the simulator and a real store\n";
  out << "  " << Pad("", 22) << Pad("simulator", 12, true) << Pad("store", 12, true) << "\n";
  auto row = [&](const std::string& name, const std::string& a, const std::string& b) {
    out << "  " << Pad(name, 22) << Pad(a, 12, true) << Pad(b, 12, true)
        << (a == b ? "" : "   <- differs") << "\n";
  };
  row("block hit ratio", Fmt("%.4f", r.sim.block_hit_ratio()),
      Fmt("%.4f", r.store_block_hit_ratio()));
  row("prefix hit ratio", Fmt("%.4f", r.sim.prefix_hit_ratio()),
      Fmt("%.4f", r.store_prefix_hit_ratio()));
  row("token hit ratio", Fmt("%.4f", r.sim.token_hit_ratio()),
      Fmt("%.4f", r.store_token_hit_ratio()));
  for (const ValidateTier& t : r.tiers) {
    const std::string cap =
        t.capacity_blocks == kUnbounded ? "unbounded" : std::to_string(t.capacity_blocks);
    row(t.name + " hits (" + cap + ")", std::to_string(t.sim_hits), std::to_string(t.store_hits));
  }
  if (r.tiers.size() > 1) {
    row("nvme writes", std::to_string(r.sim_nvme_writes), std::to_string(r.store_nvme_writes));
    row("promotions", std::to_string(r.sim_promotions), std::to_string(r.store_promotions));
  }
  out << "  blocks located differently: " << r.mismatched_blocks
      << (r.first_mismatch.empty() ? "" : " (first: " + r.first_mismatch + ")") << "\n";
  out << "  bytes checked: " << FormatBytes(r.bytes_checked) << " in " << r.gets
      << " gets; wrong blocks served: " << r.wrong_blocks << "; failed calls: " << r.failed_calls
      << (r.first_failure.empty() ? "" : " (first: " + r.first_failure + ")") << "\n";
  out << "  " << (r.agree() ? "AGREE" : "DISAGREE") << " (" << Fmt("%.2f", r.seconds) << " s)\n";
}

}  // namespace kvt::sim
