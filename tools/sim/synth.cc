#include "tools/sim/synth.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "base/units.h"
#include "tools/sim/model.h"

namespace kvt::sim {

namespace {

uint64_t SplitMix(uint64_t* s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t Mix(uint64_t a, uint64_t b) {
  uint64_t s = a ^ Rotl(b, 17) ^ 0xD6E8FEB86659FD93ull;
  return SplitMix(&s);
}

std::vector<double> ZipfCdf(uint32_t n, double s) {
  std::vector<double> cdf(std::max<uint32_t>(n, 1));
  double sum = 0;
  for (uint32_t i = 0; i < cdf.size(); ++i) cdf[i] = (sum += 1.0 / std::pow(i + 1.0, s));
  for (double& c : cdf) c /= sum;
  return cdf;
}

}  // namespace

SyntheticSource::SyntheticSource(const SynthOptions& o) : o_(o) {
  uint64_t s = o.seed;
  for (uint64_t& w : rng_) w = SplitMix(&s);
  auto draw_len = [&](uint32_t lo, uint32_t hi) {
    if (hi <= lo) return lo;
    return lo + static_cast<uint32_t>(Uniform() * (hi - lo + 1));
  };
  prompt_len_.resize(std::max<uint32_t>(o.system_prompts, 1));
  for (uint32_t& l : prompt_len_) l = draw_len(o.prompt_tokens_min, o.prompt_tokens_max);
  doc_len_.resize(o.documents);
  for (uint32_t& l : doc_len_) l = draw_len(o.doc_tokens_min, o.doc_tokens_max);
  prompt_cdf_ = ZipfCdf(static_cast<uint32_t>(prompt_len_.size()), o.prompt_zipf);
  doc_cdf_ = ZipfCdf(std::max<uint32_t>(o.documents, 1), o.doc_zipf);
}

double SyntheticSource::Uniform() {
  // xoshiro256**
  const uint64_t result = Rotl(rng_[1] * 5, 7) * 9;
  const uint64_t t = rng_[1] << 17;
  rng_[2] ^= rng_[0];
  rng_[3] ^= rng_[1];
  rng_[1] ^= rng_[2];
  rng_[0] ^= rng_[3];
  rng_[2] ^= t;
  rng_[3] = Rotl(rng_[3], 45);
  return static_cast<double>(result >> 11) * 0x1.0p-53;
}

double SyntheticSource::Exp(double mean) { return -mean * std::log1p(-Uniform()); }

uint32_t SyntheticSource::Zipf(const std::vector<double>& cdf) {
  const double u = Uniform();
  auto it = std::upper_bound(cdf.begin(), cdf.end(), u);
  return static_cast<uint32_t>(std::min<size_t>(it - cdf.begin(), cdf.size() - 1));
}

uint64_t SyntheticSource::BlockId(const Session& s, uint64_t end) const {
  // What the prefix [0, end) is made of decides the id.
  const uint64_t plen = prompt_len_[s.prompt];
  uint64_t h = Mix(0x5157ull, s.prompt);
  if (end > plen) {
    if (s.doc >= 0) {
      h = Mix(h, 0xD0C0000000000000ull | static_cast<uint64_t>(s.doc));
      if (end > plen + doc_len_[s.doc]) h = Mix(h, 0x5E55000000000000ull ^ s.id);
    } else {
      h = Mix(h, 0x5E55000000000000ull ^ s.id);
    }
  }
  return Mix(h, end);
}

bool SyntheticSource::Next(Request* r) {
  if (emitted_ >= o_.requests) return false;
  t_ms_ += Exp(1000.0 / o_.rate_per_s);
  const bool fresh = active_.empty() || Uniform() < 1.0 / std::max(1.0, o_.mean_turns);
  size_t idx;
  if (fresh) {
    Session s;
    s.id = next_session_++;
    s.prompt = Zipf(prompt_cdf_);
    s.doc = (o_.documents > 0 && Uniform() < o_.doc_prob) ? static_cast<int64_t>(Zipf(doc_cdf_)) : int64_t{-1};
    s.context = prompt_len_[s.prompt] + (s.doc >= 0 ? doc_len_[s.doc] : 0);
    s.last_output = 0;
    // Geometric number of turns with the given mean (>= 1).
    const double p = 1.0 / std::max(1.0, o_.mean_turns);
    s.turns_left = p >= 1.0 ? 1
                            : 1 + static_cast<uint32_t>(std::floor(std::log1p(-Uniform()) /
                                                                   std::log1p(-p)));
    if (active_.size() >= std::max<uint32_t>(o_.max_active_sessions, 1)) {
      // Too many open sessions: a random one is abandoned.
      const size_t gone = std::min(static_cast<size_t>(Uniform() * active_.size()),
                                   active_.size() - 1);
      active_[gone] = active_.back();
      active_.pop_back();
    }
    active_.push_back(s);
    idx = active_.size() - 1;
  } else {
    idx = static_cast<size_t>(Uniform() * active_.size());
    idx = std::min(idx, active_.size() - 1);
  }
  Session& s = active_[idx];
  const uint64_t user = 1 + static_cast<uint64_t>(Exp(o_.user_tokens_mean));
  const uint64_t out = 1 + static_cast<uint64_t>(Exp(o_.output_tokens_mean));
  s.context += s.last_output + user;
  s.last_output = out;
  const uint64_t input = std::min<uint64_t>(s.context, o_.max_context_tokens);

  const uint64_t bt = o_.block_tokens;
  const uint64_t n = (input + bt - 1) / bt;
  ids_.resize(n);
  for (uint64_t b = 0; b < n; ++b) ids_[b] = BlockId(s, std::min<uint64_t>((b + 1) * bt, input));
  r->timestamp_ms = static_cast<uint64_t>(t_ms_);
  r->input_length = input;
  r->output_length = out;
  r->hash_ids = std::span<const uint64_t>(ids_.data(), n);
  ++emitted_;

  if (--s.turns_left == 0 || s.context + s.last_output >= o_.max_context_tokens) {
    active_[idx] = active_.back();
    active_.pop_back();
  }
  return true;
}

Status ParseSynthSpec(std::string_view spec, SynthOptions* o) {
  size_t start = 0;
  while (start < spec.size()) {
    size_t comma = spec.find(',', start);
    if (comma == std::string_view::npos) comma = spec.size();
    std::string_view part = spec.substr(start, comma - start);
    start = comma + 1;
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      return Status::InvalidArgument("--synth: '" + std::string(part) + "' is not key=value");
    }
    const std::string key(part.substr(0, eq));
    KVT_ASSIGN_OR_RETURN(double v, ParseCount(part.substr(eq + 1)));
    struct Field {
      const char* name;
      double* d;
      uint32_t* u32;
      uint64_t* u64;
    };
    const Field fields[] = {
        {"requests", nullptr, nullptr, &o->requests},
        {"seed", nullptr, nullptr, &o->seed},
        {"rate", &o->rate_per_s, nullptr, nullptr},
        {"block_tokens", nullptr, &o->block_tokens, nullptr},
        {"prompts", nullptr, &o->system_prompts, nullptr},
        {"prompt_zipf", &o->prompt_zipf, nullptr, nullptr},
        {"prompt_min", nullptr, &o->prompt_tokens_min, nullptr},
        {"prompt_max", nullptr, &o->prompt_tokens_max, nullptr},
        {"docs", nullptr, &o->documents, nullptr},
        {"doc_zipf", &o->doc_zipf, nullptr, nullptr},
        {"doc_prob", &o->doc_prob, nullptr, nullptr},
        {"doc_min", nullptr, &o->doc_tokens_min, nullptr},
        {"doc_max", nullptr, &o->doc_tokens_max, nullptr},
        {"turns", &o->mean_turns, nullptr, nullptr},
        {"user_tokens", &o->user_tokens_mean, nullptr, nullptr},
        {"output_tokens", &o->output_tokens_mean, nullptr, nullptr},
        {"max_active", nullptr, &o->max_active_sessions, nullptr},
        {"max_context", nullptr, nullptr, &o->max_context_tokens},
    };
    bool found = false;
    for (const Field& f : fields) {
      if (key != f.name) continue;
      found = true;
      if (f.d) *f.d = v;
      if (f.u32) *f.u32 = static_cast<uint32_t>(std::min(v, 4294967295.0));
      if (f.u64) *f.u64 = static_cast<uint64_t>(v);
    }
    if (!found) {
      std::string names;
      for (const Field& f : fields) names += std::string(names.empty() ? "" : ", ") + f.name;
      return Status::InvalidArgument("--synth: unknown key '" + key + "' (" + names + ")");
    }
  }
  if (o->rate_per_s <= 0) return Status::InvalidArgument("--synth: rate must be > 0");
  if (o->block_tokens == 0) return Status::InvalidArgument("--synth: block_tokens must be > 0");
  if (o->doc_prob < 0 || o->doc_prob > 1) {
    return Status::InvalidArgument("--synth: doc_prob must be in [0, 1]");
  }
  if (o->max_context_tokens == 0) return Status::InvalidArgument("--synth: max_context > 0");
  return Status::Ok();
}

std::string DescribeSynth(const SynthOptions& o) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "synthetic: %llu requests, seed %llu, %.3g req/s Poisson, %u prompts (zipf %.2f, "
                "%u-%u tok), %u docs (zipf %.2f, p=%.2f, %u-%u tok), %.1f turns, user %.0f / out "
                "%.0f tok",
                static_cast<unsigned long long>(o.requests),
                static_cast<unsigned long long>(o.seed), o.rate_per_s, o.system_prompts,
                o.prompt_zipf, o.prompt_tokens_min, o.prompt_tokens_max, o.documents, o.doc_zipf,
                o.doc_prob, o.doc_tokens_min, o.doc_tokens_max, o.mean_turns, o.user_tokens_mean,
                o.output_tokens_mean);
  return buf;
}

}  // namespace kvt::sim
