// A client certificate as the tenant credential (kvtierd --tenants with "subject" or "cn" entries,
// over mutual TLS): tenant A's certificate gets KVT_PERMISSION_DENIED for tenant B's namespaces
// (never data, never a drop), an unknown subject is refused, and a secret credential still works
// inside TLS. The certificates are made with the openssl command line (skip without it).
#include <nlohmann/json.hpp>

#include "remote_test_util.h"
#include "tests/core/test_util.h"
#include "tls_certs.h"

namespace kvt {
namespace {

using testing::Node;

constexpr char kTlsTenants[] = R"({"credentials": [
  {"id": "team-a", "subject": "CN=client-a,O=kvtier", "tenants": ["tenant-a"],
   "rights": ["read", "write"]},
  {"id": "team-b", "cn": "client-b", "tenants": ["tenant-b"], "rights": ["read", "write", "drop"]},
  {"id": "team-s", "secret": "secret-s", "tenants": ["tenant-a"], "rights": ["read"]}
]})";

struct TlsTenantFixture {
  explicit TlsTenantFixture(const char* tenants = kTlsTenants)
      : ok(testing::HaveOpenssl() &&
           testing::MakeCerts(certs.path(), {{"node", "ca", ""},
                                             {"client-a", "ca", "/O=kvtier/CN=client-a"},
                                             {"client-b", "ca", "/O=elsewhere/CN=client-b"},
                                             {"stranger", "ca", "/O=kvtier/CN=stranger"}})) {
    if (!ok) return;
    ServerOptions so;
    so.tls_cert = file("node");
    so.tls_key = key("node");
    so.tls_ca = file("ca");
    auto c = CredentialSet::Parse(tenants);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    if (c.ok()) so.credentials = *c;
    node = std::make_unique<Node>(so);
  }
  std::string file(const std::string& n) const { return certs.path() + "/" + n + ".pem"; }
  std::string key(const std::string& n) const { return certs.path() + "/" + n + ".key"; }
  RemoteOptions As(const std::string& cert, const std::string& id = "",
                   const std::string& secret = "") const {
    RemoteOptions ro;
    ro.endpoints = {node->endpoint()};
    ro.tls = {file(cert), key(cert), file("ca")};
    ro.credential = id;
    ro.secret = secret;
    return ro;
  }
  testing::TestDir certs;
  bool ok;
  std::unique_ptr<Node> node;
};

constexpr size_t kBytes = 16384;

// Puts 4 blocks of tenant-a as `rt`; returns their infos.
std::vector<wire::BlockInfo> PutBlocks(RemoteTier* rt, const std::string& enc) {
  std::vector<wire::BlockInfo> infos;
  Hash128 parent{};
  for (uint64_t i = 0; i < 4; ++i) {
    auto data = testing::PatternBytes(100 + i, kBytes);
    wire::BlockInfo info{{100 + i, 7}, parent, {}, Checksum64(data.data(), kBytes),
                         static_cast<uint32_t>(kBytes), false};
    EXPECT_TRUE(rt->Put(enc, info, data.data()).ok());
    infos.push_back(info);
    parent = info.key;
  }
  return infos;
}

