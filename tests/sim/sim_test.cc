// kvtier-sim: hit ratios on hand-made traces (answers worked out below), the README definitions,
// the trace reader's errors, the generator, multi-tier movement, cluster mode and the CLI.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <unordered_set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/sim/app.h"
#include "tools/sim/cluster.h"
#include "tools/sim/simulator.h"
#include "tools/sim/synth.h"
#include "tools/sim/trace.h"
#include "tests/common/test_dir.h"

namespace kvt::sim {
namespace {

struct Req {
  uint64_t input;
  std::vector<uint64_t> ids;
};

Trace MakeTrace(const std::vector<Req>& reqs) {
  Trace t;
  uint64_t ts = 0;
  for (const Req& r : reqs) t.Add(ts++, r.input, 1, r.ids);
  return t;
}

// Single-block requests of 512 tokens, or full-block chains.
Trace Blocks(const std::vector<std::vector<uint64_t>>& reqs) {
  std::vector<Req> v;
  for (const auto& ids : reqs) v.push_back(Req{512 * ids.size(), ids});
  return MakeTrace(v);
}

SimConfig OneTier(uint64_t cap, const std::string& policy) {
  SimConfig c;
  c.tiers = {TierConfig{"host", cap, policy, "all"}};
  c.block_bytes = 1000;
  c.kv_bytes_per_token = 2;
  return c;
}

SimResult ReplayTrace(const SimConfig& c, const Trace& t) {
  TraceSource src(&t);
  auto r = Replay(c, src);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return *r;
}

std::string SourceTrace() {
  return std::string(KVT_SOURCE_DIR) + "/data/traces/conversation_trace.jsonl";
}

// LRU, capacity 2:
//  r1 [1,2] input 1024: miss miss           -> cache (LRU..MRU) 1,2
//  r2 [1,3] input 700 : hit  miss           -> touch 1: 2,1; insert 3 evicts 2: 1,3
//  r3 [2]   input 100 : miss                -> insert 2 evicts 1: 3,2
//  r4 [1,3] input 1000: miss hit            -> 1 evicts 3: 2,1; 3 evicts 2: 1,3
// block hits 2/7; prefix hits 1/7 (r4's hit follows a miss); prefix tokens 512 of 2824.
TEST(SimHitRatio, LruDefinitions) {
  Trace t = MakeTrace({{1024, {1, 2}}, {700, {1, 3}}, {100, {2}}, {1000, {1, 3}}});
  SimResult r = ReplayTrace(OneTier(2, "lru"), t);
  EXPECT_EQ(r.requests, 4u);
  EXPECT_EQ(r.blocks_total, 7u);
  EXPECT_EQ(r.blocks_unique, 3u);
  EXPECT_EQ(r.block_hits, 2u);
  EXPECT_EQ(r.prefix_hits, 1u);
  EXPECT_EQ(r.tokens_total, 2824u);
  EXPECT_EQ(r.prefix_hit_tokens, 512u);
  EXPECT_DOUBLE_EQ(r.block_hit_ratio(), 2.0 / 7);
  EXPECT_DOUBLE_EQ(r.prefix_hit_ratio(), 1.0 / 7);
  EXPECT_DOUBLE_EQ(r.token_hit_ratio(), 512.0 / 2824);
  EXPECT_DOUBLE_EQ(r.ideal_hit_ratio(), 1 - 3.0 / 7);
  ASSERT_EQ(r.tiers.size(), 1u);
  EXPECT_EQ(r.tiers[0].hits, 2u);
  EXPECT_EQ(r.tiers[0].held_blocks, 2u);
}

// The last block's tokens count input_length - 512 (n - 1): a fully cached 2-block request of
// 600 tokens contributes 600 prefix-hit tokens, not 1024.
TEST(SimHitRatio, TokenWeightUsesPartialLastBlock) {
  Trace t = MakeTrace({{600, {7, 8}}, {600, {7, 8}}});
  SimResult r = ReplayTrace(OneTier(10, "lru"), t);
  EXPECT_EQ(r.prefix_hit_tokens, 600u);
  EXPECT_DOUBLE_EQ(r.token_hit_ratio(), 0.5);
  EXPECT_DOUBLE_EQ(r.block_hit_ratio(), 0.5);
}

// Lookup-all-then-insert: capacity 2, [1,2,3] twice. After r1 the cache holds 2,3. r2 looks up
// all three first (miss, hit, hit) and only then inserts 1 (evicting 2), 2, 3. Interleaving
// lookups with inserts would evict 2 before looking it up and find nothing.
TEST(SimHitRatio, LookupAllThenInsertInOrder) {
  Trace t = Blocks({{1, 2, 3}, {1, 2, 3}});
  SimResult r = ReplayTrace(OneTier(2, "lru"), t);
  EXPECT_EQ(r.block_hits, 2u);
  EXPECT_EQ(r.prefix_hits, 0u);  // the first block missed
  EXPECT_DOUBLE_EQ(r.block_hit_ratio(), 2.0 / 6);
}

// Capacity 2, single-block requests A A B C A (A=1, B=2, C=3).
//  LRU: A miss, A hit, B miss, C miss (evicts A), A miss            -> 1 hit
//  S3-FIFO (engine's: small queue evicts while >= 10% of entries):
//   A miss -> small[A]; A hit -> freq 1; B miss -> small[A,B];
//   C miss: A (freq 1) moves to main, B (freq 0) is evicted -> main[A] small[C]; A hit -> 2 hits
TEST(SimHitRatio, S3FifoKeepsReusedBlockLruDoesNot) {
  Trace t = Blocks({{1}, {1}, {2}, {3}, {1}});
  SimResult lru = ReplayTrace(OneTier(2, "lru"), t);
  SimResult s3 = ReplayTrace(OneTier(2, "s3fifo"), t);
  EXPECT_EQ(lru.block_hits, 1u);
  EXPECT_EQ(s3.block_hits, 2u);
  EXPECT_DOUBLE_EQ(s3.block_hit_ratio(), 2.0 / 5);
  EXPECT_DOUBLE_EQ(s3.prefix_hit_ratio(), 2.0 / 5);
}

// Capacity 2: r1 [1,2] (2's parent is 1), r2 [3], r3 [1].
//  LRU evicts 1 (least recent) for 3 -> r3 misses: 0 hits.
//  chain-aware LRU never evicts 1 while its child 2 is cached: it evicts 2 -> r3 hits: 1 hit.
TEST(SimHitRatio, ChainLruEvictsLeavesFirst) {
  Trace t = Blocks({{1, 2}, {3}, {1}});
  SimResult lru = ReplayTrace(OneTier(2, "lru"), t);
  SimResult chain = ReplayTrace(OneTier(2, "chain_lru"), t);
  EXPECT_EQ(lru.block_hits, 0u);
  EXPECT_EQ(chain.block_hits, 1u);
  EXPECT_DOUBLE_EQ(chain.block_hit_ratio(), 1.0 / 4);
}

// hbm (1 block) over host (2 blocks), LRU, every hit loaded. Requests A B A C B:
//  A: computed -> hbm[A]
//  B: computed, evicts A -> host[A]                      (hbm->host 1)
//  A: host hit, promoted -> hbm[A], B demoted -> host[A,B] (host->hbm 1, hbm->host 2)
//  C: computed, A demoted but already in host: touched   (host: B,A)
//  B: host hit, promoted; C demoted, host full: A dropped (host->hbm 2, hbm->host 3)
TEST(SimTiers, DemotionAndPromotionAccounting) {
  SimConfig c;
  c.tiers = {TierConfig{"hbm", 1, "lru", "all"}, TierConfig{"host", 2, "lru", "all"}};
  c.block_bytes = 100;
  Trace t = Blocks({{1}, {2}, {1}, {3}, {2}});
  SimResult r = ReplayTrace(c, t);
  EXPECT_EQ(r.tiers[0].hits, 0u);
  EXPECT_EQ(r.tiers[1].hits, 2u);
  EXPECT_EQ(r.block_hits, 2u);
  const TierMoveStats& h = r.tiers[0].moves;
  const TierMoveStats& s = r.tiers[1].moves;
  EXPECT_EQ(h.computed_in, 3u);
  EXPECT_EQ(h.promoted_in, 2u);
  EXPECT_EQ(h.evicted, 4u);
  EXPECT_EQ(s.demoted_in, 3u);
  EXPECT_EQ(s.demote_present, 1u);
  EXPECT_EQ(s.promoted_out, 2u);
  EXPECT_EQ(s.evicted, 1u);
  EXPECT_EQ(s.dropped, 1u);
  EXPECT_EQ(r.tiers[0].held_blocks, 1u);
  EXPECT_EQ(r.tiers[1].held_blocks, 2u);
  auto path = [&](const std::string& n) -> uint64_t {
    for (const PathResult& p : r.paths) {
      if (p.name == n) return p.bytes;
    }
    return 0;
  };
  EXPECT_EQ(path("prefill->hbm"), 300u);
  EXPECT_EQ(path("hbm->host"), 300u);
  EXPECT_EQ(path("host->hbm"), 200u);
  EXPECT_EQ(r.bytes_written("host"), 300u);
}

// hbm (1 block) over nvme (10 blocks, seen twice). Requests A B A B A:
//  B evicts A: first offer, rejected; A evicts B: rejected; B evicts A: second offer, admitted.
//  The last A is an nvme hit.
TEST(SimTiers, SeenTwiceAdmissionOnDemotion) {
  SimConfig c;
  c.tiers = {TierConfig{"hbm", 1, "lru", "all"}, TierConfig{"nvme", 10, "lru", "seen_twice"}};
  c.block_bytes = 10;
  Trace t = Blocks({{1}, {2}, {1}, {2}, {1}});
  SimResult r = ReplayTrace(c, t);
  EXPECT_EQ(r.tiers[1].moves.admission_rejected, 2u);
  EXPECT_EQ(r.tiers[1].moves.demoted_in, 2u);  // A at r4, B at r5
  EXPECT_EQ(r.tiers[1].hits, 1u);
  EXPECT_EQ(r.tiers[0].moves.dropped, 2u);
  EXPECT_EQ(r.tiers[1].admission.offered, 4u);
  EXPECT_EQ(r.bytes_written("nvme"), 20u);
}

// Write-through puts every computed block on NVMe at once (subject to admission).
TEST(SimTiers, WriteThrough) {
  SimConfig c;
  c.tiers = {TierConfig{"hbm", 1, "lru", "all"}, TierConfig{"nvme", 10, "lru", "all"}};
  c.block_bytes = 10;
  c.write_through_tier = 1;
  Trace t = Blocks({{1}, {2}, {1}});
  SimResult r = ReplayTrace(c, t);
  EXPECT_EQ(r.tiers[1].moves.written_through, 2u);
  EXPECT_EQ(r.tiers[1].moves.demoted_in, 0u);  // evicted A was already there
  EXPECT_EQ(r.tiers[1].hits, 1u);
}

// The load-versus-recompute decision: a slow link makes loading a host hit slower than
// recomputing it; a fast one makes it faster.
TEST(SimTtft, LoadVersusRecompute) {
  SimConfig c = OneTier(10, "lru");
  c.kv_bytes_per_token = 1000;  // 512,000 bytes per block
  c.prefill_tps = 1000;         // 0.512 s per block
  Trace t = Blocks({{1, 2}, {1, 2}});
  c.links.host_hbm = 1e9;  // 0.5 ms per block: load
  SimResult fast = ReplayTrace(c, t);
  EXPECT_EQ(fast.req_load_all, 1u);
  EXPECT_EQ(fast.req_no_prefix_hit, 1u);
  c.links.host_hbm = 1e5;  // 5 s per block: recompute
  SimResult slow = ReplayTrace(c, t);
  EXPECT_EQ(slow.req_recompute, 1u);
  EXPECT_EQ(slow.prefix_hits, 2u);  // the hit ratio does not depend on the decision
  EXPECT_LT(fast.ttft.mean(), slow.ttft.mean());
  EXPECT_NEAR(slow.ttft.max(), 1.024, 1e-9);
}

// Found by fuzz_trace: a number the JSON parser cannot hold threw out_of_range past the parser's
// parse_error handler and aborted the process.
TEST(SimTrace, OverflowingNumberIsABadLineNotAnAbort) {
  const std::string text =
      "{\"timestamp\": 7e6600, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [1]}\n";
  LoadOptions o;
  LoadStats st;
  auto t = ParseMooncakeJsonl(text, "x.jsonl", o, &st);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("x.jsonl:1: invalid JSON value"), std::string::npos)
      << t.status().message();
}

TEST(SimTrace, MalformedLineStopsWithLineNumber) {
  const std::string text =
      "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [1]}\n"
      "{\"timestamp\": 1, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [1]\n"
      "\n"
      "{\"timestamp\": 2, \"input_length\": 10, \"output_length\": 1}\n"
      "{\"timestamp\": 3, \"input_length\": -5, \"output_length\": 1, \"hash_ids\": []}\n"
      "{\"timestamp\": 4, \"input_length\": 1024, \"output_length\": 1, \"hash_ids\": [1]}\n"
      "{\"timestamp\": 5, \"input_length\": 600, \"output_length\": 1, \"hash_ids\": [1, 2]}\n";
  LoadOptions o;
  LoadStats st;
  auto t = ParseMooncakeJsonl(text, "x.jsonl", o, &st);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("x.jsonl:2: invalid JSON"), std::string::npos)
      << t.status().message();

