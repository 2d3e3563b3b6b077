// The remote tier end to end on loopback: stores talking to an in-process kvtierd Server (or to a
// misbehaving fake one), and the kvtierd binary itself.
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "kernels/kv_sample.h"
#include "remote_test_util.h"
#include "tests/common/wait.h"
#include "tests/core/test_util.h"

namespace kvt {
namespace {

using testing::Node;
using testing::StoreOptions;

std::vector<int32_t> Tokens(size_t n, int32_t base) {
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = base + static_cast<int32_t>(i);
  return t;
}

// Puts every full block of toks through `s`; returns the keys.
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

uint64_t StatOf(Store* s, const char* section, const char* name) {
  auto j = nlohmann::json::parse(s->StatsJson());
  return j[section][name].get<uint64_t>();
}

TEST(RemoteLoopback, PutThroughOneStoreReadByteExactThroughAnother) {
  Node node;
  testing::TestDir a_dir, b_dir;
  auto a = testing::MustOpen(StoreOptions(a_dir.path(), node.endpoint()));
  auto b_opts = StoreOptions(b_dir.path(), node.endpoint());
  ASSERT_TRUE(b_opts.Set("remote_write", "off").ok());
  auto b = testing::MustOpen(b_opts);
  ASSERT_TRUE(a && b);
  const uint64_t ns_a = *a->OpenNamespace(testing::SmallNamespace());
  const auto toks = Tokens(5 * 16 + 3, 100);
  const auto keys = PutPrompt(a.get(), ns_a, toks);
  ASSERT_EQ(keys.size(), 5u);
  EXPECT_EQ(StatOf(a.get(), "store", "remote_puts"), 5u);
  EXPECT_EQ(StatOf(node.store.get(), "store", "peer_puts"), 5u);

  const uint64_t ns_b = *b->OpenNamespace(testing::SmallNamespace());
  std::vector<Hash128> bkeys;
  size_t prefix = 0;
  std::vector<Tier> tiers;
  ASSERT_TRUE(b->MatchPrefix(ns_b, toks, &bkeys, &prefix, &tiers).ok());
  EXPECT_EQ(bkeys, keys);
  EXPECT_EQ(prefix, 5u);
  for (Tier t : tiers) EXPECT_EQ(t, Tier::kRemote);
  ASSERT_TRUE(b->Lookup(ns_b, keys, &prefix, nullptr).ok());
  EXPECT_EQ(prefix, 5u);

  const size_t bytes = (*b->Namespace(ns_b))->block_bytes;
  for (const Hash128& k : keys) {
    std::vector<uint8_t> got(bytes, 0);
    ASSERT_TRUE(b->Get(ns_b, k, got.data(), got.size()).ok());
    EXPECT_EQ(got, testing::PatternBytes(k.lo, bytes));
  }
  // Now cached in b's host tier.
  std::vector<Tier> t1(keys.size());
  ASSERT_TRUE(b->Lookup(ns_b, keys, &prefix, t1.data()).ok());
  for (Tier t : t1) EXPECT_EQ(t, Tier::kHost);
  EXPECT_EQ(StatOf(b.get(), "store", "remote_fetches"), 5u);

  // Another tenant with the same tokens sees none of it, locally or remotely.
  const uint64_t ns_other = *b->OpenNamespace(testing::SmallNamespace("tenant-b"));
  ASSERT_TRUE(b->MatchPrefix(ns_other, toks, &bkeys, &prefix, &tiers).ok());
  EXPECT_EQ(prefix, 0u);
  std::vector<uint8_t> got(bytes);
  EXPECT_TRUE(b->Get(ns_other, keys[0], got.data(), got.size()).IsNotFound());

  // Different tokens for the same chain position give different keys: a miss.
  auto other_toks = toks;
  other_toks[20] += 1;
  ASSERT_TRUE(b->MatchPrefix(ns_b, other_toks, &bkeys, &prefix, nullptr).ok());
  EXPECT_EQ(prefix, 1u);

  // Drop namespace through a (write-through) removes it at the node too.
  ASSERT_TRUE(a->DropNamespace(ns_a).ok());
  testing::TestDir c_dir;
  auto c = testing::MustOpen(StoreOptions(c_dir.path(), node.endpoint()));
  const uint64_t ns_c = *c->OpenNamespace(testing::SmallNamespace());
  ASSERT_TRUE(c->Lookup(ns_c, keys, &prefix, nullptr).ok());
  EXPECT_EQ(prefix, 0u);
}

TEST(RemoteLoopback, WrongSecretIsPermissionDeniedAndGivesNoData) {
  ServerOptions so;
  so.auth_secret = "right secret";
  Node node(so);
  testing::TestDir a_dir, b_dir, c_dir;
  auto a = testing::MustOpen(StoreOptions(a_dir.path(), node.endpoint(), "right secret"));
  ASSERT_TRUE(a);
  const uint64_t ns = *a->OpenNamespace(testing::SmallNamespace());
  const auto keys = PutPrompt(a.get(), ns, Tokens(32, 7));

  auto wrong = Store::Open(StoreOptions(b_dir.path(), node.endpoint(), "wrong secret"));
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), Code::kPermissionDenied) << wrong.status().ToString();
  auto none = Store::Open(StoreOptions(c_dir.path(), node.endpoint()));
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), Code::kPermissionDenied) << none.status().ToString();

  // The tier itself: the get fails as PermissionDenied and no block reaches the sink.
  RemoteOptions ro;
  ro.endpoints = {node.endpoint()};
  ro.secret = "wrong secret";
  auto rt = RemoteTier::Create(ro);
  ASSERT_TRUE(rt.ok());
  int delivered = 0;
  Status s = (*rt)->Get(EncodeNamespace(testing::SmallNamespace()), keys,
                        [&](size_t, RemotePayload*) { ++delivered; });
  EXPECT_EQ(s.code(), Code::kPermissionDenied) << s.ToString();
  EXPECT_EQ(delivered, 0);
  std::vector<wire::LookupEntry> entries;
  EXPECT_EQ((*rt)->Lookup(EncodeNamespace(testing::SmallNamespace()), keys, &entries).code(),
            Code::kPermissionDenied);
  EXPECT_GE(node.server->session_counters().auth_failures.load(), 3u);
}

