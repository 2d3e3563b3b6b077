// Resource exhaustion against kvtierd: hundreds of silent sockets that never authenticate, peers
// announcing oversized bodies before authenticating, and authenticated peers holding large
// half-sent bodies. An authenticated client, pooled or connecting anew, is still served within its
// one-second deadline, and every rejection is counted.
#include <chrono>

#include <nlohmann/json.hpp>

#include "io/wire_auth.h"
#include "remote_test_util.h"
#include "tests/common/wait.h"
#include "tests/core/test_util.h"

namespace kvt {
namespace {

using testing::Node;

constexpr char kFloodSecret[] = "flood secret";

// A raw connection that authenticates by hand, so the test can then send partial frames.
struct RawAuthed {
  UniqueFd fd;
  wire::FrameMac out, in;
  bool ok = false;

  explicit RawAuthed(uint16_t port) : fd(testing::ConnectRaw(port)) {
    if (!fd.valid()) return;
    wire::HelloRequest hello;
    hello.client_nonce.fill(7);
    std::vector<uint8_t> f;
    wire::AppendFrame({static_cast<uint8_t>(wire::Op::kHello), 0, wire::kFlagEnd, 1, 0},
                      wire::EncodeHello(hello), &f);
    wire::FrameHeader h;
    std::vector<uint8_t> body;
    wire::HelloResponse hr;
    if (!testing::WriteAll(fd.get(), f.data(), f.size()) ||
        !testing::ReadFrame(fd.get(), &h, &body) || !wire::DecodeHelloResponse(body, &hr).ok()) {
      return;
    }
    wire::AuthMessage am;
    am.mac = wire::AuthMac(kFloodSecret, wire::AuthRole::kClient, hr.server_nonce, hello.client_nonce);
    f.clear();
    wire::AppendFrame({static_cast<uint8_t>(wire::Op::kAuth), 0, wire::kFlagEnd, 2, 0},
                      wire::EncodeAuth(am), &f);
    if (!testing::WriteAll(fd.get(), f.data(), f.size()) ||
        !testing::ReadFrame(fd.get(), &h, &body) || h.status != 0) {
      return;
    }
    const auto keys = wire::DeriveSessionKeys(kFloodSecret, hr.server_nonce, hello.client_nonce);
    out = wire::FrameMac(keys.client_to_server);
    in = wire::FrameMac(keys.server_to_client);
    ok = true;
  }
};

TEST(RemoteFlood, IdleAndOversizedConnectionsDoNotLockOutAnAuthenticatedClient) {
  ServerOptions so;
  so.auth_secret = kFloodSecret;
  so.max_unauth_connections = 16;
  so.max_buffered_bytes = 4u << 20;
  so.handshake_timeout = std::chrono::milliseconds(2000);
  Node node(so);
  ASSERT_TRUE(node.server);
  testing::TestDir w_dir;
  auto writer = testing::MustOpen(testing::StoreOptions(w_dir.path(), node.endpoint(), kFloodSecret));
  ASSERT_TRUE(writer);
  const uint64_t ns = *writer->OpenNamespace(testing::SmallNamespace());
  std::vector<int32_t> toks(4 * 16);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>(i + 11);
  std::vector<Hash128> keys;
  ASSERT_TRUE(writer->HashTokens(ns, toks, &keys).ok());
  const size_t bytes = (*writer->Namespace(ns))->block_bytes;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto data = testing::PatternBytes(keys[i].lo, bytes);
    ASSERT_TRUE(writer->Put(ns, keys[i], i == 0 ? Hash128{} : keys[i - 1], &toks[i * 16],
                            data.data(), data.size())
                    .ok());
  }
  const std::string enc = EncodeNamespace(testing::SmallNamespace());
  RemoteOptions ro;
  ro.endpoints = {node.endpoint()};
  ro.secret = kFloodSecret;
  ro.timeouts.connect = ro.timeouts.io = std::chrono::milliseconds(1000);  // "within a second"
  auto pooled = std::move(RemoteTier::Create(ro)).value();
  ASSERT_TRUE(pooled->Probe().ok());  // an authenticated connection in the pool before the flood
  auto read_all = [&](RemoteTier* rt) {
    int good = 0;
    Status s = rt->Get(enc, keys, [&](size_t i, RemotePayload* p) {
      std::vector<uint8_t> buf(bytes);
      if (p->Read(buf.data()).ok() && buf == testing::PatternBytes(keys[i].lo, bytes)) ++good;
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return good;
  };

  // The flood: silent sockets, and sockets announcing a 64 MiB PUT before authenticating.
  std::vector<UniqueFd> flood;
  for (int i = 0; i < 200; ++i) {
    flood.push_back(testing::ConnectRaw(node.server->port()));
    ASSERT_TRUE(flood.back().valid());
    if (i % 4 == 0) {
      uint8_t h[wire::kHeaderBytes];
      wire::EncodeHeader({static_cast<uint8_t>(wire::Op::kPut), 0, wire::kFlagEnd, 1, 64u << 20},
                         h);
      testing::WriteAll(flood.back().get(), h, sizeof h);
    }
  }
  // Authenticated peers holding large bodies: one holds 3 MiB of the 4 MiB budget half-sent; the
  // next large body does not fit and is answered BUSY (after its bytes were skipped, unbuffered).
  RawAuthed holder(node.server->port()), second(node.server->port());
  ASSERT_TRUE(holder.ok && second.ok);
  const uint32_t big = 3u << 20;
  std::vector<uint8_t> junk(big, 0xAB);
  uint8_t hdr[wire::kHeaderBytes];
  wire::EncodeHeader({static_cast<uint8_t>(wire::Op::kPut), 0, wire::kFlagEnd, 3, big}, hdr);
  ASSERT_TRUE(testing::WriteAll(holder.fd.get(), hdr, sizeof hdr));
  ASSERT_TRUE(testing::WriteAll(holder.fd.get(), junk.data(), big / 2));
  ASSERT_TRUE(testing::WaitUntil([&] { return node.server->Metrics().find("buffered_request_bytes 3145728") !=
                                   std::string::npos; }));
  second.out.Begin(hdr);
  second.out.Update(junk);
  const auto tag = second.out.Finish();
  ASSERT_TRUE(testing::WriteAll(second.fd.get(), hdr, sizeof hdr));
  ASSERT_TRUE(testing::WriteAll(second.fd.get(), junk.data(), big));
  ASSERT_TRUE(testing::WriteAll(second.fd.get(), tag.data(), tag.size()));
  wire::FrameHeader rh;
  std::vector<uint8_t> rbody;
  ASSERT_TRUE(testing::ReadFrame(second.fd.get(), &rh, &rbody));
  EXPECT_EQ(rh.status, static_cast<uint8_t>(Code::kBusy));
  EXPECT_EQ(node.server->session_counters().busy_budget.load(), 1u);

  // While all of that holds: the pooled client and a brand-new one are served, byte-exact.
  EXPECT_EQ(read_all(pooled.get()), 4);
  auto fresh = std::move(RemoteTier::Create(ro)).value();
  EXPECT_EQ(read_all(fresh.get()), 4);
  const auto& c = node.server->counters();
  EXPECT_GT(c.unauth_evicted.load(), 0u);
  EXPECT_LE(c.unauth_active.load(), 16u + 1);
  // Oversized requests before HELLO were refused from their headers (those not evicted first).
  EXPECT_GT(node.server->session_counters().protocol_errors.load(), 0u);
  // The silent ones that were not evicted hit the handshake deadline.
  EXPECT_TRUE(testing::WaitUntil([&] { return c.handshake_timeouts.load() > 0; }));
  EXPECT_NE(node.server->Metrics().find("kvtierd_connections_unauthenticated_evicted"),
            std::string::npos);
}

TEST(RemoteFlood, NamespaceLimitsPerConnectionAndInTotal) {
  ServerOptions so;
  so.max_namespaces_per_connection = 3;
  so.max_namespaces = 5;
  Node node(so);
  ASSERT_TRUE(node.server);
  RemoteOptions ro;
  ro.endpoints = {node.endpoint()};
  auto a = std::move(RemoteTier::Create(ro)).value();
  auto b = std::move(RemoteTier::Create(ro)).value();
  std::vector<wire::LookupEntry> e;
  const std::vector<Hash128> keys{{1, 2}};
  auto ns = [](int i) { return EncodeNamespace(testing::SmallNamespace("t" + std::to_string(i))); };
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(a->Lookup(ns(i), keys, &e).ok());
  // Lookup failures other than PermissionDenied are soft (absent entries): count at the node.
  EXPECT_TRUE(a->Lookup(ns(3), keys, &e).ok());
  EXPECT_EQ(node.server->session_counters().namespace_limit.load(), 1u);
  EXPECT_TRUE(a->Lookup(ns(0), keys, &e).ok());  // one it already uses: fine
  EXPECT_EQ(node.server->session_counters().namespace_limit.load(), 1u);
  // Another connection: two more fit in the node's total of 5, the sixth does not.
  EXPECT_TRUE(b->Lookup(ns(3), keys, &e).ok());
  EXPECT_TRUE(b->Lookup(ns(4), keys, &e).ok());
  EXPECT_TRUE(b->Lookup(ns(5), keys, &e).ok());
  EXPECT_EQ(node.server->session_counters().namespace_limit.load(), 2u);
  EXPECT_TRUE(b->Lookup(ns(1), keys, &e).ok());  // registered already: fine
  EXPECT_EQ(node.server->session_counters().namespace_limit.load(), 2u);
}

// Namespaces a peer registered are forgotten once no connection uses them (memory and the node's
// total come back), while their blocks stay: registering the namespace again finds them.
TEST(RemoteFlood, NamespacesNobodyUsesAreForgottenAndTheirBlocksStay) {
  ServerOptions so;
  so.max_namespaces = 5;
  Node node(so);
  ASSERT_TRUE(node.server);
  auto ns = [](int i) { return EncodeNamespace(testing::SmallNamespace("t" + std::to_string(i))); };
  auto held = [&] { return nlohmann::json::parse(node.store->StatsJson())["store"]["namespaces"]; };
  // A block of t0 stored as a session would store it, then released: t0 is forgotten at once.
  const Hash128 key{1, 2};
  {
    auto info = node.store->AcquirePeerNamespace(ns(0));
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    const uint64_t id = (*info)->id;
    auto data = testing::PatternBytes(7, (*info)->block_bytes);
    ASSERT_TRUE(node.store->Put(id, key, Hash128{}, nullptr, data.data(), data.size()).ok());
    EXPECT_EQ(held(), 1);
    node.store->ReleasePeerNamespace(id);
    node.store->ReleasePeerNamespace(id);  // unpaired: ignored
    EXPECT_EQ(held(), 0);
    EXPECT_FALSE(node.store->Namespace(id).ok());
  }
  RemoteOptions ro;
  ro.endpoints = {node.endpoint()};
  std::vector<wire::LookupEntry> e;
  const std::vector<Hash128> keys{key};
  {
    auto a = std::move(RemoteTier::Create(ro)).value();
    for (int i = 1; i <= 5; ++i) EXPECT_TRUE(a->Lookup(ns(i), keys, &e).ok());
    EXPECT_EQ(held(), 5);
    auto b = std::move(RemoteTier::Create(ro)).value();
    EXPECT_TRUE(b->Lookup(ns(6), keys, &e).ok());  // over the total while a holds five
    EXPECT_EQ(node.server->session_counters().namespace_limit.load(), 1u);
  }  // both connections close
  EXPECT_TRUE(testing::WaitUntil([&] { return held() == 0; })) << held();
  auto c = std::move(RemoteTier::Create(ro)).value();
  for (int i = 6; i <= 9; ++i) EXPECT_TRUE(c->Lookup(ns(i), keys, &e).ok());
  ASSERT_TRUE(c->Lookup(ns(0), keys, &e).ok());
  ASSERT_EQ(e.size(), 1u);
  EXPECT_TRUE(e[0].present);  // t0's block outlived its forgotten namespace
  EXPECT_EQ(node.server->session_counters().namespace_limit.load(), 1u);
  EXPECT_EQ(held(), 5);
  EXPECT_GE(nlohmann::json::parse(node.store->StatsJson())["store"]["namespaces_forgotten"], 6);
}

}  // namespace
}  // namespace kvt
