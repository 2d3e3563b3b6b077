// The etcd client and the membership watcher against a real etcd: joins, leaves, lease expiry,
// etcd lost and back (resume from the right revision), compaction while away, malformed values,
// and the visibility latency of a membership change (printed, not asserted).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "membership/etcd_membership.h"
#include "membership/etcd_registration.h"
#include "tests/membership/etcd_fixture.h"

namespace kvt::etcd {
namespace {

using Clock = std::chrono::steady_clock;
using testing::EtcdProcess;
using testing::WaitUntil;

#define START_ETCD(e)                                                          \
  EtcdProcess e;                                                               \
  if (EtcdProcess::Binary().empty()) GTEST_SKIP() << "etcd is not installed (Debian: etcd-server)"; \
  ASSERT_TRUE(e.Start()) << e.why()

// Records every node set the watcher reports, with when.
struct Recorder {
  std::mutex mu;
  std::vector<std::string> last;
  Clock::time_point when;
  size_t calls = 0;
  EtcdMembership::OnChange fn() {
    return [this](const std::vector<std::string>& s) {
      std::lock_guard<std::mutex> l(mu);
      last = s;
      when = Clock::now();
      ++calls;
    };
  }
  std::vector<std::string> get() {
    std::lock_guard<std::mutex> l(mu);
    return last;
  }
  Clock::time_point When() {
    std::lock_guard<std::mutex> l(mu);
    return when;
  }
  bool Is(std::vector<std::string> want) {
    std::sort(want.begin(), want.end());
    return get() == want;
  }
};

std::string Value(const std::string& address) {
  NodeInfo n;
  n.address = address;
  return EncodeNodeInfo(n);
}

MembershipOptions Opts(const Url& u, const std::string& prefix) {
  MembershipOptions o;
  o.etcd = u;
  o.prefix = prefix;
  return o;
}

TEST(EtcdClientTest, LeasesKeysAndRangesOnARealEtcd) {
  START_ETCD(etcd);
  EtcdClient c(etcd.url());
  int64_t ttl = 0;
  auto lease = c.GrantLease(1, &ttl);
  ASSERT_TRUE(lease.ok()) << lease.status().ToString();
  EXPECT_GE(ttl, 1);
  ASSERT_TRUE(c.Put("/t/a", "1", *lease).ok());
  ASSERT_TRUE(c.Put("/t/b", std::string("\0\xff", 2)).ok());
  ASSERT_TRUE(c.Put("/u/c", "3").ok());
  auto r = c.RangePrefix("/t/");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->kvs.size(), 2u);
  EXPECT_EQ(r->kvs[0].key, "/t/a");
  EXPECT_EQ(r->kvs[0].lease, *lease);
  EXPECT_EQ(r->kvs[1].value, std::string("\0\xff", 2));
  EXPECT_TRUE(c.KeepAlive(*lease).ok());
  ASSERT_TRUE(c.RevokeLease(*lease).ok());
  EXPECT_EQ(c.KeepAlive(*lease).status().code(), Code::kNotFound);
  r = c.RangePrefix("/t/");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->kvs.size(), 1u);  // the leased key went with its lease
  ASSERT_TRUE(c.Delete("/t/b").ok());
  EXPECT_TRUE(c.RangePrefix("/t/")->kvs.empty());
}

TEST(EtcdMembershipTest, NodesJoinAndLeaveAndAnExpiredLeaseRemovesItsNode) {
  START_ETCD(etcd);
  EtcdClient c(etcd.url());
  ASSERT_TRUE(c.Put("/kvtier/j/127.0.0.1:1001", Value("127.0.0.1:1001")).ok());
  Recorder rec;
  auto m = EtcdMembership::Start(Opts(etcd.url(), "/kvtier/j"), rec.fn());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_TRUE(rec.Is({"127.0.0.1:1001"}));  // the set read at start, reported before Start returns
  // A key beside the prefix is no node of this cluster.
  ASSERT_TRUE(c.Put("/kvtier/jx/127.0.0.1:9", Value("127.0.0.1:9")).ok());
  ASSERT_TRUE(c.Put("/kvtier/j/127.0.0.1:1002", Value("127.0.0.1:1002")).ok());
  ASSERT_TRUE(WaitUntil([&] { return rec.Is({"127.0.0.1:1001", "127.0.0.1:1002"}); }));
  ASSERT_TRUE(c.Delete("/kvtier/j/127.0.0.1:1001").ok());
  ASSERT_TRUE(WaitUntil([&] { return rec.Is({"127.0.0.1:1002"}); }));
  // A lease nobody keeps alive expires; etcd deletes its key and the watcher drops the node.
  auto lease = c.GrantLease(1);
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(c.Put("/kvtier/j/127.0.0.1:1003", Value("127.0.0.1:1003"), *lease).ok());
  ASSERT_TRUE(WaitUntil([&] { return rec.Is({"127.0.0.1:1002", "127.0.0.1:1003"}); }));
  ASSERT_TRUE(WaitUntil([&] { return rec.Is({"127.0.0.1:1002"}); }));
  EXPECT_EQ((*m)->counters().nodes.load(), 1u);
  EXPECT_GE((*m)->counters().changes.load(), 4u);
  EXPECT_EQ((*m)->counters().etcd_errors.load(), 0u);
}

