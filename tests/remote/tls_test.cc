// kvtierd over TLS 1.3 with mutual certificates. The certificates are made at test time with the
// openssl command line (a CA, a node and a client certificate, and a client certificate of another
// CA); the tests skip when the openssl CLI is missing.
#include <cstdlib>
#include <fstream>
#include <functional>

#include <nlohmann/json.hpp>

#include "remote_test_util.h"
#include "tls_certs.h"
#include "tests/core/test_util.h"

namespace kvt {
namespace {

using testing::Node;
using testing::StoreOptions;

using testing::HaveOpenssl;

// ca.pem, node.{pem,key}, client.{pem,key} and (from another CA) rogue.{pem,key}.
bool MakeCerts(const std::string& dir) {
  return testing::MakeCerts(dir, {{"node", "ca", ""}, {"client", "ca", ""}, {"rogue", "otherca", ""}});
}

struct TlsFixture {
  TlsFixture() : ok(HaveOpenssl() && MakeCerts(certs.path())) {
    if (!ok) return;
    ServerOptions so;
    so.tls_cert = file("node.pem");
    so.tls_key = file("node.key");
    so.tls_ca = file("ca.pem");
    node = std::make_unique<Node>(so);
  }
  std::string file(const char* name) const { return certs.path() + "/" + name; }
  Options Client(const std::string& dir, const std::string& endpoint, const char* cert,
                 bool tls = true) const {
    Options o = StoreOptions(dir, endpoint);
    if (tls) {
      EXPECT_TRUE(o.Set("tls_ca", file("ca.pem")).ok());
    }
    if (cert != nullptr) {
      EXPECT_TRUE(o.Set("tls_cert", file((std::string(cert) + ".pem").c_str())).ok());
      EXPECT_TRUE(o.Set("tls_key", file((std::string(cert) + ".key").c_str())).ok());
    }
    EXPECT_TRUE(o.Set("remote_write", "off").ok());
    return o;
  }
  // Puts 4 blocks through a mutually authenticated client; returns their keys.
  std::vector<Hash128> Fill() {
    testing::TestDir d;
    Options o = Client(d.path(), node->endpoint(), "client");
    EXPECT_TRUE(o.Set("remote_write", "write_through").ok());
    auto w = testing::MustOpen(o);
    const uint64_t ns = *w->OpenNamespace(testing::SmallNamespace());
    std::vector<int32_t> toks(4 * 16);
    for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>(i * 7 + 2);
    std::vector<Hash128> keys;
    EXPECT_TRUE(w->HashTokens(ns, toks, &keys).ok());
    for (size_t i = 0; i < keys.size(); ++i) {
      auto data = testing::PatternBytes(keys[i].lo, 16384);
      EXPECT_TRUE(w->Put(ns, keys[i], i == 0 ? Hash128{} : keys[i - 1], &toks[i * 16],
                         data.data(), data.size())
                      .ok());
    }
    return keys;
  }
  testing::TestDir certs;
  bool ok;
  std::unique_ptr<Node> node;
};

// Gets keys[0] through a store; Ok and byte-exact, or a miss with dst untouched.
Status GetOne(Store* s, const Hash128& key, bool* exact) {
  const uint64_t ns = *s->OpenNamespace(testing::SmallNamespace());
  std::vector<uint8_t> dst(16384, 0x11);
  Status st = s->Get(ns, key, dst.data(), dst.size());
  *exact = st.ok() ? dst == testing::PatternBytes(key.lo, dst.size())
                   : dst == std::vector<uint8_t>(dst.size(), 0x11);
  return st;
}

TEST(RemoteTls, MutualTlsServesByteExact) {
  TlsFixture fx;
  if (!fx.ok) GTEST_SKIP() << "openssl command line not available (or failed): no certificates";
  ASSERT_TRUE(fx.node->server);
  const auto keys = fx.Fill();
  EXPECT_EQ(fx.node->server->session_counters().blocks_received.load(), 4u);
  testing::TestDir d;
  auto r = testing::MustOpen(fx.Client(d.path(), fx.node->endpoint(), "client"));
  ASSERT_TRUE(r);
  for (const Hash128& k : keys) {
    bool exact = false;
    Status s = GetOne(r.get(), k, &exact);
    EXPECT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(exact);
  }
  EXPECT_EQ(fx.node->server->counters().tls_handshake_failures.load(), 0u);
}

TEST(RemoteTls, ClientWithoutOrWithAWrongCertificateGetsMissesNotBytes) {
  TlsFixture fx;
  if (!fx.ok) GTEST_SKIP() << "openssl command line not available (or failed): no certificates";
  ASSERT_TRUE(fx.node->server);
  const auto keys = fx.Fill();
  struct Case {
    const char* cert;
    bool tls;
  } cases[] = {{nullptr, true}, {"rogue", true}, {nullptr, false}};
  for (const Case& c : cases) {
    testing::TestDir d;
    auto r = testing::MustOpen(fx.Client(d.path(), fx.node->endpoint(), c.cert, c.tls));
    ASSERT_TRUE(r);
    bool exact = false;
    Status s = GetOne(r.get(), keys[0], &exact);
    EXPECT_TRUE(s.IsNotFound()) << (c.cert ? c.cert : "none") << ": " << s.ToString();
    EXPECT_TRUE(exact);  // not a byte written
    auto j = nlohmann::json::parse(r->StatsJson());
    EXPECT_EQ(j["tiers"]["host"]["inserts"].get<uint64_t>(), 0u);
  }
  // Each was refused in the TLS handshake at the node.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (fx.node->server->counters().tls_handshake_failures.load() < 3 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_GE(fx.node->server->counters().tls_handshake_failures.load(), 3u);
  EXPECT_EQ(fx.node->server->session_counters().frames_in.load(),
            fx.node->server->session_counters().puts.load() + 1);  // Fill's HELLO and PUTs only
}

// A proxy that relays raw bytes and flips one, `at` bytes into the server -> client stream.
void FlipOneByte(uint16_t upstream, size_t at, int client) {
  UniqueFd server = testing::ConnectRaw(upstream);
  if (!server.valid()) return;
  auto pump = [](int from, int to, size_t flip_at) {
    std::vector<uint8_t> buf(4096);
    size_t off = 0;
    for (;;) {
      pollfd p{from, POLLIN, 0};
      if (::poll(&p, 1, 10000) <= 0) break;
      const ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      if (flip_at >= off && flip_at < off + static_cast<size_t>(n)) buf[flip_at - off] ^= 0x01;
      off += static_cast<size_t>(n);
      if (!testing::WriteAll(to, buf.data(), static_cast<size_t>(n))) break;
    }
    ::shutdown(from, SHUT_RDWR);
    ::shutdown(to, SHUT_RDWR);
  };
  std::thread up([&] { pump(client, server.get(), SIZE_MAX); });
  pump(server.get(), client, at);
  up.join();
}

TEST(RemoteTls, AFlippedByteFailsTheConnection) {
  TlsFixture fx;
  if (!fx.ok) GTEST_SKIP() << "openssl command line not available (or failed): no certificates";
  ASSERT_TRUE(fx.node->server);
  const auto keys = fx.Fill();
  // Past the handshake (about 1.5 KB from the node) and the HELLO answer: inside the block.
  const uint16_t port = fx.node->server->port();
  testing::FakeServer proxy([&](int fd) { FlipOneByte(port, 8000, fd); });
  testing::TestDir d;
  auto r = testing::MustOpen(fx.Client(d.path(), proxy.endpoint(), "client"));
  ASSERT_TRUE(r);
  bool exact = false;
  Status s = GetOne(r.get(), keys[0], &exact);
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_TRUE(exact);
  auto j = nlohmann::json::parse(r->StatsJson());
  EXPECT_EQ(j["tiers"]["host"]["inserts"].get<uint64_t>(), 0u);
  EXPECT_GT(j["tiers"]["remote"]["failures"].get<uint64_t>(), 0u);
  // TLS's record MAC caught it, not the block checksum further up.
  EXPECT_EQ(j["tiers"]["remote"]["checksum_failures"].get<uint64_t>(), 0u);
}

// A proxy that relays the client's bytes untouched and cuts the node's byte stream into TLS
// records (5-byte header: type, version, length), handing each to `hook`, which returns what to
// forward in its place. It knows TLS framing, not the keys: what an attacker on the path can do.
// `first_block`: the record is the connection's first one big enough to carry block bytes (the
// handshake's encrypted records are under 2 KB with these P-256 certificates; a block's first
// record is 16 KiB). Every connection is tampered with, so the client's retry on a fresh
// connection meets the attacker too.
using RecordHook = std::function<std::vector<std::vector<uint8_t>>(std::vector<uint8_t> record,
                                                                    bool first_block)>;
void RelayRecords(uint16_t upstream, int client, const RecordHook& hook) {
  UniqueFd server = testing::ConnectRaw(upstream);
  if (!server.valid()) return;
  std::thread up([&] {
    std::vector<uint8_t> buf(4096);
    for (;;) {
      pollfd p{client, POLLIN, 0};
      if (::poll(&p, 1, 10000) <= 0) break;
      const ssize_t n = ::recv(client, buf.data(), buf.size(), 0);
      if (n <= 0 || !testing::WriteAll(server.get(), buf.data(), static_cast<size_t>(n))) break;
    }
    ::shutdown(server.get(), SHUT_RDWR);
    ::shutdown(client, SHUT_RDWR);
  });
  bool seen_block = false;
  for (;;) {
    std::vector<uint8_t> rec(5);
    if (!testing::ReadAll(server.get(), rec.data(), 5, 10000)) break;
    const size_t len = size_t{rec[3]} << 8 | rec[4];
    rec.resize(5 + len);
    if (!testing::ReadAll(server.get(), rec.data() + 5, len, 10000)) break;
    const bool first_block = !seen_block && rec[0] == 23 && rec.size() > 8000;
    seen_block = seen_block || first_block;
    bool ok = true;
    for (const auto& out : hook(std::move(rec), first_block)) ok = ok && testing::WriteAll(client, out.data(), out.size());
    if (!ok) break;
  }
  ::shutdown(server.get(), SHUT_RDWR);
  ::shutdown(client, SHUT_RDWR);
  up.join();
}

// The client reads through `proxy_hook`; it must see a miss, not a byte, and TLS (not the block
// checksum) must be what caught it.
void ExpectMissThroughRecordProxy(const RecordHook& hook, std::atomic<int>* fired) {
  TlsFixture fx;
  if (!fx.ok) GTEST_SKIP() << "openssl command line not available (or failed): no certificates";
  ASSERT_TRUE(fx.node->server);
  const auto keys = fx.Fill();
  const uint16_t port = fx.node->server->port();
  testing::FakeServer proxy([&](int fd) { RelayRecords(port, fd, hook); });
  testing::TestDir d;
  auto r = testing::MustOpen(fx.Client(d.path(), proxy.endpoint(), "client"));
  ASSERT_TRUE(r);
  bool exact = false;
  Status s = GetOne(r.get(), keys[0], &exact);
  EXPECT_GE(fired->load(), 1);
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_TRUE(exact);
  auto j = nlohmann::json::parse(r->StatsJson());
  EXPECT_EQ(j["tiers"]["host"]["inserts"].get<uint64_t>(), 0u);
  EXPECT_GT(j["tiers"]["remote"]["failures"].get<uint64_t>(), 0u);
  EXPECT_EQ(j["tiers"]["remote"]["checksum_failures"].get<uint64_t>(), 0u);
}

TEST(RemoteTls, AReplayedRecordFailsTheConnection) {
  std::atomic<int> fired{0};
  ExpectMissThroughRecordProxy(
      [&](std::vector<uint8_t> rec, bool first_block) {
        std::vector<std::vector<uint8_t>> out{rec};
        if (first_block) {
          out.push_back(rec);  // sent twice
          ++fired;
        }
        return out;
      },
      &fired);
}

TEST(RemoteTls, AnInjectedRecordFailsTheConnection) {
  std::atomic<int> fired{0};
  ExpectMissThroughRecordProxy(
      [&](std::vector<uint8_t> rec, bool first_block) {
        std::vector<std::vector<uint8_t>> out;
        if (first_block) {
          ++fired;
          // A well-formed application-data record of the attacker's making, before the real one.
          std::vector<uint8_t> forged = {23, 3, 3, 0, 64};
          for (int i = 0; i < 64; ++i) forged.push_back(static_cast<uint8_t>(i * 37 + 1));
          out.push_back(forged);
        }
        out.push_back(rec);
        return out;
      },
      &fired);
}

}  // namespace
}  // namespace kvt