  o.skip_bad_lines = true;
  auto s = ParseMooncakeJsonl(text, "x.jsonl", o, &st);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->size(), 2u);
  EXPECT_EQ(st.bad_lines, 4u);
  EXPECT_EQ(st.blank_lines, 1u);
  EXPECT_EQ(st.lines, 7u);
  EXPECT_NE(st.first_error.find("x.jsonl:2:"), std::string::npos);

  // Each kind of error names what is wrong.
  uint64_t a, b, c;
  std::vector<uint64_t> ids;
  o.skip_bad_lines = false;
  Status e = ParseMooncakeLine(R"({"timestamp": 2, "input_length": 10, "output_length": 1})", o,
                               &a, &b, &c, &ids);
  EXPECT_NE(e.message().find("missing field 'hash_ids'"), std::string::npos);
  e = ParseMooncakeLine(
      R"({"timestamp": 3, "input_length": -5, "output_length": 1, "hash_ids": []})", o, &a, &b,
      &c, &ids);
  EXPECT_NE(e.message().find("'input_length' is not a non-negative integer"), std::string::npos);
  e = ParseMooncakeLine(
      R"({"timestamp": 4, "input_length": 1024, "output_length": 1, "hash_ids": [1]})", o, &a,
      &b, &c, &ids);
  EXPECT_NE(e.message().find("hash_ids has 1 entries"), std::string::npos);
  e = ParseMooncakeLine(
      R"({"timestamp": 4, "input_length": 10, "output_length": 1, "hash_ids": ["x"]})", o, &a, &b,
      &c, &ids);
  EXPECT_NE(e.message().find("hash_ids[0]"), std::string::npos);
}

