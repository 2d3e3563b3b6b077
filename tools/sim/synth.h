// Synthetic trace generator: conversations with shared system prompts, shared documents, multi-turn
// growth, Zipf popularity and Poisson arrivals, emitted as Mooncake-style requests (prefix-hash
// block ids, 512-token blocks by default). Deterministic: the same options and seed give the same
// trace on every machine (own RNG and distributions, no std:: distributions).
//
// Model: requests arrive as a Poisson process (rate per second). Each arrival is a new session
// with probability 1/mean_turns (or when no session is active), otherwise the next turn of an
// active session chosen uniformly. A new session picks a system prompt (Zipf over prompts) and,
// with probability doc_prob, a document (Zipf over documents) placed after it. Every turn appends
// the previous answer and a new user message, so the context grows. A session ends after its
// turn count (geometric, mean mean_turns) or when its context would pass max_context_tokens.
//
// Block ids are prefix hashes: a block's id hashes what its tokens (and all before them) are made
// of (prompt, document, session) and where it ends, so two requests share an id exactly when they
// share that prefix. A partial last block's id depends on the request's exact length.
// Memory: O(active sessions + prompts + documents), independent of the number of requests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "tools/sim/simulator.h"

namespace kvt::sim {

struct SynthOptions {
  uint64_t requests = 10000;
  uint64_t seed = 1;
  double rate_per_s = 4.0;           // Poisson arrival rate
  uint32_t block_tokens = 512;
  uint32_t system_prompts = 50;
  double prompt_zipf = 1.0;          // Zipf exponent over prompts
  uint32_t prompt_tokens_min = 500, prompt_tokens_max = 4000;
  uint32_t documents = 2000;
  double doc_zipf = 0.9;
  double doc_prob = 0.3;             // share of sessions that start with a document
  uint32_t doc_tokens_min = 2000, doc_tokens_max = 30000;
  double mean_turns = 4.0;
  double user_tokens_mean = 400;     // new user tokens per turn (exponential)
  double output_tokens_mean = 350;   // answer tokens (exponential)
  uint32_t max_active_sessions = 2000;
  uint64_t max_context_tokens = 128 * 1024;
};

// Parses "key=value,key=value" over the fields above (requests, seed, rate, block_tokens, prompts,
// prompt_zipf, prompt_min, prompt_max, docs, doc_zipf, doc_prob, doc_min, doc_max, turns,
// user_tokens, output_tokens, max_active, max_context). Counts accept k/M suffixes.
Status ParseSynthSpec(std::string_view spec, SynthOptions* o);
std::string DescribeSynth(const SynthOptions& o);

class SyntheticSource final : public RequestSource {
 public:
  explicit SyntheticSource(const SynthOptions& o);
  bool Next(Request* r) override;
  uint64_t size() const override { return o_.requests; }

 private:
  struct Session {
    uint64_t id;
    uint32_t prompt;
    int64_t doc;  // -1: none
    uint64_t context;     // tokens so far (prompt + doc + history)
    uint64_t last_output; // answer tokens of the previous turn, appended next turn
    uint32_t turns_left;
  };
  double Uniform();  // [0, 1)
  double Exp(double mean);
  uint32_t Zipf(const std::vector<double>& cdf);
  uint64_t BlockId(const Session& s, uint64_t end) const;

  SynthOptions o_;
  uint64_t rng_[4];
  std::vector<uint32_t> prompt_len_, doc_len_;
  std::vector<double> prompt_cdf_, doc_cdf_;
  std::vector<Session> active_;
  uint64_t emitted_ = 0, next_session_ = 0;
  double t_ms_ = 0;
  std::vector<uint64_t> ids_;
};

}  // namespace kvt::sim