// A fake node that answers hello, then sends a get response cut off mid-payload (or, with
// bad_checksum, a whole block whose checksum does not match) and hangs up.
void MisbehavingNode(int fd, bool bad_checksum) {
  for (;;) {
    wire::FrameHeader h;
    std::vector<uint8_t> body;
    if (!testing::ReadFrame(fd, &h, &body)) return;
    std::vector<uint8_t> out;
    if (h.opcode == static_cast<uint8_t>(wire::Op::kHello)) {
      wire::HelloResponse hr;
      hr.max_body = wire::Limits{}.max_body;
      hr.max_keys = wire::Limits{}.max_keys;
      wire::AppendFrame({static_cast<uint8_t>(wire::Op::kHello) | wire::kResponseBit, 0,
                         wire::kFlagEnd, h.request_id, 0},
                        wire::EncodeHelloResponse(hr), &out);
      testing::WriteAll(fd, out.data(), out.size());
      continue;
    }
    wire::KeysRequest req;
    if (!wire::DecodeKeysRequest(body, wire::Limits{}, true, &req).ok()) return;
    const uint32_t bytes = 2 * 2 * 16 * 2 * 64 * 2;
    std::vector<uint8_t> payload(bytes, 0xEE);
    wire::GetBlockHead head{0, true, {req.keys[0], {}, {}, Checksum64(payload.data(), bytes), bytes, false}};
    if (bad_checksum) head.info.checksum ^= 1;
    uint8_t hb[wire::kGetBlockHeadBytes];
    wire::EncodeGetBlockHead(head, hb);
    wire::AppendFrame({static_cast<uint8_t>(wire::Op::kGet) | wire::kResponseBit, 0,
                       wire::kFlagEnd, h.request_id, 0},
                      {}, &out);
    // Patch the body length: head + payload (the frame is written in pieces below).
    out.resize(wire::kHeaderBytes);
    wire::EncodeHeader({static_cast<uint8_t>(wire::Op::kGet) | wire::kResponseBit, 0,
                        wire::kFlagEnd, h.request_id,
                        static_cast<uint32_t>(sizeof hb + bytes)},
                       out.data());
    out.insert(out.end(), hb, hb + sizeof hb);
    out.insert(out.end(), payload.begin(),
               payload.begin() + (bad_checksum ? bytes : bytes / 2));
    testing::WriteAll(fd, out.data(), out.size());
    if (!bad_checksum) return;  // hang up mid-frame
  }
}

