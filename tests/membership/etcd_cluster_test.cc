// Stores and kvtierd nodes meeting through a real etcd: a node registers and a store finds it and
// is served through it; a second node joins and is used; a node killed with SIGKILL leaves when its
// lease expires and its blocks become misses; SIGTERM deletes the key at once; etcd stopped and
// restarted; etcd down at open.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/core/test_util.h"
#include "tests/membership/etcd_fixture.h"
#include "tests/remote/remote_test_util.h"
#include "tools/kvtierd/etcd_register.h"

namespace kvt {
namespace {

using testing::EtcdProcess;
using testing::MustOpen;
using testing::StoreOptions;
using testing::WaitUntil;

#define START_ETCD(e)                                                          \
  EtcdProcess e;                                                               \
  if (EtcdProcess::Binary().empty()) GTEST_SKIP() << "etcd is not installed (Debian: etcd-server)"; \
  ASSERT_TRUE(e.Start()) << e.why()

nlohmann::json Stats(Store* s) { return nlohmann::json::parse(s->StatsJson()); }
uint64_t Members(Store* s, const char* name) {
  return Stats(s)["tiers"]["remote"]["membership"][name].get<uint64_t>();
}
uint64_t StoreStat(Store* s, const char* name) { return Stats(s)["store"][name].get<uint64_t>(); }

std::vector<int32_t> Tokens(size_t n, int32_t base) {
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = base + static_cast<int32_t>(i);
  return t;
}

// Puts every full block of toks through s (each also written through to its owning node).
std::vector<Hash128> PutPrompt(Store* s, uint64_t ns, const std::vector<int32_t>& toks) {
  std::vector<Hash128> keys;
  EXPECT_TRUE(s->HashTokens(ns, toks, &keys).ok());
  const size_t bytes = (*s->Namespace(ns))->block_bytes;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto data = testing::PatternBytes(keys[i].lo, bytes);
    Status st = s->Put(ns, keys[i], i == 0 ? Hash128{} : keys[i - 1], &toks[i * 16], data.data(),
                       data.size());
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  return keys;
}

// An in-process kvtierd node registered under prefix (lease kept alive).
struct EtcdNode {
  EtcdNode(const EtcdProcess& etcd, const std::string& prefix, int64_t ttl_s = 5) {
    KvtierdEtcdOptions eo;
    eo.url = etcd.http_url();
    eo.prefix = prefix;
    eo.ttl_s = ttl_s;
    auto r = RegisterWithEtcd(eo, "127.0.0.1:0", node.server->port(), Options{}, "");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (r.ok()) reg = std::move(r).value();
  }
  testing::Node node;
  std::unique_ptr<etcd::EtcdRegistration> reg;
};

// kvtierd as a process, registered in etcd; killed on teardown if still running.
class KvtierdProcess {
 public:
  KvtierdProcess(const EtcdProcess& etcd, const std::string& prefix, int ttl_s) {
    const std::string conf = dir_.file("store.conf"), port_file = dir_.file("port");
    std::ofstream(conf) << "host_mlock = false\nhost_slab_bytes = 1MiB\n";
    const std::string ttl = std::to_string(ttl_s), url = etcd.http_url();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl(KVTIERD_PATH, "kvtierd", "--listen", "127.0.0.1:0", "--dir",
              (dir_.path() + "/node").c_str(), "--host-bytes", "16MiB", "--config", conf.c_str(),
              "--etcd", url.c_str(), "--etcd-prefix", prefix.c_str(), "--etcd-ttl", ttl.c_str(),
              "--port-file", port_file.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // The port file appears after the node registered in etcd.
    WaitUntil([&] {
      std::ifstream(port_file) >> port_;
      return !port_.empty() || ::waitpid(pid_, nullptr, WNOHANG) == pid_;
    });
  }
  ~KvtierdProcess() { Signal(SIGKILL); }
  bool started() const { return !port_.empty(); }
  std::string address() const { return "127.0.0.1:" + port_; }
  // Sends sig and reaps; returns the exit status as waitpid reports it.
  int Signal(int sig) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    return st;
  }

 private:
  testing::TestDir dir_;
  pid_t pid_ = -1;
  std::string port_;
};

TEST(EtcdCluster, KvtierdRegistersAStoreFindsItAndIsServedThroughItAndSigtermDeletesTheKey) {
  START_ETCD(etcd);
  KvtierdProcess node(etcd, "/kvtier/t1", /*ttl_s=*/30);
  ASSERT_TRUE(node.started());
  // The node's entry: its address, capacity and TLS identity (none: plaintext on loopback).
  auto r = etcd::EtcdClient(etcd.url()).RangePrefix("/kvtier/t1/");
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->kvs.size(), 1u);
  EXPECT_EQ(r->kvs[0].key, "/kvtier/t1/" + node.address());
  EXPECT_NE(r->kvs[0].lease, 0);
  auto info = etcd::ParseNodeInfo(r->kvs[0].value);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->address, node.address());
  EXPECT_EQ(info->host_bytes, 16u << 20);
  EXPECT_TRUE(info->tls_subject.empty());

