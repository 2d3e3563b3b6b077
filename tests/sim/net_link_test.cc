// kvtier-sim with measured link figures: the net bandwidth taken from kvtier-bench's JSON (the
// wan/ rows), a per-load latency, and the one-prompt load-versus-recompute answer.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tools/sim/app.h"
#include "tools/sim/simulator.h"

namespace kvt::sim {
namespace {

// A kvtier-bench --json file with wan/ rows (GB/s).
class BenchJson {
 public:
  explicit BenchJson(const std::string& text) {
    path_ = "/tmp/kvt-sim-net-" + std::to_string(::getpid()) + "-" + std::to_string(n_++) + ".json";
    std::ofstream(path_) << text;
  }
  ~BenchJson() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  static inline int n_ = 0;
  std::string path_;
};

const char* kBench = R"({"results": [
  {"path": "net/remote_get", "gbps": 3.0},
  {"path": "wan/fetch_1000mbit", "gbps": 0.11},
  {"path": "wan/fetch_5000mbit", "gbps": 0.55},
  {"path": "wan/fetch_1conn_5000mbit", "gbps": 0.2}]})";

nlohmann::json Prompt(std::vector<std::string> args, int* rc) {
  args.insert(args.end(), {"--prompt-tokens", "8192", "--model", "deepseek-v3", "--gpus", "1",
                           "--gpu", "h100", "--mfu", "0.5", "--block-tokens", "64", "--json"});
  auto o = ParseArgs(args);
  EXPECT_TRUE(o.ok()) << o.status().ToString();
  std::ostringstream out, err;
  *rc = RunCli(*o, "", out, err);
  return *rc == 0 ? nlohmann::json::parse(out.str()) : nlohmann::json{{"err", err.str()}};
}

TEST(SimNetLink, PromptDecisionFollowsTheMeasuredRow) {
  BenchJson b(kBench);
  int rc = 0;
  // deepseek-v3 bf16 (MLA, 61 layers x 576): 70,272 bytes/token; 1x H100 at MFU 0.5: 989e12 *
  // 0.5 / (2 * 37e9) = 6,682 tokens/s, so 8192 tokens recompute in 1.226 s.
  const double bytes = 8192.0 * 70272;
  auto slow = Prompt({"--bw-net-from", b.path()}, &rc);  // default: the first wan/fetch_ row
  ASSERT_EQ(rc, 0) << slow.dump();
  EXPECT_EQ(slow["net_source"], "measured: wan/fetch_1000mbit in " + b.path());
  EXPECT_NEAR(slow["load_s"].get<double>(), bytes / 0.11e9, 1e-9);
  EXPECT_NEAR(slow["recompute_s"].get<double>(), 8192 / (989e12 * 0.5 / 74e9), 1e-9);
  EXPECT_EQ(slow["decision"], "recompute");
  EXPECT_DOUBLE_EQ(slow["ttft_s"]["with_remote_tier"].get<double>(), slow["recompute_s"].get<double>());

  auto fast = Prompt({"--bw-net-from", b.path(), "--bw-net-row", "wan/fetch_5000mbit"}, &rc);
  ASSERT_EQ(rc, 0) << fast.dump();
  EXPECT_NEAR(fast["load_s"].get<double>(), bytes / 0.55e9, 1e-9);
  EXPECT_EQ(fast["decision"], "load");
  EXPECT_LT(fast["ttft_s"]["with_remote_tier"].get<double>(), fast["recompute_s"].get<double>());

  // A latency per load counts: half a second more makes recomputing faster again.
  auto late = Prompt({"--bw-net-from", b.path(), "--bw-net-row", "wan/fetch_5000mbit",
                      "--net-latency-ms", "500"}, &rc);
  ASSERT_EQ(rc, 0) << late.dump();
  EXPECT_NEAR(late["load_s"].get<double>(), 0.5 + bytes / 0.55e9, 1e-9);
  EXPECT_EQ(late["decision"], "recompute");
}

TEST(SimNetLink, BadBenchInputIsAUsageError) {
  int rc = 0;
  Prompt({"--bw-net-from", "/nonexistent/bench.json"}, &rc);
  EXPECT_EQ(rc, 2);
  BenchJson no_wan(R"({"results": [{"path": "net/remote_get", "gbps": 3.0}]})");
  auto j = Prompt({"--bw-net-from", no_wan.path()}, &rc);
  EXPECT_EQ(rc, 2);
  EXPECT_NE(j["err"].get<std::string>().find("wan/fetch_"), std::string::npos);
  BenchJson garbage("not json");
  Prompt({"--bw-net-from", garbage.path()}, &rc);
  EXPECT_EQ(rc, 2);
  BenchJson zero(R"({"results": [{"path": "wan/fetch_1000mbit", "gbps": 0}]})");
  Prompt({"--bw-net-from", zero.path()}, &rc);
  EXPECT_EQ(rc, 2);
  BenchJson good(kBench);
  Prompt({"--bw-net-from", good.path(), "--bw-net", "1Gbit/s"}, &rc);
  EXPECT_EQ(rc, 2);
  Prompt({"--bw-net-row", "wan/fetch_1000mbit"}, &rc);
  EXPECT_EQ(rc, 2);
}

// In a replay, a remote hit's load pays the latency once plus its bytes over the net link.
TEST(SimNetLink, ReplayRemoteLoadPaysTheLatency) {
  SimConfig c;
  c.tiers = {TierConfig{"remote", 10, "lru", "all"}};
  c.block_bytes = 512'000;
  c.kv_bytes_per_token = 1000;
  c.prefill_tps = 1000;  // 0.512 s per block
  c.links.net = 1e9;     // 0.5 ms per block
  Trace t;
  const std::vector<uint64_t> ids = {1, 2};
  t.Add(0, 1024, 1, ids);
  t.Add(1, 1024, 1, ids);
  auto run = [&](double latency_s) {
    c.links.net_latency_s = latency_s;
    TraceSource src(&t);
    auto r = Replay(c, src);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return *r;
  };
  SimResult quick = run(0);
  EXPECT_EQ(quick.req_load_all, 1u);
  SimResult near = run(0.1);  // 0.1 s + 1 ms load, then 1 token: still faster than 1.024 s
  EXPECT_EQ(near.req_load_all, 1u);
  EXPECT_NEAR(near.ttft.max(), 1.024, 1e-9);  // the first request computed everything
  SimResult far = run(2.0);
  EXPECT_EQ(far.req_recompute, 1u);
}

}  // namespace
}  // namespace kvt::sim