TEST(RemoteLoopback, ServerGoneMidGetIsAMissAndTheClientRecovers) {
  testing::FakeServer fake([](int fd) { MisbehavingNode(fd, /*bad_checksum=*/false); });
  testing::TestDir b_dir;
  auto o = StoreOptions(b_dir.path(), fake.endpoint());
  ASSERT_TRUE(o.Set("remote_write", "off").ok());
  auto b = testing::MustOpen(o);
  ASSERT_TRUE(b);
  const uint64_t ns = *b->OpenNamespace(testing::SmallNamespace());
  const size_t bytes = (*b->Namespace(ns))->block_bytes;
  std::vector<Hash128> keys;
  const auto toks = Tokens(16, 3);
  ASSERT_TRUE(b->HashTokens(ns, toks, &keys).ok());
  std::vector<uint8_t> dst(bytes, 0x11);
  Status s = b->Get(ns, keys[0], dst.data(), dst.size());
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_EQ(dst, std::vector<uint8_t>(bytes, 0x11));  // not a byte written
  size_t prefix = 9;
  ASSERT_TRUE(b->Lookup(ns, keys, &prefix, nullptr).ok());  // lookup also fails soft: a miss
  EXPECT_EQ(prefix, 0u);

  // The node comes back (a real one, same port): the client reconnects and reads.
  const uint16_t port = fake.port();
  fake.Stop();
  ServerOptions so;
  so.listen = "127.0.0.1:" + std::to_string(port);
  Node node(so);
  ASSERT_TRUE(node.server);
  testing::TestDir a_dir;
  auto a = testing::MustOpen(StoreOptions(a_dir.path(), node.endpoint()));
  PutPrompt(a.get(), *a->OpenNamespace(testing::SmallNamespace()), toks);
  // Misses until the failed-connect back-off ends, then a hit.
  ASSERT_TRUE(testing::WaitUntil([&] { return b->Get(ns, keys[0], dst.data(), dst.size()).ok(); }));
  EXPECT_EQ(dst, testing::PatternBytes(keys[0].lo, bytes));
}

// Found by fuzz_remote_client (issue 14): a node announcing max_keys 0 in its hello made the
// client's lookup loop forever (chunks of zero keys). The handshake now refuses it.
TEST(RemoteLoopback, HelloWithZeroMaxKeysIsRefused) {
  testing::FakeServer fake([](int fd) {
    wire::FrameHeader h;
    std::vector<uint8_t> body;
    if (!testing::ReadFrame(fd, &h, &body)) return;
    wire::HelloResponse hr;
    hr.max_body = wire::Limits{}.max_body;
    hr.max_keys = 0;
    std::vector<uint8_t> out;
    wire::AppendFrame({static_cast<uint8_t>(wire::Op::kHello) | wire::kResponseBit, 0,
                       wire::kFlagEnd, h.request_id, 0},
                      wire::EncodeHelloResponse(hr), &out);
    testing::WriteAll(fd, out.data(), out.size());
    (void)testing::ClosedByPeer(fd, 10000);
  });
  RemoteOptions ro;
  ro.endpoints = {fake.endpoint()};
  auto rt = std::move(RemoteTier::Create(ro)).value();
  std::vector<wire::LookupEntry> found;
  const std::vector<Hash128> keys = {{1, 2}, {3, 4}};
  ASSERT_TRUE(rt->Lookup("ns", keys, &found).ok());  // unreachable nodes are misses
  ASSERT_EQ(found.size(), 2u);
  EXPECT_FALSE(found[0].present || found[1].present);
  EXPECT_EQ(rt->counters().connect_failures.load(), 1u);
}

