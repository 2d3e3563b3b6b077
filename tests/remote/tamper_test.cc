// Attacks from the network path on an authenticated (shared secret) kvtierd connection: a proxy
// that does not know the secret alters a block (recomputing its unkeyed checksum), injects a
// DROP_NAMESPACE, or replays a frame. Each must close the connection: the client counts a miss,
// never wrong bytes, and the node drops nothing.
#include <nlohmann/json.hpp>

#include "tamper_proxy.h"
#include "tests/core/test_util.h"

namespace kvt {
namespace {

using testing::Dir;
using testing::Node;
using testing::StoreOptions;
using testing::WireFrame;

constexpr char kSecret[] = "shared secret";

struct Fixture {
  Fixture() : node(Options()) {
    writer = testing::MustOpen(StoreOptions(w_dir.path(), node.endpoint(), kSecret));
    ns_w = *writer->OpenNamespace(testing::SmallNamespace());
    std::vector<int32_t> toks(8 * 16);
    for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>(i * 3 + 1);
    EXPECT_TRUE(writer->HashTokens(ns_w, toks, &keys).ok());
    bytes = (*writer->Namespace(ns_w))->block_bytes;
    for (size_t i = 0; i < keys.size(); ++i) {
      auto data = testing::PatternBytes(keys[i].lo, bytes);
      EXPECT_TRUE(writer->Put(ns_w, keys[i], i == 0 ? Hash128{} : keys[i - 1], &toks[i * 16],
                              data.data(), data.size())
                      .ok());
    }
  }
  static ServerOptions Options() {
    ServerOptions so;
    so.auth_secret = kSecret;
    return so;
  }
  // Blocks of the namespace at the node.
  size_t NodeBlocks() {
    const uint64_t ns = *node.store->OpenNamespace(testing::SmallNamespace());
    size_t n = 0;
    BlockMeta m;
    for (const Hash128& k : keys) n += node.store->PeekLocal(ns, k, &m) ? 1 : 0;
    return n;
  }
  uint64_t NodeMacFailures() { return node.server->session_counters().frame_mac_failures.load(); }