TEST(SimTrace, StableSortByTimestamp) {
  Trace t;
  const uint64_t a[] = {1}, b[] = {2}, c[] = {3};
  t.Add(5, 512, 1, a);
  t.Add(3, 512, 1, b);
  t.Add(5, 512, 1, c);
  EXPECT_TRUE(t.SortByArrival());
  EXPECT_EQ(t.at(0).hash_ids[0], 2u);
  EXPECT_EQ(t.at(1).hash_ids[0], 1u);  // file order breaks the tie
  EXPECT_EQ(t.at(2).hash_ids[0], 3u);
}

TEST(SimSynth, DeterministicBySeed) {
  SynthOptions o;
  o.requests = 3000;
  o.seed = 42;
  auto digest = [](SynthOptions so, uint64_t* blocks, uint64_t* unique) {
    SyntheticSource src(so);
    Request r;
    uint64_t h = 1469598103934665603ull, last_ts = 0;
    std::unordered_set<uint64_t> u;
    *blocks = 0;
    while (src.Next(&r)) {
      EXPECT_GE(r.timestamp_ms, last_ts);
      last_ts = r.timestamp_ms;
      EXPECT_EQ(r.hash_ids.size(), (r.input_length + 511) / 512);
      h = (h ^ r.timestamp_ms ^ r.input_length * 31) * 1099511628211ull;
      for (uint64_t id : r.hash_ids) h = (h ^ id) * 1099511628211ull, u.insert(id);
      *blocks += r.hash_ids.size();
    }
    *unique = u.size();
    return h;
  };
  uint64_t b1, u1, b2, u2, b3, u3;
  const uint64_t h1 = digest(o, &b1, &u1);
  const uint64_t h2 = digest(o, &b2, &u2);
  EXPECT_EQ(h1, h2);
  EXPECT_EQ(b1, b2);
  o.seed = 43;
  EXPECT_NE(digest(o, &b3, &u3), h1);
  // Shared prompts, documents and multi-turn growth make blocks repeat.
  EXPECT_LT(u1, b1);
  EXPECT_GT(1.0 - double(u1) / b1, 0.2);
}