TEST(RemoteLoopback, StalledNodeTimesOut) {
  // Answers hello, then never answers again (reads until the client gives up and closes).
  testing::FakeServer fake([](int fd) {
    wire::FrameHeader h;
    std::vector<uint8_t> body;
    if (!testing::ReadFrame(fd, &h, &body)) return;
    wire::HelloResponse hr;
    hr.max_body = wire::Limits{}.max_body;
    hr.max_keys = wire::Limits{}.max_keys;
    std::vector<uint8_t> out;
    wire::AppendFrame({static_cast<uint8_t>(wire::Op::kHello) | wire::kResponseBit, 0,
                       wire::kFlagEnd, h.request_id, 0},
                      wire::EncodeHelloResponse(hr), &out);
    testing::WriteAll(fd, out.data(), out.size());
    (void)testing::ClosedByPeer(fd, 10000);
  });
  RemoteOptions ro;
  ro.endpoints = {fake.endpoint()};
  ro.timeouts.io = std::chrono::milliseconds(200);
  auto rt = std::move(RemoteTier::Create(ro)).value();
  const auto t0 = std::chrono::steady_clock::now();
  int delivered = 0;
  Status s = rt->Get("ns", std::vector<Hash128>{{1, 2}},
                     [&](size_t, RemotePayload*) { ++delivered; });
  EXPECT_EQ(s.code(), Code::kTimeout) << s.ToString();
  EXPECT_EQ(delivered, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(rt->counters().timeouts.load(), 1u);
}

TEST(RemoteLoopback, BadChecksumIsAMissNeverWrongBytes) {
  testing::FakeServer fake([](int fd) { MisbehavingNode(fd, /*bad_checksum=*/true); });
  testing::TestDir b_dir;
  auto o = StoreOptions(b_dir.path(), fake.endpoint());
  auto b = testing::MustOpen(o);
  ASSERT_TRUE(b);
  const uint64_t ns = *b->OpenNamespace(testing::SmallNamespace());
  const size_t bytes = (*b->Namespace(ns))->block_bytes;
  std::vector<uint8_t> dst(bytes, 0x11);
  Status s = b->Get(ns, {5, 6}, dst.data(), dst.size());
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_EQ(dst, std::vector<uint8_t>(bytes, 0x11));
  auto j = nlohmann::json::parse(b->StatsJson());
  EXPECT_EQ(j["tiers"]["remote"]["checksum_failures"].get<uint64_t>(), 1u);
  EXPECT_EQ(j["tiers"]["host"]["inserts"].get<uint64_t>(), 0u);  // nothing unverified kept
}

TEST(RemoteLoopback, RealServerStoppedDuringGetsThenRestarted) {
  auto node = std::make_unique<Node>();
  testing::TestDir a_dir;
  auto a = testing::MustOpen(StoreOptions(a_dir.path(), node->endpoint()));
  const uint64_t ns = *a->OpenNamespace(testing::SmallNamespace());
  const auto toks = Tokens(16 * 200, 1);
  const auto keys = PutPrompt(a.get(), ns, toks);
  const std::string enc = EncodeNamespace(testing::SmallNamespace());
  RemoteOptions ro;
  ro.endpoints = {node->endpoint()};
  ro.down_backoff = std::chrono::milliseconds(0);
  auto rt = std::move(RemoteTier::Create(ro)).value();
  std::atomic<bool> stop{false};
  std::atomic<int> wrong{0}, errors{0}, oks{0};
  std::thread reader([&] {
    std::vector<uint8_t> buf(16384);
    while (!stop) {
      Status s = rt->Get(enc, keys, [&](size_t i, RemotePayload* p) {
        if (p->Read(buf.data()).ok() && buf != testing::PatternBytes(keys[i].lo, buf.size())) {
          ++wrong;
        }
      });
      ++(s.ok() ? oks : errors);
    }
  });
  auto joined = [&] {
    stop = true;
    reader.join();
  };
  if (!testing::WaitUntil([&] { return oks.load() >= 2; })) joined();
  ASSERT_GE(oks.load(), 2) << "the reader never got through";
  const uint16_t port = node->server->port();
  node->server->Stop();  // connections cut wherever they are
  if (!testing::WaitUntil([&] { return errors.load() >= 1; })) joined();
  ASSERT_GE(errors.load(), 1) << "the reader never saw the node go";
  ServerOptions so;
  so.listen = "127.0.0.1:" + std::to_string(port);
  auto again = Server::Start(node->store.get(), so);
  if (!again.ok()) joined();
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  const int before = oks.load();
  const bool recovered = testing::WaitUntil([&] { return oks.load() > before; });
  joined();
  EXPECT_TRUE(recovered) << "the reader did not get through the restarted node";
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(errors.load(), 0);
  // Working again.
  int got = 0;
  ASSERT_TRUE(rt->Get(enc, keys, [&](size_t, RemotePayload* p) {
                  std::vector<uint8_t> buf(16384);
                  if (p->Read(buf.data()).ok()) ++got;
                }).ok());
  EXPECT_EQ(got, static_cast<int>(keys.size()));
  (*again)->Stop();
}

TEST(RemoteLoopback, NonLoopbackBindNeedsASecret) {
  testing::TestDir d;
  auto store = testing::MustOpen(StoreOptions(d.path()));
  ServerOptions so;
  so.listen = "0.0.0.0:0";
  auto s = Server::Start(store.get(), so);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kInvalidArgument);
  EXPECT_NE(s.status().message().find("non-loopback"), std::string::npos);
  so.auth_secret = "x";
  EXPECT_FALSE(Server::Start(store.get(), so).ok());  // off loopback: TLS, or say plaintext
  so.insecure_plaintext = true;
  auto ok = Server::Start(store.get(), so);
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
  so.listen = "not-an-ip:1";
  EXPECT_FALSE(Server::Start(store.get(), so).ok());
}

