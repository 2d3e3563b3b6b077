// Per-tenant credentials (kvtierd --tenants): a client holding tenant B's credential can neither
// read, look up nor drop tenant A's namespaces, STATS needs admin, and unknown credentials are
// refused like wrong secrets.
#include <nlohmann/json.hpp>

#include "remote_test_util.h"
#include "tests/core/test_util.h"

namespace kvt {
namespace {

using testing::Node;
using testing::StoreOptions;

constexpr char kTenants[] = R"({"credentials": [
  {"id": "team-a", "secret": "secret-a", "tenants": ["tenant-a"], "rights": ["read", "write"]},
  {"id": "team-b", "secret": "secret-b", "tenants": ["tenant-b"],
   "rights": ["read", "write", "drop"]},
  {"id": "reader", "secret": "secret-r", "tenants": ["tenant-a"], "rights": ["read"]},
  {"id": "ops", "secret": "secret-o", "tenants": ["*"], "rights": ["admin"]}
]})";

ServerOptions TenantServer() {
  ServerOptions so;
  auto c = CredentialSet::Parse(kTenants);
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  if (c.ok()) so.credentials = *c;
  return so;
}

RemoteOptions As(const Node& node, const std::string& id, const std::string& secret) {
  RemoteOptions ro;
  ro.endpoints = {node.endpoint()};
  ro.credential = id;
  ro.secret = secret;
  return ro;
}

Options StoreAs(const std::string& dir, const Node& node, const std::string& id,
                const std::string& secret) {
  Options o = StoreOptions(dir, node.endpoint(), secret);
  EXPECT_TRUE(o.Set("auth_id", id).ok());
  return o;
}

TEST(Tenants, CredentialFileIsValidated) {
  EXPECT_TRUE(CredentialSet::Parse(kTenants).ok());
  for (const char* bad : {
           "not json", R"({"credentials": []})", R"({"credentials": [{"id": "x"}]})",
           R"({"credentials": [{"id": "x", "secret": "", "tenants": [], "rights": []}]})",
           R"({"credentials": [{"id": "x", "secret": "s", "tenants": ["a"], "rights": ["fly"]}]})",
           R"({"credentials": [{"id": "x", "secret": "s", "tenants": [], "rights": []},
                               {"id": "x", "secret": "t", "tenants": [], "rights": []}]})"}) {
    auto r = CredentialSet::Parse(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    }
  }
}

