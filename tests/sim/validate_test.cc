// kvtier-sim --validate: the metadata-only simulator and a real store (host tier over an NVMe tier,
// real bytes) replay the same requests and must locate every block in the same tier; the check
// itself must catch a store that behaves differently.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/sim/app.h"
#include "tools/sim/simulator.h"
#include "tools/sim/trace.h"
#include "tools/sim/validate.h"

namespace kvt::sim {
namespace {

std::string ValidateTrace() {
  return std::string(KVT_SOURCE_DIR) + "/data/traces/conversation_trace.jsonl";
}

const Trace& RealTrace() {
  static const Trace* t = [] {
    auto r = LoadMooncakeJsonl(ValidateTrace(), LoadOptions{}, nullptr);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return new Trace(r.ok() ? std::move(r).value() : Trace());
  }();
  return *t;
}

// The first n requests of the real trace.
Trace Head(size_t n) {
  Trace out;
  for (size_t i = 0; i < n && i < RealTrace().size(); ++i) {
    Request r = RealTrace().at(i);
    out.Add(r.timestamp_ms, r.input_length, r.output_length, r.hash_ids);
  }
  return out;
}

ValidateConfig Config(std::vector<TierConfig> tiers, uint64_t requests) {
  ValidateConfig c;
  c.sim.tiers = std::move(tiers);
  c.sim.block_tokens = 512;
  c.max_requests = requests;
  c.block_bytes = 4096;  // the smallest block: keeps the test's I/O small
  return c;
}

StatusOr<ValidateReport> RunValidate(const ValidateConfig& c, const Trace& t) {
  TraceSource src(&t);
  return Validate(c, src);
}

// The metadata-only replay on its own (no store anywhere), for comparison with the report.
SimResult MetadataOnly(const ValidateConfig& c, const Trace& t) {
  SimConfig s = c.sim;
  s.block_bytes = c.block_bytes;
  s.prefill_tps = 0;
  for (TierConfig& tc : s.tiers) {
    if (tc.name == "nvme") tc.capacity_blocks = UINT64_MAX;
  }
  TraceSource src(&t);
  auto r = Replay(s, src);
  EXPECT_TRUE(r.ok());
  return *r;
}

void ExpectAgree(const ValidateReport& r, const SimResult& meta) {
  EXPECT_TRUE(r.agree()) << r.first_mismatch << " " << r.first_failure;
  EXPECT_EQ(r.mismatched_blocks, 0u) << r.first_mismatch;
  EXPECT_EQ(r.wrong_blocks, 0u);
  EXPECT_EQ(r.failed_calls, 0u) << r.first_failure;
  EXPECT_GT(r.bytes_checked, 0u);
  // The store's hit ratios equal those of a separate metadata-only run.
  EXPECT_EQ(r.store_block_hits, meta.block_hits);
  EXPECT_EQ(r.store_prefix_hits, meta.prefix_hits);
  EXPECT_EQ(r.store_prefix_hit_tokens, meta.prefix_hit_tokens);
  EXPECT_DOUBLE_EQ(r.store_prefix_hit_ratio(), meta.prefix_hit_ratio());
  EXPECT_DOUBLE_EQ(r.store_token_hit_ratio(), meta.token_hit_ratio());
  ASSERT_EQ(r.tiers.size(), meta.tiers.size());
  for (size_t t = 0; t < r.tiers.size(); ++t) {
    EXPECT_EQ(r.tiers[t].store_hits, meta.tiers[t].hits) << r.tiers[t].name;
    EXPECT_EQ(r.tiers[t].store_prefix_hits, meta.tiers[t].prefix_hits) << r.tiers[t].name;
  }
}

class ValidatePolicy : public ::testing::TestWithParam<const char*> {};

// Host at a small capacity over NVMe: evictions demote, NVMe hits promote, for each policy.
TEST_P(ValidatePolicy, HostOverNvmeAgrees) {
  const Trace t = Head(200);
  ValidateConfig c = Config({TierConfig{"host", 300, GetParam(), "all"},
                             TierConfig{"nvme", UINT64_MAX, "lru", "all"}},
                            200);
  auto r = RunValidate(c, t);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectAgree(*r, MetadataOnly(c, t));
  // The configuration exercises every movement.
  EXPECT_GT(r->tiers[0].store_hits, 0u);
  EXPECT_GT(r->tiers[1].store_hits, 0u);
  EXPECT_GT(r->store_nvme_writes, 0u);
  EXPECT_GT(r->store_promotions, 0u);
  EXPECT_EQ(r->store_nvme_writes, r->sim_nvme_writes);
  EXPECT_EQ(r->store_promotions, r->sim_promotions);
}

INSTANTIATE_TEST_SUITE_P(Policies, ValidatePolicy,
                         ::testing::Values("lru", "s3fifo", "chain_lru"));

TEST(Validate, SeenTwiceAdmissionAgrees) {
  const Trace t = Head(300);
  ValidateConfig c = Config({TierConfig{"host", 300, "lru", "all"},
                             TierConfig{"nvme", UINT64_MAX, "lru", "seen_twice"}},
                            300);
  auto r = RunValidate(c, t);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectAgree(*r, MetadataOnly(c, t));
  // Admission refused most single-use blocks: fewer writes than evictions would give.
  EXPECT_LT(r->store_nvme_writes, r->blocks_unique - 300);
}

TEST(Validate, WriteThroughAgrees) {
  const Trace t = Head(120);
  ValidateConfig c = Config({TierConfig{"host", 250, "s3fifo", "all"},
                             TierConfig{"nvme", UINT64_MAX, "lru", "all"}},
                            120);
  c.sim.write_through_tier = 1;
  auto r = RunValidate(c, t);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectAgree(*r, MetadataOnly(c, t));
}

TEST(Validate, HostOnlyAgrees) {
  const Trace t = Head(300);
  ValidateConfig c = Config({TierConfig{"host", 1000, "lru", "all"}}, 300);
  auto r = RunValidate(c, t);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectAgree(*r, MetadataOnly(c, t));
  EXPECT_EQ(r->store_nvme_writes, 0u);
}

// A trace where block 7 follows block 1 in one request and block 2 in another. The simulator keys
// blocks by id alone and calls the second a hit; the store keeps the parent of every block and
// refuses a hit under another parent (a collision). The check must see the difference.
TEST(Validate, CatchesAStoreThatDisagrees) {
  Trace t;
  const std::vector<uint64_t> a{1, 7}, b{2, 7};
  t.Add(0, 1024, 1, a);
  t.Add(1, 1024, 1, b);
  ValidateConfig c = Config({TierConfig{"host", 10, "lru", "all"}}, 10);
  auto r = RunValidate(c, t);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->agree());
  EXPECT_EQ(r->mismatched_blocks, 1u);
  EXPECT_NE(r->first_mismatch.find("request 1 block 1"), std::string::npos) << r->first_mismatch;
  EXPECT_EQ(r->store_block_hits + 1, r->sim.block_hits);
  EXPECT_EQ(r->wrong_blocks, 0u);  // the store served nothing wrong: it missed
}

TEST(Validate, RefusesWhatItCannotCompare) {
  const Trace t = Head(50);
  auto refused = [&](std::vector<TierConfig> tiers, const char* needle) {
    auto r = RunValidate(Config(std::move(tiers), 50), t);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
  };
  refused({TierConfig{"hbm", 100, "lru", "all"}, TierConfig{"host", 100, "lru", "all"}},
          "host tier, or host then nvme");
  refused({TierConfig{"host", 100, "lru", "all"}, TierConfig{"nvme", 10, "lru", "all"}},
          "reclaims NVMe a whole segment");
  refused({TierConfig{"host", 100, "lru", "all"},
           TierConfig{"nvme", UINT64_MAX, "lru", "budget:1TB"}},
          "wall clock");
  refused({TierConfig{"host", UINT64_MAX, "lru", "all"}}, "bounded");
  ValidateConfig odd = Config({TierConfig{"host", 10, "lru", "all"}}, 10);
  odd.block_bytes = 5000;
  EXPECT_FALSE(RunValidate(odd, t).ok());
}

TEST(Validate, CommandLineDefaultAgreesAndPrintsJson) {
  auto o = ParseArgs({"--trace", ValidateTrace(), "--validate", "--validate-requests", "100",
                      "--validate-block-bytes", "4KiB", "--json", "--no-progress"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  std::ostringstream out, err;
  ASSERT_EQ(RunCli(*o, "", out, err), 0) << err.str() << out.str();
  auto j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j["agree"], true);
  EXPECT_EQ(j["requests"], 100);
  EXPECT_EQ(j["simulator"]["prefix_hit_ratio"], j["store"]["prefix_hit_ratio"]);
  ASSERT_EQ(j["tiers"].size(), 2u);  // the default: host at 10% over an unbounded nvme
  EXPECT_EQ(j["tiers"][1]["capacity_blocks"], nullptr);
  EXPECT_FALSE(ParseArgs({"--validate-requests", "0"}).ok());
  EXPECT_FALSE(ParseArgs({"--validate-block-bytes", "1000"}).ok());
}

}  // namespace
}  // namespace kvt::sim