TEST(RemoteLoopback, ConnectionLimitAndTimeouts) {
  ServerOptions so;
  so.max_connections = 2;
  so.idle_timeout = std::chrono::milliseconds(200);
  so.frame_timeout = std::chrono::milliseconds(200);
  Node node(so);
  // max_connections counts connections past the handshake (here, without auth: past HELLO).
  auto c1 = testing::ConnectRaw(node.server->port());
  auto c2 = testing::ConnectRaw(node.server->port());
  wire::FrameHeader h;
  std::vector<uint8_t> body;
  auto hello = testing::HelloFrame();
  for (int fd : {c1.get(), c2.get()}) {
    ASSERT_TRUE(testing::WriteAll(fd, hello.data(), hello.size()));
    ASSERT_TRUE(testing::ReadFrame(fd, &h, &body));
    EXPECT_EQ(h.status, 0);
  }
  auto c3 = testing::ConnectRaw(node.server->port());
  ASSERT_TRUE(testing::ReadFrame(c3.get(), &h, &body));
  EXPECT_EQ(h.status, static_cast<uint8_t>(Code::kBusy));
  EXPECT_TRUE(testing::ClosedByPeer(c3.get(), 2000));
  // c1 idles after its hello; c2 stops mid-header: both are closed by the server.
  ASSERT_TRUE(testing::WriteAll(c2.get(), hello.data(), 10));
  EXPECT_TRUE(testing::ClosedByPeer(c1.get(), 3000));
  EXPECT_TRUE(testing::ClosedByPeer(c2.get(), 3000));
  EXPECT_GE(node.server->counters().idle_timeouts.load(), 1u);
  EXPECT_GE(node.server->counters().frame_timeouts.load(), 1u);
  EXPECT_EQ(node.server->counters().rejected_limit.load(), 1u);
}