TEST(TlsTenants, CertificateSubjectIsTheCredential) {
  TlsTenantFixture fx;
  if (!fx.ok) GTEST_SKIP() << "openssl command line not available (or failed): no certificates";
  ASSERT_TRUE(fx.node->server);
  const std::string enc_a = EncodeNamespace(testing::SmallNamespace("tenant-a"));
  const std::string enc_b = EncodeNamespace(testing::SmallNamespace("tenant-b"));
  auto ra = std::move(RemoteTier::Create(fx.As("client-a"))).value();
  const auto infos = PutBlocks(ra.get(), enc_a);
  std::vector<Hash128> keys;
  for (const auto& i : infos) keys.push_back(i.key);
  const uint64_t node_ns = *fx.node->store->OpenNamespace(testing::SmallNamespace("tenant-a"));
  auto node_blocks = [&] {
    size_t n = 0;
    BlockMeta m;
    for (const Hash128& k : keys) n += fx.node->store->PeekLocal(node_ns, k, &m) ? 1 : 0;
    return n;
  };
  ASSERT_EQ(node_blocks(), 4u);

  // Tenant B's certificate: lookup, get and drop of tenant A's namespace are denied.
  auto rb = std::move(RemoteTier::Create(fx.As("client-b"))).value();
  std::vector<wire::LookupEntry> entries;
  EXPECT_EQ(rb->Lookup(enc_a, keys, &entries).code(), Code::kPermissionDenied);
  for (const auto& e : entries) EXPECT_FALSE(e.present);
  int delivered = 0;
  EXPECT_EQ(rb->Get(enc_a, keys, [&](size_t, RemotePayload*) { ++delivered; }).code(),
            Code::kPermissionDenied);
  EXPECT_EQ(delivered, 0);
  EXPECT_EQ(rb->DropNamespace(enc_a).code(), Code::kPermissionDenied);
  EXPECT_EQ(node_blocks(), 4u);
  // The denials did not cost B its connection (one connection throughout).
  EXPECT_EQ(rb->counters().connects.load(), 1u);
  // B's own tenant works, drop included.
  PutBlocks(rb.get(), enc_b);
  EXPECT_TRUE(rb->DropNamespace(enc_b).ok());

  // A reads its blocks byte-exact, but has no drop right.
  EXPECT_TRUE(ra->Get(enc_a, keys, [&](size_t i, RemotePayload* p) {
                  std::vector<uint8_t> buf(kBytes);
                  if (p->Read(buf.data()).ok() && buf == testing::PatternBytes(100 + i, kBytes)) {
                    ++delivered;
                  }
                }).ok());
  EXPECT_EQ(delivered, 4);
  EXPECT_EQ(ra->DropNamespace(enc_a).code(), Code::kPermissionDenied);
  EXPECT_EQ(node_blocks(), 4u);
  const auto& sc = fx.node->server->session_counters();
  EXPECT_EQ(sc.denied.load(), 4u);  // B: lookup, get, drop; A: drop
  EXPECT_GE(sc.cert_auth_ok.load(), 2u);
  EXPECT_EQ(sc.cert_unknown.load(), 0u);
}

TEST(TlsTenants, UnknownSubjectIsRefused) {
  TlsTenantFixture fx;
  if (!fx.ok) GTEST_SKIP() << "openssl command line not available (or failed): no certificates";
  ASSERT_TRUE(fx.node->server);
  // "stranger" chains to the CA (the TLS handshake succeeds) but no credential names it, and it
  // holds no secret: refused.
  auto c = RemoteConn::Connect(fx.node->endpoint(), "", RemoteTimeouts{}, "",
                               fx.As("stranger").tls);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kPermissionDenied) << c.status().ToString();
  auto rt = std::move(RemoteTier::Create(fx.As("stranger"))).value();
  EXPECT_EQ(rt->Probe().code(), Code::kPermissionDenied);
  // The node with cert-only credentials refuses it at HELLO, before any request.
  TlsTenantFixture only(R"({"credentials": [{"id": "team-a", "cn": "client-a", "tenants": ["tenant-a"],
                                    "rights": ["read"]}]})");
  ASSERT_TRUE(only.node->server);
  auto d = RemoteConn::Connect(only.node->endpoint(), "", RemoteTimeouts{}, "",
                               only.As("stranger").tls);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), Code::kPermissionDenied) << d.status().ToString();
  EXPECT_EQ(only.node->server->session_counters().cert_unknown.load(), 1u);
  EXPECT_EQ(only.node->server->session_counters().frames_in.load(), 1u);  // the HELLO alone
  EXPECT_EQ(only.node->server->session_counters().lookups.load(), 0u);
}

TEST(TlsTenants, SecretCredentialWorksInsideTls) {
  TlsTenantFixture fx;
  if (!fx.ok) GTEST_SKIP() << "openssl command line not available (or failed): no certificates";
  ASSERT_TRUE(fx.node->server);
  const std::string enc_a = EncodeNamespace(testing::SmallNamespace("tenant-a"));
  auto ra = std::move(RemoteTier::Create(fx.As("client-a"))).value();
  const auto infos = PutBlocks(ra.get(), enc_a);
  // "stranger"'s certificate is unknown, but it proves team-s's secret (bound to this TLS
  // session): it reads tenant A, nothing more.
  auto rs = std::move(RemoteTier::Create(fx.As("stranger", "team-s", "secret-s"))).value();
  std::vector<Hash128> keys;
  for (const auto& i : infos) keys.push_back(i.key);
  std::vector<wire::LookupEntry> entries;
  ASSERT_TRUE(rs->Lookup(enc_a, keys, &entries).ok());
  for (const auto& e : entries) EXPECT_TRUE(e.present);
  EXPECT_EQ(rs->DropNamespace(enc_a).code(), Code::kPermissionDenied);
  auto wrong = std::move(RemoteTier::Create(fx.As("stranger", "team-s", "wrong"))).value();
  EXPECT_EQ(wrong->Probe().code(), Code::kPermissionDenied);
  EXPECT_EQ(fx.node->server->session_counters().frame_mac_failures.load(), 0u);
}

}  // namespace
}  // namespace kvt