  testing::TestDir w_dir, r_dir;
  auto writer = MustOpen(StoreOptions(w_dir.path(), etcd.remote("/kvtier/t1")));
  auto ro = StoreOptions(r_dir.path(), etcd.remote("/kvtier/t1"));
  ASSERT_TRUE(ro.Set("remote_write", "off").ok());
  auto reader = MustOpen(ro);
  ASSERT_TRUE(writer && reader);
  EXPECT_EQ(Members(writer.get(), "nodes"), 1u);  // known when open returns
  const auto toks = Tokens(4 * 16, 7);
  const auto keys = PutPrompt(writer.get(), *writer->OpenNamespace(testing::SmallNamespace()), toks);
  EXPECT_EQ(StoreStat(writer.get(), "remote_puts"), 4u);

  const uint64_t ns = *reader->OpenNamespace(testing::SmallNamespace());
  std::vector<Hash128> rkeys;
  size_t prefix = 0;
  std::vector<Tier> tiers;
  ASSERT_TRUE(reader->MatchPrefix(ns, toks, &rkeys, &prefix, &tiers).ok());
  EXPECT_EQ(prefix, 4u);
  for (Tier t : tiers) EXPECT_EQ(t, Tier::kRemote);
  std::vector<uint8_t> got(16384);
  ASSERT_TRUE(reader->Get(ns, keys[0], got.data(), got.size()).ok());
  EXPECT_EQ(got, testing::PatternBytes(keys[0].lo, got.size()));

  // SIGTERM: the key is gone when kvtierd has exited, long before its 30 s lease would expire.
  const int st = node.Signal(SIGTERM);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
  EXPECT_TRUE(etcd::EtcdClient(etcd.url()).RangePrefix("/kvtier/t1/")->kvs.empty());
  ASSERT_TRUE(WaitUntil([&] { return Members(reader.get(), "nodes") == 0; }));
  // Its blocks are misses now (block 0 is cached in the reader; the others were only there).
  ASSERT_TRUE(reader->Lookup(ns, std::vector<Hash128>(keys.begin() + 1, keys.end()), &prefix, nullptr).ok());
  EXPECT_EQ(prefix, 0u);
  EXPECT_TRUE(reader->Get(ns, keys[1], got.data(), got.size()).IsNotFound());
  EXPECT_GE(Members(reader.get(), "changes"), 1u);
}

TEST(EtcdCluster, ASecondNodeJoinsAndIsUsed) {
  START_ETCD(etcd);
  EtcdNode a(etcd, "/kvtier/t2");
  testing::TestDir dir;
  auto s = MustOpen(StoreOptions(dir.path(), etcd.remote("/kvtier/t2")));
  ASSERT_TRUE(s);
  EXPECT_EQ(Members(s.get(), "nodes"), 1u);
  EtcdNode b(etcd, "/kvtier/t2");
  ASSERT_TRUE(WaitUntil([&] { return Members(s.get(), "nodes") == 2; }));
  const auto toks = Tokens(32 * 16, 3);
  const uint64_t ns = *s->OpenNamespace(testing::SmallNamespace());
  const auto keys = PutPrompt(s.get(), ns, toks);
  const uint64_t pa = StoreStat(a.node.store.get(), "peer_puts");
  const uint64_t pb = StoreStat(b.node.store.get(), "peer_puts");
  EXPECT_EQ(pa + pb, 32u);
  EXPECT_GT(pb, 0u) << "the node that joined owns none of 32 blocks";
  EXPECT_GT(pa, 0u);
  // Another store finds every block at its owner.
  testing::TestDir dir2;
  auto s2 = MustOpen(StoreOptions(dir2.path(), etcd.remote("/kvtier/t2")));
  const uint64_t ns2 = *s2->OpenNamespace(testing::SmallNamespace());
  size_t prefix = 0;
  ASSERT_TRUE(s2->Lookup(ns2, keys, &prefix, nullptr).ok());
  EXPECT_EQ(prefix, 32u);
}