TEST(EtcdMembershipTest, RegistrationKeepsItsLeaseAliveAndDeregisterDeletesAtOnce) {
  START_ETCD(etcd);
  RegistrationOptions ro;
  ro.etcd = etcd.url();
  ro.prefix = "/kvtier/r";
  ro.address = "127.0.0.1:2001";
  ro.value = Value(ro.address);
  ro.ttl_s = 1;  // etcd raises it to its minimum (2 s with default timings)
  auto reg = EtcdRegistration::Start(ro);
  ASSERT_TRUE(reg.ok()) << reg.status().ToString();
  Recorder rec;
  auto m = EtcdMembership::Start(Opts(etcd.url(), "/kvtier/r"), rec.fn());
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(rec.Is({"127.0.0.1:2001"}));
  // Kept alive well past several TTLs.
  ASSERT_TRUE(WaitUntil([&] { return (*reg)->counters().keepalives.load() >= 6; }));
  EXPECT_TRUE(rec.Is({"127.0.0.1:2001"}));
  ASSERT_TRUE((*reg)->Deregister().ok());
  EXPECT_TRUE(EtcdClient(etcd.url()).RangePrefix("/kvtier/r/")->kvs.empty());
  ASSERT_TRUE(WaitUntil([&] { return rec.Is({}); }));
}

TEST(EtcdMembershipTest, EtcdLostKeepsTheSetCountsAndResumesFromTheRightRevision) {
  START_ETCD(etcd);
  testing::GatedProxy proxy(etcd.client_port());
  const Url via{"127.0.0.1", proxy.port()};
  EtcdClient c(etcd.url());
  ASSERT_TRUE(c.Put("/kvtier/g/a:1", Value("a:1")).ok());
  ASSERT_TRUE(c.Put("/kvtier/g/b:1", Value("b:1")).ok());
  Recorder rec;
  auto m = EtcdMembership::Start(Opts(via, "/kvtier/g"), rec.fn());
  ASSERT_TRUE(m.ok());
  const MembershipCounters& k = (*m)->counters();
  ASSERT_TRUE(rec.Is({"a:1", "b:1"}));
  ASSERT_TRUE(WaitUntil([&] { return k.connected.load() == 1; }));

  // Lost: the last known set stays; errors are counted while it retries.
  proxy.Close();
  ASSERT_TRUE(WaitUntil([&] { return k.etcd_errors.load() >= 2; }));
  EXPECT_TRUE(rec.Is({"a:1", "b:1"}));
  // Changes while it is away are replayed from the revision after the last one it applied.
  ASSERT_TRUE(c.Delete("/kvtier/g/a:1").ok());
  ASSERT_TRUE(c.Put("/kvtier/g/c:1", Value("c:1")).ok());
  proxy.Open();
  ASSERT_TRUE(WaitUntil([&] { return rec.Is({"b:1", "c:1"}); }));
  EXPECT_GE(k.watch_restarts.load(), 1u);
  EXPECT_EQ(k.compactions.load(), 0u);

  // Away again, and this time etcd compacts its history past the watcher's revision: the
  // watch is cancelled with compact_revision and the prefix is read again.
  proxy.Close();
  ASSERT_TRUE(WaitUntil([&] { return k.connected.load() == 0; }));
  ASSERT_TRUE(c.Put("/kvtier/g/d:1", Value("d:1")).ok());
  ASSERT_TRUE(c.Delete("/kvtier/g/b:1").ok());
  ASSERT_TRUE(c.Put("/kvtier/g/e:1", Value("e:1")).ok());
  ASSERT_TRUE(c.Delete("/kvtier/g/d:1").ok());
  auto r = c.RangePrefix("/kvtier/g/");
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(c.Compact(r->revision).ok());
  proxy.Open();
  ASSERT_TRUE(WaitUntil([&] { return k.compactions.load() >= 1; }));
  ASSERT_TRUE(WaitUntil([&] { return rec.Is({"c:1", "e:1"}); }));
  // And it keeps following after the re-read.
  ASSERT_TRUE(c.Put("/kvtier/g/f:1", Value("f:1")).ok());
  ASSERT_TRUE(WaitUntil([&] { return rec.Is({"c:1", "e:1", "f:1"}); }));
}

