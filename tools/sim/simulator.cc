#include "tools/sim/simulator.h"

#include <algorithm>

namespace kvt::sim {

StatusOr<TierKind> TierKindOf(std::string_view name) {
  if (name == "hbm") return TierKind::kHbm;
  if (name == "host") return TierKind::kHost;
  if (name == "nvme") return TierKind::kNvme;
  if (name == "remote") return TierKind::kRemote;
  return Status::InvalidArgument("tier name '" + std::string(name) +
                                 "' is not one of hbm, host, nvme, remote");
}

uint64_t SimResult::bytes_written(std::string_view tier) const {
  for (const TierResult& t : tiers) {
    if (t.cfg.name == tier) return t.moves.written() * block_bytes;
  }
  return 0;
}

Hash128 Simulator::KeyOf(uint64_t id) {
  // Trace ids are already prefix hashes; spread them and keep them apart from {0,0} (no parent).
  uint64_t x = id + 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  return Hash128{x, id ^ 0x6A09E667F3BCC909ull};
}

StatusOr<std::unique_ptr<Simulator>> Simulator::Create(const SimConfig& c) {
  if (c.block_tokens == 0) return Status::InvalidArgument("block_tokens must be > 0");
  std::unique_ptr<Simulator> s(new Simulator(c));
  for (const TierConfig& t : c.tiers) {
    KVT_ASSIGN_OR_RETURN(TierKind k, TierKindOf(t.name));
    s->kinds_.push_back(k);
  }
  KVT_ASSIGN_OR_RETURN(s->stack_, TierStack::Create(c.tiers, c.block_bytes, c.write_through_tier));
  s->r_.block_bytes = c.block_bytes;
  s->r_.tiers.resize(c.tiers.size());
  for (size_t t = 0; t < c.tiers.size(); ++t) s->r_.tiers[t].cfg = c.tiers[t];
  return s;
}

size_t Simulator::PrefixHits(const Request& r) const {
  size_t p = 0;
  while (p < r.hash_ids.size() && stack_->Locate(KeyOf(r.hash_ids[p])) >= 0) ++p;
  return p;
}

void Simulator::Process(const Request& r) {
  const size_t n = r.hash_ids.size();
  const uint64_t bt = cfg_.block_tokens;
  keys_.resize(n);
  where_.resize(n);
  tok_.resize(n);
  ++r_.requests;
  if (first_) r_.first_ts_ms = r.timestamp_ms, first_ = false;
  r_.first_ts_ms = std::min(r_.first_ts_ms, r.timestamp_ms);
  r_.last_ts_ms = std::max(r_.last_ts_ms, r.timestamp_ms);
  r_.blocks_total += n;
  r_.tokens_total += r.input_length;

  // 1. Lookup everything first, after prefetching every index slot the lookups will read.
  for (size_t i = 0; i < n; ++i) {
    keys_[i] = KeyOf(r.hash_ids[i]);
    stack_->Prefetch(keys_[i]);
    unique_.Prefetch(r.hash_ids[i]);
  }
  size_t prefix = n;
  for (size_t i = 0; i < n; ++i) {
    where_[i] = stack_->Locate(keys_[i]);
    unique_.Insert(r.hash_ids[i]);
    const uint64_t before = bt * i;
    tok_[i] = i + 1 < n ? bt : (r.input_length > before ? r.input_length - before : 0);
    if (where_[i] >= 0) {
      ++r_.block_hits;
      ++r_.tiers[where_[i]].hits;
    } else if (prefix == n) {
      prefix = i;
    }
  }
  for (size_t i = 0; i < prefix; ++i) {
    TierResult& t = r_.tiers[where_[i]];
    ++t.prefix_hits;
    t.prefix_hit_tokens += tok_[i];
    r_.prefix_hit_tokens += tok_[i];
  }
  r_.prefix_hits += prefix;

  // 2. Load versus recompute: the m in [0, prefix] with the smallest TTFT (ties: load more).
  size_t m = prefix;
  if (cfg_.prefill_tps > 0) {
    const double tps = cfg_.prefill_tps;
    const double bpt = static_cast<double>(cfg_.kv_bytes_per_token);
    auto compute_s = [&](uint64_t cached_tokens) {
      const uint64_t rest = r.input_length > cached_tokens ? r.input_length - cached_tokens : 0;
      return static_cast<double>(std::max<uint64_t>(rest, 1)) / tps;
    };
    auto total = [&](double load, double comp) {
      return cfg_.overlap ? std::max(load, comp) : load + comp;
    };
    double pcie = 0, nvme = 0, net = 0;  // bytes over each link for the first i blocks
    uint64_t cached = 0;
    double best = total(0, compute_s(0));
    size_t best_m = 0;
    for (size_t i = 0; i < prefix; ++i) {
      const double b = bpt * static_cast<double>(tok_[i]);
      switch (kinds_[where_[i]]) {
        case TierKind::kHbm: break;
        case TierKind::kHost: pcie += b; break;
        case TierKind::kNvme: pcie += b, nvme += b; break;
        case TierKind::kRemote: pcie += b, net += b; break;
      }
      cached += tok_[i];
      const double load = std::max({pcie / cfg_.links.host_hbm, nvme / cfg_.links.nvme_read,
                                    NetSeconds(cfg_.links, net)});
      const double t = total(load, compute_s(cached));
      if (t <= best) best = t, best_m = i + 1;
    }
    if (!cfg_.always_load) m = best_m;
    if (cfg_.always_load) {
      // Recompute the TTFT of loading everything.
      best = total(std::max({pcie / cfg_.links.host_hbm, nvme / cfg_.links.nvme_read,
                             NetSeconds(cfg_.links, net)}),
                   compute_s(cached));
    }
    uint64_t loaded = 0;
    for (size_t i = 0; i < m; ++i) loaded += tok_[i];
    const double comp = compute_s(loaded);
    r_.has_ttft = true;
    r_.ttft.Add(best + cfg_.overhead_s);
    r_.ttft_nocache.Add(compute_s(0) + cfg_.overhead_s);
    r_.prefill_compute_s += comp;
    r_.nocache_compute_s += compute_s(0);
    r_.loaded_tokens += loaded;
    r_.computed_tokens += r.input_length - std::min(r.input_length, loaded);
  } else {
    uint64_t loaded = 0;
    for (size_t i = 0; i < m; ++i) loaded += tok_[i];
    r_.loaded_tokens += loaded;
    r_.computed_tokens += r.input_length - std::min<uint64_t>(r.input_length, loaded);
  }
  if (prefix == 0) ++r_.req_no_prefix_hit;
  else if (m == prefix) ++r_.req_load_all;
  else if (m == 0) ++r_.req_recompute;
  else ++r_.req_load_partial;
  for (size_t i = 0; i < m; ++i) ++r_.tiers[where_[i]].loaded_blocks;

  // 3. Insert / touch in order.
  const double now_s = static_cast<double>(r.timestamp_ms) / 1000.0;
  for (size_t i = 0; i < n; ++i) {
    stack_->Reference(keys_[i], i ? keys_[i - 1] : Hash128{}, i < m, now_s);
  }
}

SimResult Simulator::Result() const {
  SimResult r = r_;
  r.blocks_unique = unique_.size();
  const size_t T = stack_->tiers();
  for (size_t t = 0; t < T; ++t) {
    r.tiers[t].held_blocks = stack_->index(t).size();
    r.tiers[t].moves = stack_->stats(t);
    r.tiers[t].admission = stack_->admission(t).stats();
    r.tiers[t].admission_name = stack_->admission(t).name();
  }
  for (int from = -1; from < static_cast<int>(T); ++from) {
    for (size_t to = 0; to < T; ++to) {
      const uint64_t b = stack_->path_blocks(from, static_cast<int>(to));
      if (!b) continue;
      PathResult p;
      p.name = (from < 0 ? std::string("prefill") : cfg_.tiers[from].name) + "->" +
               cfg_.tiers[to].name;
      p.blocks = b;
      p.bytes = b * cfg_.block_bytes;
      r.paths.push_back(p);
    }
  }
  return r;
}

void MergeInto(SimResult* a, const SimResult& b) {
  if (a->requests == 0 && a->tiers.empty()) {
    *a = b;
    return;
  }
  if (b.requests) {
    a->first_ts_ms = a->requests ? std::min(a->first_ts_ms, b.first_ts_ms) : b.first_ts_ms;
    a->last_ts_ms = std::max(a->last_ts_ms, b.last_ts_ms);
  }
  a->requests += b.requests;
  a->blocks_total += b.blocks_total;
  a->blocks_unique += b.blocks_unique;  // an upper bound; cluster mode replaces it
  a->tokens_total += b.tokens_total;
  a->block_hits += b.block_hits;
  a->prefix_hits += b.prefix_hits;
  a->prefix_hit_tokens += b.prefix_hit_tokens;
  for (size_t t = 0; t < a->tiers.size() && t < b.tiers.size(); ++t) {
    TierResult& x = a->tiers[t];
    const TierResult& y = b.tiers[t];
    x.hits += y.hits;
    x.prefix_hits += y.prefix_hits;
    x.prefix_hit_tokens += y.prefix_hit_tokens;
    x.loaded_blocks += y.loaded_blocks;
    x.held_blocks += y.held_blocks;
    if (x.cfg.capacity_blocks != UINT64_MAX) {
      x.cfg.capacity_blocks = y.cfg.capacity_blocks == UINT64_MAX
                                  ? UINT64_MAX
                                  : x.cfg.capacity_blocks + y.cfg.capacity_blocks;
    }
    TierMoveStats& m = x.moves;
    const TierMoveStats& n = y.moves;
    m.computed_in += n.computed_in, m.promoted_in += n.promoted_in;
    m.promoted_out += n.promoted_out, m.demoted_in += n.demoted_in;
    m.demote_present += n.demote_present, m.written_through += n.written_through;
    m.evicted += n.evicted, m.dropped += n.dropped;
    m.admission_rejected += n.admission_rejected, m.touches += n.touches;
    x.admission.offered += y.admission.offered, x.admission.admitted += y.admission.admitted;
    x.admission.rejected += y.admission.rejected;
    x.admission.admitted_bytes += y.admission.admitted_bytes;
  }
  for (const PathResult& p : b.paths) {
    auto it = std::find_if(a->paths.begin(), a->paths.end(),
                           [&](const PathResult& q) { return q.name == p.name; });
    if (it == a->paths.end()) {
      a->paths.push_back(p);
    } else {
      it->blocks += p.blocks;
      it->bytes += p.bytes;
    }
  }
  a->req_no_prefix_hit += b.req_no_prefix_hit, a->req_load_all += b.req_load_all;
  a->req_load_partial += b.req_load_partial, a->req_recompute += b.req_recompute;
  a->loaded_tokens += b.loaded_tokens, a->computed_tokens += b.computed_tokens;
  a->prefill_compute_s += b.prefill_compute_s, a->nocache_compute_s += b.nocache_compute_s;
  a->has_ttft = a->has_ttft || b.has_ttft;
  a->ttft.Merge(b.ttft);
  a->ttft_nocache.Merge(b.ttft_nocache);
}

StatusOr<SimResult> Replay(const SimConfig& c, RequestSource& src, const ProgressFn& progress) {
  KVT_ASSIGN_OR_RETURN(auto sim, Simulator::Create(c));
  Request r;
  uint64_t done = 0;
  const uint64_t total = src.size();
  while (src.Next(&r)) {
    sim->Process(r);
    if (progress && (++done & 1023) == 0) progress(done, total);
  }
  if (progress) progress(done, total);
  return sim->Result();
}

}  // namespace kvt::sim