TEST(SimSynth, ParseSpec) {
  SynthOptions o;
  ASSERT_TRUE(ParseSynthSpec("requests=1M,seed=7,rate=10,turns=3", &o).ok());
  EXPECT_EQ(o.requests, 1000000u);
  EXPECT_EQ(o.seed, 7u);
  EXPECT_FALSE(ParseSynthSpec("nope=1", &o).ok());
  EXPECT_FALSE(ParseSynthSpec("rate=0", &o).ok());
}

// The infinite-capacity ratio on the real conversation trace is 1 - unique/total
// (182,790 unique of 288,500), for block and prefix hits alike.
TEST(SimRealTrace, InfiniteCapacityIsIdeal) {
  LoadStats st;
  auto t = LoadMooncakeJsonl(SourceTrace(), LoadOptions{}, &st);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->size(), 12031u);
  EXPECT_EQ(t->total_blocks(), 288500u);
  SimResult r = ReplayTrace(OneTier(UINT64_MAX, "lru"), *t);
  EXPECT_EQ(r.blocks_total, 288500u);
  EXPECT_EQ(r.blocks_unique, 182790u);
  EXPECT_EQ(r.block_hits, 288500u - 182790u);
  EXPECT_EQ(r.prefix_hits, 288500u - 182790u);
  EXPECT_DOUBLE_EQ(r.block_hit_ratio(), 1.0 - 182790.0 / 288500.0);
  EXPECT_DOUBLE_EQ(r.prefix_hit_ratio(), 1.0 - 182790.0 / 288500.0);
}