  Node node;
  testing::TestDir w_dir;
  std::unique_ptr<Store> writer;
  uint64_t ns_w = 0;
  std::vector<Hash128> keys;
  size_t bytes = 0;
};

uint64_t RemoteStat(Store* s, const char* name) {
  return nlohmann::json::parse(s->StatsJson())["tiers"]["remote"][name].get<uint64_t>();
}

TEST(RemoteTamper, AlteredBlockWithRecomputedChecksumIsAMiss) {
  Fixture fx;
  ASSERT_EQ(fx.NodeBlocks(), 8u);
  std::atomic<int> altered{0};
  testing::TamperProxy proxy(fx.node.server->port(), true,
                             [&](size_t, Dir dir, const WireFrame& f) {
    WireFrame g = f;
    const uint8_t get = static_cast<uint8_t>(wire::Op::kGet) | wire::kResponseBit;
    if (dir == Dir::kToClient && f.tagged && f.h.opcode == get &&
        f.h.body_len > wire::kGetBlockHeadBytes) {
      // Flip a payload byte and fix the block's XXH3 checksum so that it still matches.
      uint8_t* head = g.bytes.data() + wire::kHeaderBytes;
      uint8_t* payload = head + wire::kGetBlockHeadBytes;
      const size_t n = f.h.body_len - wire::kGetBlockHeadBytes;
      payload[n / 2] ^= 0x5A;
      wire::GetBlockHead gh;
      EXPECT_TRUE(wire::DecodeGetBlockHead(head, f.h.body_len, &gh).ok());
      gh.info.checksum = Checksum64(payload, n);
      wire::EncodeGetBlockHead(gh, head);
      ++altered;
    }
    return std::vector<WireFrame>{g};
  });
  testing::TestDir r_dir;
  auto o = StoreOptions(r_dir.path(), proxy.endpoint(), kSecret);
  ASSERT_TRUE(o.Set("remote_write", "off").ok());
  auto reader = testing::MustOpen(o);
  ASSERT_TRUE(reader);
  const uint64_t ns = *reader->OpenNamespace(testing::SmallNamespace());
  std::vector<uint8_t> dst(fx.bytes, 0x11);
  Status s = reader->Get(ns, fx.keys[0], dst.data(), dst.size());
  EXPECT_EQ(altered.load(), 1);
  EXPECT_TRUE(s.IsNotFound()) << s.ToString();
  EXPECT_EQ(dst, std::vector<uint8_t>(fx.bytes, 0x11));  // not one altered byte delivered
  EXPECT_EQ(RemoteStat(reader.get(), "frame_mac_failures"), 1u);
  EXPECT_EQ(RemoteStat(reader.get(), "checksum_failures"), 0u);  // the checksum was fixed up
  auto j = nlohmann::json::parse(reader->StatsJson());
  EXPECT_EQ(j["tiers"]["host"]["inserts"].get<uint64_t>(), 0u);  // nothing unverified kept
}

TEST(RemoteTamper, InjectedDropNamespaceClosesTheConnectionAndDropsNothing) {
  Fixture fx;
  const std::string enc = EncodeNamespace(testing::SmallNamespace());
  std::atomic<int> injected{0};
  testing::TamperProxy proxy(fx.node.server->port(), true,
                             [&](size_t conn, Dir dir, const WireFrame& f) {
    std::vector<WireFrame> out{f};
    // Right behind the client's AUTH, on the first connection: a drop of the victim's namespace.
    if (conn == 0 && dir == Dir::kToServer && f.h.opcode == static_cast<uint8_t>(wire::Op::kAuth)) {
      out.push_back(testing::ForgedFrame(wire::Op::kDropNamespace, 999,
                                         wire::EncodeNamespaceRequest(enc), /*tagged=*/true));
      ++injected;
    }
    return out;
  });
  RemoteOptions ro;
  ro.endpoints = {proxy.endpoint()};
  ro.secret = kSecret;
  auto rt = std::move(RemoteTier::Create(ro)).value();
  std::vector<wire::LookupEntry> entries;
  Status s = rt->Lookup(enc, fx.keys, &entries);
  EXPECT_EQ(injected.load(), 1);
  // The node refused the forged frame and closed that connection; nothing was dropped.
  EXPECT_EQ(fx.NodeMacFailures(), 1u);
  EXPECT_EQ(fx.NodeBlocks(), 8u);
  EXPECT_EQ(fx.node.server->session_counters().drops.load(), 0u);
  // The client's lookup either failed soft on the closed connection or was retried on a fresh
  // one; it never saw a frame the node did not send.
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(rt->counters().frame_mac_failures.load(), 0u);
}

TEST(RemoteTamper, ReplayedFrameClosesTheConnection) {
  Fixture fx;
  const std::string enc = EncodeNamespace(testing::SmallNamespace());
  std::atomic<int> replayed{0};
  testing::TamperProxy proxy(fx.node.server->port(), true,
                             [&](size_t, Dir dir, const WireFrame& f) {
    std::vector<WireFrame> out{f};
    // The client's first authenticated request, sent twice (byte for byte, valid tag).
    if (dir == Dir::kToServer && f.tagged && replayed.load() == 0) {
      out.push_back(f);
      ++replayed;
    }
    return out;
  });
  RemoteOptions ro;
  ro.endpoints = {proxy.endpoint()};
  ro.secret = kSecret;
  auto rt = std::move(RemoteTier::Create(ro)).value();
  std::vector<wire::LookupEntry> entries;
  ASSERT_TRUE(rt->Lookup(enc, fx.keys, &entries).ok());
  EXPECT_EQ(replayed.load(), 1);
  for (const auto& e : entries) EXPECT_TRUE(e.present);  // the original was answered
  // The copy failed its sequence number: the node counted it and closed the connection, so the
  // next request on it fails and is retried on a fresh connection.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (fx.NodeMacFailures() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_EQ(fx.NodeMacFailures(), 1u);
  ASSERT_TRUE(rt->Lookup(enc, fx.keys, &entries).ok());
  for (const auto& e : entries) EXPECT_TRUE(e.present);
  EXPECT_EQ(proxy.connections(), 2u);
}

}  // namespace
}  // namespace kvt