TEST(RemoteLoopback, LongStreamWithQueuedRequestsOutlivesTheFrameTimeout) {
  ServerOptions so;
  // Well under the stream's length (about 2 s of paced reads), but long enough that a test
  // thread descheduled on a loaded machine is not taken for a client that stopped reading
  // (150 ms failed about one run in four with other builds running).
  so.frame_timeout = std::chrono::milliseconds(500);
  Node node(so, "64MiB");
  testing::TestDir a_dir;
  auto ao = StoreOptions(a_dir.path(), node.endpoint());
  ASSERT_TRUE(ao.Set("host_bytes", "64MiB").ok());
  auto a = testing::MustOpen(ao);
  // 32 MiB: more than the socket buffers hold, so the server streams for as long as we read.
  const auto keys = PutPrompt(a.get(), *a->OpenNamespace(testing::SmallNamespace()),
                              Tokens(16 * 2000, 5));
  const std::string enc = EncodeNamespace(testing::SmallNamespace());
  auto fd = testing::ConnectRaw(node.server->port());
  auto frames = testing::HelloFrame();
  // GET of 2000 blocks and a LOOKUP behind it, sent at once; the answers are read slowly.
  wire::AppendFrame({static_cast<uint8_t>(wire::Op::kGet), 0, wire::kFlagEnd, 2, 0},
                    wire::EncodeKeysRequest(enc, keys), &frames);
  wire::AppendFrame({static_cast<uint8_t>(wire::Op::kLookup), 0, wire::kFlagEnd, 3, 0},
                    wire::EncodeKeysRequest(enc, keys), &frames);
  ASSERT_TRUE(testing::WriteAll(fd.get(), frames.data(), frames.size()));
  wire::FrameHeader h;
  std::vector<uint8_t> body;
  ASSERT_TRUE(testing::ReadFrame(fd.get(), &h, &body));  // hello
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < keys.size(); ++i) {
    // Pacing (not synchronization): reading slowly makes the stream outlast the frame timeout.
    if (i % 10 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(3));
    ASSERT_TRUE(testing::ReadFrame(fd.get(), &h, &body)) << "block " << i;
    ASSERT_EQ(h.request_id, 2u);
  }
  ASSERT_TRUE(testing::ReadFrame(fd.get(), &h, &body));
  EXPECT_EQ(h.request_id, 3u);
  EXPECT_EQ(h.status, 0);
  EXPECT_EQ(node.server->counters().frame_timeouts.load(), 0u);
  EXPECT_GT(std::chrono::steady_clock::now() - start, so.frame_timeout);  // 200 x 3 ms at least
}