TEST(EtcdCluster, ANodeKilledWithSigkillLeavesWhenItsLeaseExpiresAndItsBlocksMiss) {
  START_ETCD(etcd);
  // 3 s, not etcd's 2 s minimum: a keepalive every second, so a 2-vCPU machine under a parallel
  // test load cannot starve the node out of its lease before the kill.
  KvtierdProcess node(etcd, "/kvtier/t3", /*ttl_s=*/3);
  ASSERT_TRUE(node.started());
  testing::TestDir w_dir, r_dir;
  auto writer = MustOpen(StoreOptions(w_dir.path(), etcd.remote("/kvtier/t3")));
  auto ro = StoreOptions(r_dir.path(), etcd.remote("/kvtier/t3"));
  ASSERT_TRUE(ro.Set("remote_write", "off").ok());
  auto reader = MustOpen(ro);
  ASSERT_TRUE(writer && reader);
  const auto toks = Tokens(4 * 16, 11);
  const auto keys = PutPrompt(writer.get(), *writer->OpenNamespace(testing::SmallNamespace()), toks);
  const uint64_t ns = *reader->OpenNamespace(testing::SmallNamespace());
  size_t prefix = 0;
  ASSERT_TRUE(reader->Lookup(ns, keys, &prefix, nullptr).ok());
  ASSERT_EQ(prefix, 4u);

  const auto killed = std::chrono::steady_clock::now();
  node.Signal(SIGKILL);
  // Until the lease expires the dead node is still listed: its blocks are already misses (the
  // connection is refused), never errors.
  ASSERT_TRUE(reader->Lookup(ns, keys, &prefix, nullptr).ok());
  EXPECT_EQ(prefix, 0u);
  ASSERT_TRUE(WaitUntil([&] { return Members(reader.get(), "nodes") == 0; }));
  std::printf("SIGKILLed node left the store's set %.0f ms after the kill (lease TTL 3 s)\n",
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - killed).count());
  std::vector<uint8_t> got(16384);
  for (const Hash128& k : keys) EXPECT_TRUE(reader->Get(ns, k, got.data(), got.size()).IsNotFound());
  ASSERT_TRUE(reader->Lookup(ns, keys, &prefix, nullptr).ok());
  EXPECT_EQ(prefix, 0u);
  // With no node left, puts stay local and succeed. The writer follows etcd on its own watch:
  // wait until it too has seen the node go (the reader's view says nothing about the writer's).
  ASSERT_TRUE(WaitUntil([&] { return Members(writer.get(), "nodes") == 0; }));
  const auto more = PutPrompt(writer.get(), *writer->OpenNamespace(testing::SmallNamespace()),
                              Tokens(2 * 16, 99));
  EXPECT_EQ(more.size(), 2u);
}

TEST(EtcdCluster, EtcdStoppedAndRestartedTheStoreKeepsItsSetCountsAndResumes) {
  START_ETCD(etcd);
  EtcdNode a(etcd, "/kvtier/t4", /*ttl_s=*/30);
  testing::TestDir dir;
  auto s = MustOpen(StoreOptions(dir.path(), etcd.remote("/kvtier/t4")));
  ASSERT_TRUE(s);
  ASSERT_TRUE(WaitUntil([&] {
    return Stats(s.get())["tiers"]["remote"]["membership"]["connected"].get<bool>();
  }));
  etcd.Stop(SIGTERM);
  ASSERT_TRUE(WaitUntil([&] { return Members(s.get(), "etcd_errors") >= 1; }));
  // The last known node is still used while etcd is away.
  EXPECT_EQ(Members(s.get(), "nodes"), 1u);
  const uint64_t ns = *s->OpenNamespace(testing::SmallNamespace());
  PutPrompt(s.get(), ns, Tokens(3 * 16, 5));
  EXPECT_EQ(StoreStat(a.node.store.get(), "peer_puts"), 3u);

  ASSERT_TRUE(etcd.Start()) << etcd.why();
  EtcdNode b(etcd, "/kvtier/t4");
  ASSERT_TRUE(WaitUntil([&] { return Members(s.get(), "nodes") == 2; }));
  EXPECT_GE(Members(s.get(), "watch_restarts"), 1u);
}

TEST(EtcdCluster, EtcdDownAtOpenIsAClearError) {
  testing::TestDir dir;
  const std::string remote =
      "etcd://127.0.0.1:" + std::to_string(testing::FreeLoopbackPort()) + "/kvtier/none";
  auto s = Store::Open(StoreOptions(dir.path(), remote));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kUnavailable);
  EXPECT_NE(s.status().message().find("etcd"), std::string::npos) << s.status().ToString();
  // kvtierd --etcd with etcd down: exit 1 with a message naming etcd.
  const std::string cmd = std::string(KVTIERD_PATH) + " --listen 127.0.0.1:0 --dir " + dir.path() +
                          "/node --host-bytes 16MiB --etcd http://127.0.0.1:" +
                          std::to_string(testing::FreeLoopbackPort()) + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int st = ::pclose(p);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 1) << out;
  EXPECT_NE(out.find("etcd"), std::string::npos) << out;
}

}  // namespace
}  // namespace kvt