TEST(Tenants, OtherTenantsNamespacesAreDeniedNeverServedNeverDropped) {
  Node node(TenantServer());
  ASSERT_TRUE(node.server);
  testing::TestDir a_dir, b_dir;
  auto a = testing::MustOpen(StoreAs(a_dir.path(), node, "team-a", "secret-a"));
  ASSERT_TRUE(a);
  const NamespaceDesc desc_a = testing::SmallNamespace("tenant-a");
  const uint64_t ns_a = *a->OpenNamespace(desc_a);
  std::vector<int32_t> toks(4 * 16);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>(i + 5);
  std::vector<Hash128> keys;
  ASSERT_TRUE(a->HashTokens(ns_a, toks, &keys).ok());
  const size_t bytes = (*a->Namespace(ns_a))->block_bytes;
  for (size_t i = 0; i < keys.size(); ++i) {
    auto data = testing::PatternBytes(keys[i].lo, bytes);
    ASSERT_TRUE(a->Put(ns_a, keys[i], i == 0 ? Hash128{} : keys[i - 1], &toks[i * 16],
                       data.data(), data.size())
                    .ok());
  }
  const uint64_t node_ns = *node.store->OpenNamespace(desc_a);
  auto node_blocks = [&] {
    size_t n = 0;
    BlockMeta m;
    for (const Hash128& k : keys) n += node.store->PeekLocal(node_ns, k, &m) ? 1 : 0;
    return n;
  };
  ASSERT_EQ(node_blocks(), 4u);

  // Tenant B's store asks for tenant A's blocks: KVT_PERMISSION_DENIED, not a byte.
  auto b = testing::MustOpen(StoreAs(b_dir.path(), node, "team-b", "secret-b"));
  ASSERT_TRUE(b);
  const uint64_t ns_b = *b->OpenNamespace(desc_a);
  std::vector<uint8_t> dst(bytes, 0x11);
  Status s = b->Get(ns_b, keys[0], dst.data(), dst.size());
  EXPECT_EQ(s.code(), Code::kPermissionDenied) << s.ToString();
  EXPECT_EQ(dst, std::vector<uint8_t>(bytes, 0x11));

  // The remote tier itself: lookup, get and drop all denied; the node keeps every block.
  auto rb = std::move(RemoteTier::Create(As(node, "team-b", "secret-b"))).value();
  const std::string enc_a = EncodeNamespace(desc_a);
  std::vector<wire::LookupEntry> entries;
  EXPECT_EQ(rb->Lookup(enc_a, keys, &entries).code(), Code::kPermissionDenied);
  for (const auto& e : entries) EXPECT_FALSE(e.present);
  int delivered = 0;
  EXPECT_EQ(rb->Get(enc_a, keys, [&](size_t, RemotePayload*) { ++delivered; }).code(),
            Code::kPermissionDenied);
  EXPECT_EQ(delivered, 0);
  EXPECT_EQ(rb->DropNamespace(enc_a).code(), Code::kPermissionDenied);
  EXPECT_EQ(node_blocks(), 4u);
  // B's own tenant works, drop included (it has the drop right there).
  const std::string enc_b = EncodeNamespace(testing::SmallNamespace("tenant-b"));
  EXPECT_TRUE(rb->Lookup(enc_b, keys, &entries).ok());
  EXPECT_TRUE(rb->DropNamespace(enc_b).ok());

  // A read-only credential of tenant A reads, but may not write or drop.
  auto rr = std::move(RemoteTier::Create(As(node, "reader", "secret-r"))).value();
  delivered = 0;
  EXPECT_TRUE(rr->Get(enc_a, keys, [&](size_t i, RemotePayload* p) {
                  std::vector<uint8_t> buf(bytes);
                  if (p->Read(buf.data()).ok() && buf == testing::PatternBytes(keys[i].lo, bytes)) {
                    ++delivered;
                  }
                }).ok());
  EXPECT_EQ(delivered, 4);
  auto payload = testing::PatternBytes(1, bytes);
  wire::BlockInfo info{{77, 78}, {}, {}, Checksum64(payload.data(), bytes),
                       static_cast<uint32_t>(bytes), false};
  EXPECT_EQ(rr->Put(enc_a, info, payload.data()).code(), Code::kPermissionDenied);
  EXPECT_EQ(rr->DropNamespace(enc_a).code(), Code::kPermissionDenied);
  EXPECT_EQ(node_blocks(), 4u);

  // STATS needs admin.
  std::string text;
  EXPECT_EQ(rr->Metrics(0, &text).code(), Code::kPermissionDenied);
  EXPECT_TRUE(text.empty());
  auto ro = std::move(RemoteTier::Create(As(node, "ops", "secret-o"))).value();
  ASSERT_TRUE(ro->Metrics(0, &text).ok());
  EXPECT_NE(text.find("kvtierd_requests_denied"), std::string::npos);
  // B: store get, lookup, get, drop; reader: put, drop, stats.
  EXPECT_EQ(node.server->session_counters().denied.load(), 7u);
}

TEST(Tenants, UnknownCredentialOrWrongSecretIsRefused) {
  Node node(TenantServer());
  ASSERT_TRUE(node.server);
  for (const auto& [id, secret] : std::vector<std::pair<std::string, std::string>>{
           {"team-a", "secret-b"}, {"nobody", "secret-a"}, {"", "secret-a"}}) {
    auto rt = std::move(RemoteTier::Create(As(node, id, secret))).value();
    EXPECT_EQ(rt->Probe().code(), Code::kPermissionDenied) << id;
  }
  testing::TestDir d;
  auto s = Store::Open(StoreAs(d.path(), node, "team-a", "wrong"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kPermissionDenied);
  EXPECT_EQ(node.server->session_counters().auth_failures.load(), 4u);
}

}  // namespace
}  // namespace kvt