TEST(SimCluster, LocalVersusGlobal) {
  auto t = LoadMooncakeJsonl(SourceTrace(), LoadOptions{}, nullptr);
  ASSERT_TRUE(t.ok());
  const Trace* tp = &*t;
  SourceFactory f = [tp] { return std::unique_ptr<RequestSource>(new TraceSource(tp)); };
  ClusterConfig c;
  c.node = OneTier(2000, "lru");
  // One node: local and global are the same cache.
  c.nodes = 1;
  auto one = RunCluster(c, f);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->local.block_hits, one->global.block_hits);
  // Four round-robin nodes: every request lands somewhere; the shared pool hits more.
  c.nodes = 4;
  auto rr = RunCluster(c, f);
  ASSERT_TRUE(rr.ok());
  uint64_t sum = 0;
  for (uint64_t n : rr->node_requests) sum += n;
  EXPECT_EQ(sum, 12031u);
  EXPECT_EQ(rr->local.requests, 12031u);
  EXPECT_EQ(rr->local.blocks_total, 288500u);
  EXPECT_EQ(rr->global.tiers[0].cfg.capacity_blocks, 8000u);
  EXPECT_GT(rr->global.prefix_hit_ratio(), rr->local.prefix_hit_ratio());
  // Cache-aware routing recovers part of the gap and stays within its load bound.
  c.routing = Routing::kCacheAware;
  auto ca = RunCluster(c, f);
  ASSERT_TRUE(ca.ok());
  EXPECT_GT(ca->local.prefix_hit_ratio(), rr->local.prefix_hit_ratio());
  for (uint64_t n : ca->node_requests) EXPECT_LT(n, 12031u * 0.35);
}