TEST(RemoteLoopback, MetricsArePrometheusText) {
  Node node;
  RemoteOptions ro;
  ro.endpoints = {node.endpoint()};
  auto rt = std::move(RemoteTier::Create(ro)).value();
  std::string text;
  ASSERT_TRUE(rt->Metrics(0, &text).ok());
  EXPECT_NE(text.find("\nkvtierd_connections_accepted 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("kvtier_store_puts 0\n"), std::string::npos);
  EXPECT_NE(text.find("kvtier_tiers_host_hits "), std::string::npos);
  for (size_t at = 0; at < text.size();) {  // every line: name{labels} value
    const size_t nl = text.find('\n', at);
    ASSERT_NE(nl, std::string::npos);
    const std::string line = text.substr(at, nl - at);
    EXPECT_EQ(line.find("kvtier"), 0u) << line;
    EXPECT_NE(line.rfind(' '), std::string::npos) << line;
    at = nl + 1;
  }
}

TEST(RemoteLoopback, RendezvousOwnersAreBalancedAndStable) {
  RemoteOptions ro;
  ro.endpoints = {"10.0.0.1:7420", "10.0.0.2:7420", "10.0.0.3:7420"};
  auto three = std::move(RemoteTier::Create(ro)).value();
  ro.endpoints = {"10.0.0.1:7420", "10.0.0.3:7420"};
  auto two = std::move(RemoteTier::Create(ro)).value();
  std::map<size_t, int> counts;
  KeyHasher h;
  Hash128 k{1, 2};
  for (int i = 0; i < 3000; ++i) {
    const int32_t t = i;
    k = h.BlockKey(k, {&t, 1});
    const size_t o3 = three->Owner(k);
    ++counts[o3];
    // Removing node 2 moves only its keys.
    if (o3 != 1) {
      EXPECT_EQ(two->endpoint(two->Owner(k)), three->endpoint(o3));
    }
  }
  for (auto [node, n] : counts) EXPECT_GT(n, 800) << node;
}

#ifdef KVTIERD_PATH
// kvtierd as a child process listening on a free loopback port (args: every flag but --listen and
// --port-file); port stays empty when it did not start within 30 s (a bound on a hang only).
struct KvtierdChild {
  pid_t pid = -1;
  std::string port;
};
KvtierdChild SpawnKvtierd(const testing::TestDir& d, std::vector<std::string> args) {
  const std::string port_file = d.file("port");
  args.insert(args.begin(), {"kvtierd", "--listen", "127.0.0.1:0", "--port-file", port_file});
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  KvtierdChild c;
  c.pid = ::fork();
  if (c.pid == 0) {
    ::execv(KVTIERD_PATH, argv.data());
    ::_exit(127);
  }
  for (int i = 0; c.pid > 0 && i < 1200 && c.port.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    std::ifstream(port_file) >> c.port;
  }
  return c;
}

// SIGTERM, reaped: the exit code (128 + signal when killed).
int StopKvtierd(pid_t pid) {
  if (pid <= 0 || ::kill(pid, SIGTERM) != 0) return -1;
  int st = 0;
  if (::waitpid(pid, &st, 0) != pid) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// Runs a shell command; its standard output in *out, its exit code (128 + signal when killed),
// or -1 when it could not be started.
int RunCommand(const std::string& cmd, std::string* out) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out->append(buf, n);
  const int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

TEST(Kvtierd, ServesFlushesOnSigtermAndReportsMetrics) {
  testing::TestDir d;
  const std::string secret_file = d.file("secret"), config = d.file("store.conf");
  std::ofstream(secret_file) << "process secret\n";
  std::ofstream(config) << "nvme_segment_bytes = 1MiB\nhost_mlock = false\nhost_slab_bytes = 1MiB\n";
  const KvtierdChild child =
      SpawnKvtierd(d, {"--dir", d.path() + "/node", "--auth-secret-file", secret_file,
                       "--host-bytes", "8MiB", "--nvme-bytes", "4MiB", "--config", config});
  const pid_t pid = child.pid;
  ASSERT_GE(pid, 0);
  const std::string port = child.port;
  ASSERT_FALSE(port.empty()) << "kvtierd did not start";
  const std::string ep = "127.0.0.1:" + port;
  std::vector<Hash128> keys;
  {
    testing::TestDir a_dir;
    auto a = testing::MustOpen(StoreOptions(a_dir.path(), ep, "process secret"));
    ASSERT_TRUE(a);
    keys = PutPrompt(a.get(), *a->OpenNamespace(testing::SmallNamespace()), Tokens(48, 9));
  }
  // Client mode: the node's metrics.
  const std::string cmd = std::string(KVTIERD_PATH) + " --metrics " + ep +
                          " --auth-secret-file " + secret_file;
  std::string text;
  EXPECT_EQ(RunCommand(cmd, &text), 0) << text;
  EXPECT_NE(text.find("kvtier_store_peer_puts 3\n"), std::string::npos) << text;

  // The C API end to end: kvtier-remote-demo puts through one store, gets through another.
  ::setenv("KVTIER_AUTH_SECRET", "process secret", 1);
  for (const char* mode : {"put", "get"}) {
    const std::string demo = std::string(REMOTE_DEMO_PATH) + " " + mode + " " + ep + " " +
                             d.path() + "/demo-" + mode + " 2>&1";
    std::string out;
    EXPECT_EQ(RunCommand(demo, &out), 0) << out;
    if (std::string(mode) == "get") {
      EXPECT_NE(out.find("in tier REMOTE"), std::string::npos) << out;
      EXPECT_NE(out.find("byte-exact"), std::string::npos) << out;
    }
  }
  ::unsetenv("KVTIER_AUTH_SECRET");

  ASSERT_EQ(StopKvtierd(pid), 0);
  // The write-back blocks were flushed to the node's NVMe tier at shutdown.
  Options o = StoreOptions(d.path() + "/node");
  ASSERT_TRUE(o.LoadFile(config).ok());
  ASSERT_TRUE(o.Set("nvme_bytes", "4MiB").ok());
  auto node = testing::MustOpen(o);
  ASSERT_TRUE(node);
  const uint64_t ns = *node->OpenNamespace(testing::SmallNamespace());
  for (const Hash128& k : keys) {
    std::vector<uint8_t> got(16384);
    ASSERT_TRUE(node->Get(ns, k, got.data(), got.size()).ok());
    EXPECT_EQ(got, testing::PatternBytes(k.lo, got.size()));
  }
}

// Issue 14: an absurd size made kvtierd abort (exit 134); a bad value or config file is the
// caller's mistake: exit 2 with a message naming it.
TEST(Kvtierd, BadSizeOrConfigExitsTwoWithAMessage) {
  testing::TestDir d;
  auto run = [&](const std::string& args, std::string* out) {
    return RunCommand(std::string(KVTIERD_PATH) + " --listen 127.0.0.1:0 --dir " + d.path() +
                          "/node " + args + " 2>&1",
                      out);
  };
  std::string out;
  EXPECT_EQ(run("--host-bytes 1" + std::string(400, '0') + ".0", &out), 2) << out;
  EXPECT_NE(out.find("host_bytes"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(run("--nvme-bytes 12XB", &out), 2) << out;
  EXPECT_NE(out.find("12XB"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(run("--config /dev/zero", &out), 2) << out;
  EXPECT_NE(out.find("limit"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(run("--compression lz4", &out), 2) << out;
  EXPECT_NE(out.find("compression"), std::string::npos) << out;
}

// kvtierd --compression zstd: a client offering zstd puts compressed blocks, and the node's
// metrics say it decoded them.
TEST(Kvtierd, CompressionFlagAcceptsZstdAndReportsIt) {
  testing::TestDir d;
  const KvtierdChild child = SpawnKvtierd(
      d, {"--dir", d.path() + "/node", "--host-bytes", "8MiB", "--compression", "zstd"});
  const pid_t pid = child.pid;
  ASSERT_GE(pid, 0);
  const std::string port = child.port;
  ASSERT_FALSE(port.empty()) << "kvtierd did not start";
  const std::string ep = "127.0.0.1:" + port;
  {
    testing::TestDir a_dir;
    Options o = StoreOptions(a_dir.path(), ep);
    ASSERT_TRUE(o.Set("remote_compression", "zstd").ok());
    auto a = testing::MustOpen(o);
    ASSERT_TRUE(a);
    const uint64_t ns = *a->OpenNamespace(testing::SmallNamespace());
    const auto toks = Tokens(48, 5);
    std::vector<Hash128> keys;
    ASSERT_TRUE(a->HashTokens(ns, toks, &keys).ok());
    for (size_t i = 0; i < keys.size(); ++i) {
      const auto data = KvLikeBytes(i, 16384);
      ASSERT_TRUE(a->Put(ns, keys[i], i ? keys[i - 1] : Hash128{}, &toks[i * 16], data.data(),
                         data.size())
                      .ok());
    }
  }
  std::string text;
  EXPECT_EQ(RunCommand(std::string(KVTIERD_PATH) + " --metrics " + ep, &text), 0) << text;
  EXPECT_NE(text.find("kvtierd_compression_decoded_zstd 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("kvtierd_compressed_connections 1\n"), std::string::npos) << text;
  EXPECT_EQ(StopKvtierd(pid), 0);
}
#endif

}  // namespace
}  // namespace kvt