TEST(EtcdMembershipTest, MalformedValuesAreSkippedAndCounted) {
  START_ETCD(etcd);
  EtcdClient c(etcd.url());
  ASSERT_TRUE(c.Put("/kvtier/m/x1", "not json").ok());
  ASSERT_TRUE(c.Put("/kvtier/m/x2", R"({"address":5})").ok());
  ASSERT_TRUE(c.Put("/kvtier/m/x3", R"({"address":"no-port"})").ok());
  ASSERT_TRUE(c.Put("/kvtier/m/ok", Value("good:1")).ok());
  Recorder rec;
  auto m = EtcdMembership::Start(Opts(etcd.url(), "/kvtier/m"), rec.fn());
  ASSERT_TRUE(m.ok());
  const MembershipCounters& k = (*m)->counters();
  EXPECT_TRUE(rec.Is({"good:1"}));
  EXPECT_EQ(k.malformed.load(), 3u);
  ASSERT_TRUE(c.Put("/kvtier/m/x4", std::string("\x01\xfe{", 3)).ok());
  ASSERT_TRUE(WaitUntil([&] { return k.malformed.load() == 4; }));
  EXPECT_TRUE(rec.Is({"good:1"}));
  // A node whose value turns bad is no node any more.
  ASSERT_TRUE(c.Put("/kvtier/m/ok", "{").ok());
  ASSERT_TRUE(WaitUntil([&] { return rec.Is({}); }));
  EXPECT_EQ(k.malformed.load(), 5u);
  ASSERT_TRUE(c.Put("/kvtier/m/ok", Value("good:2")).ok());
  ASSERT_TRUE(WaitUntil([&] { return rec.Is({"good:2"}); }));
}

TEST(EtcdMembershipTest, EtcdDownAtStartIsAClearError) {
  const uint16_t port = testing::FreeLoopbackPort();  // nothing listens there
  Recorder rec;
  auto m = EtcdMembership::Start(Opts(Url{"127.0.0.1", port}, "/kvtier/d"), rec.fn());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), Code::kUnavailable);
  EXPECT_NE(m.status().message().find("etcd"), std::string::npos) << m.status().ToString();
  RegistrationOptions ro;
  ro.etcd = Url{"127.0.0.1", port};
  ro.prefix = "/kvtier/d";
  ro.address = "127.0.0.1:1";
  ro.value = Value(ro.address);
  auto reg = EtcdRegistration::Start(ro);
  ASSERT_FALSE(reg.ok());
  EXPECT_NE(reg.status().message().find("etcd"), std::string::npos) << reg.status().ToString();
}

// Issue 15's target: a membership change is visible within 1 s of a node registering or of its
// lease expiring. Printed for the report (a loaded machine says nothing about the design); the
// limits only bound a hang.
TEST(EtcdMembershipTest, MembershipChangeLatency) {
  START_ETCD(etcd);
  EtcdClient c(etcd.url());
  Recorder rec;
  auto m = EtcdMembership::Start(Opts(etcd.url(), "/kvtier/lat"), rec.fn());
  ASSERT_TRUE(m.ok());
  std::vector<double> join_ms, expiry_ms;
  for (int round = 0; round < 3; ++round) {
    const std::string addr = "127.0.0.1:" + std::to_string(3000 + round);
    int64_t ttl = 0;
    const auto t0 = Clock::now();
    auto lease = c.GrantLease(1, &ttl);
    ASSERT_TRUE(lease.ok());
    const auto granted = Clock::now();
    ASSERT_TRUE(c.Put("/kvtier/lat/" + addr, Value(addr), *lease).ok());
    ASSERT_TRUE(WaitUntil([&] { return rec.Is({addr}); }));
    join_ms.push_back(std::chrono::duration<double, std::milli>(rec.When() - t0).count());
    ASSERT_TRUE(WaitUntil([&] { return rec.Is({}); }));
    // The lease expires TTL after etcd granted it, which was before `granted`: this figure is
    // an upper bound of the time from expiry to removal at the client.
    expiry_ms.push_back(std::chrono::duration<double, std::milli>(rec.When() - granted).count() -
                        ttl * 1000.0);
  }
  std::sort(join_ms.begin(), join_ms.end());
  std::sort(expiry_ms.begin(), expiry_ms.end());
  std::printf("membership latency (3 rounds, local etcd 3.4, watch): registration (grant + put) "
              "to visible median %.1f ms, max %.1f ms; lease expiry to removed median %.1f ms, "
              "max %.1f ms (target: within 1000 ms)\n",
              join_ms[1], join_ms[2], expiry_ms[1], expiry_ms[2]);
  ::testing::Test::RecordProperty("join_ms_median", std::to_string(join_ms[1]));
  ::testing::Test::RecordProperty("expiry_ms_median", std::to_string(expiry_ms[1]));
}

}  // namespace
}  // namespace kvt::etcd