TEST(SimCli, SingleTierJsonReplay) {
  auto o = ParseArgs({"--trace", SourceTrace(), "--policy", "lru", "--capacity-blocks", "18279",
                      "--json", "--no-progress"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  std::ostringstream out, err;
  ASSERT_EQ(RunCli(*o, "", out, err), 0) << err.str();
  auto j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j["requests"], 12031);
  EXPECT_EQ(j["blocks_total"], 288500);
  EXPECT_EQ(j["blocks_unique"], 182790);
  for (const char* k : {"block_hit_ratio", "prefix_hit_ratio", "token_hit_ratio"}) {
    EXPECT_TRUE(j[k].is_number_float()) << k;
  }
  ASSERT_EQ(j["tiers"].size(), 1u);
  EXPECT_EQ(j["tiers"][0]["name"], "host");
  EXPECT_EQ(j["tiers"][0]["capacity_blocks"], 18279);
  EXPECT_EQ(j["tiers"][0]["hits"], 80460);  // LRU at 10% of unique, checked independently
  EXPECT_DOUBLE_EQ(j["tiers"][0]["block_hit_ratio"].get<double>(), 80460.0 / 288500);
}

TEST(SimCli, FlagErrors) {
  EXPECT_FALSE(ParseArgs({"--bogus"}).ok());
  EXPECT_FALSE(ParseArgs({"--capacity-blocks"}).ok());
  EXPECT_FALSE(ParseArgs({"--policy", "mru"}).ok());
  EXPECT_FALSE(ParseArgs({"--capacity-blocks", "5", "--tier", "hbm=1GiB"}).ok());
  EXPECT_FALSE(ParseArgs({"--tier", "disk=1GiB"}).ok());
  EXPECT_FALSE(ParseArgs({"--json=1"}).ok());
  auto o = ParseArgs({"--tier=hbm=40GiB", "--tier", "nvme=4TB,policy=s3fifo,admit=seen_twice"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  ASSERT_EQ(o->tiers.size(), 2u);
  EXPECT_EQ(o->tiers[1].policy, "s3fifo");
  EXPECT_TRUE(ParseArgs({}).ok());
  EXPECT_TRUE(ParseArgs({})->default_job);
  EXPECT_FALSE(FindEmbeddedTrace("").empty());
}

// Issue 14: a line that is not UTF-8 aborted kvtier-sim --json --skip-bad-lines (nlohmann
// type_error 316 while dumping the quoted line). Skipped, it is counted and quoted as \xNN; not
// skipped, it stops the run with exit 2 and a message.
TEST(SimCli, NonUtf8LineIsSkippedOrExitsTwo) {
  testing::TestDir d;
  const std::string path = d.file("bad\xfe.jsonl");
  std::ofstream(path, std::ios::binary)
      << "{\"timestamp\":0,\"input_length\":16,\"output_length\":1,\"hash_ids\":[1]}\n\xff\n"
      << "{\"timestamp\":1,\"input_length\":16,\"output_length\":1,\"hash_ids\":[\"\xc3\"]}\n";
  auto o = ParseArgs({"--trace", path, "--capacity-blocks", "10", "--json", "--no-progress",
                      "--skip-bad-lines"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  std::ostringstream out, err;
  ASSERT_EQ(RunCli(*o, "", out, err), 0) << err.str();
  auto j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j["requests"], 1);
  EXPECT_EQ(j["input"]["bad_lines"], 2);
  const std::string first = j["input"]["first_error"];
  EXPECT_NE(first.find(":2: invalid JSON"), std::string::npos) << first;
  EXPECT_NE(first.find("\\xff"), std::string::npos) << first;
  EXPECT_NE(err.str().find("skipped 2 malformed"), std::string::npos) << err.str();

  o = ParseArgs({"--trace", path, "--capacity-blocks", "10", "--json", "--no-progress"});
  ASSERT_TRUE(o.ok());
  std::ostringstream out2, err2;
  EXPECT_EQ(RunCli(*o, "", out2, err2), 2);
  EXPECT_NE(err2.str().find(".jsonl:2: invalid JSON"), std::string::npos) << err2.str();
  EXPECT_TRUE(out2.str().empty());
}

TEST(SimModel, PresetsAndCapacities) {
  auto m = ModelFromPreset("Llama-3-70B", DType::kBf16, 512);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->kv_bytes_per_token(), 327680u);  // 320 KiB, the Mooncake paper's figure
  auto d = ModelFromPreset("deepseek-v3", DType::kBf16, 512);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->kv_bytes_per_token(), 61u * 576 * 2);
  auto g = ModelFromGeometry("layers=32,kv_heads=8,head_dim=128,params=8e9", DType::kBf16, 512);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->kv_bytes_per_token(), 131072u);
  auto c = ParseCapacity("3Mtok");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->Blocks(1, 512), 5859u);
  EXPECT_EQ(ParseCapacity("1000blk")->Blocks(1, 512), 1000u);
  EXPECT_EQ(ParseCapacity("1GiB")->Blocks(1 << 20, 512), 1024u);
  EXPECT_FALSE(ParseCapacity("12 apples").ok());
  EXPECT_DOUBLE_EQ(*ParseBandwidth("100Gbit/s"), 12.5e9);
  EXPECT_DOUBLE_EQ(*ParseBandwidth("50GB/s"), 50e9);
}

}  // namespace
}  // namespace kvt::sim
