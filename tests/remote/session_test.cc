// ServerSession driven directly (no sockets): the state machine, authentication, limits and the
// streamed get, against a real Store in a temporary directory.
#include <gtest/gtest.h>

#include <cstring>

#include "io/wire_auth.h"
#include "tools/kvtierd/server_session.h"
#include "tests/common/test_dir.h"

namespace kvt {
namespace {

using wire::Op;

struct Reply {
  wire::FrameHeader h;
  std::vector<uint8_t> body;
};

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Options o;
    ASSERT_TRUE(o.Set("dir", dir_.path()).ok());
    ASSERT_TRUE(o.Set("host_bytes", "8MiB").ok());
    ASSERT_TRUE(o.Set("host_slab_bytes", "1MiB").ok());
    ASSERT_TRUE(o.Set("host_mlock", "false").ok());
    auto s = Store::Open(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    desc_.model = "tiny@1";
    desc_.kv_dtype = "fp16";
    desc_.layers = 2;
    desc_.kv_heads = 2;
    desc_.head_dim = 64;
    desc_.block_tokens = 16;
    enc_ = EncodeNamespace(desc_);
    cfg_.nonce = [](std::array<uint8_t, wire::kNonceBytes>* n) { n->fill(0x42); };
  }
  void Start(const std::string& secret = "") {
    cfg_.auth_secret = secret;
    session_ = std::make_unique<ServerSession>(store_.get(), cfg_, &counters_);
  }
  void Send(const std::vector<uint8_t>& bytes) { session_->Consume(bytes); }
  void Send(Op op, uint64_t id, const std::vector<uint8_t>& body) {
    std::vector<uint8_t> f;
    wire::AppendFrame({static_cast<uint8_t>(op), 0, wire::kFlagEnd, id, 0}, body, &f);
    Send(f);
  }
  // Drains the session's output and splits it into frames.
  std::vector<Reply> Drain() {
    std::vector<uint8_t> bytes;
    while (session_->output_bytes() > 0) {
      size_t n = 0;
      for (auto s : session_->Output()) {
        bytes.insert(bytes.end(), s.begin(), s.end());
        n += s.size();
      }
      session_->Advance(n);
    }
    std::vector<Reply> out;
    size_t off = 0;
    while (off < bytes.size()) {
      Reply r;
      std::span<const uint8_t> body;
      size_t consumed = 0;
      EXPECT_TRUE(wire::ParseFrame(std::span(bytes).subspan(off), cfg_.limits, &r.h, &body,
                                   &consumed)
                      .ok());
      if (consumed == 0) break;
      r.body.assign(body.begin(), body.end());
      out.push_back(std::move(r));
      off += consumed;
    }
    EXPECT_EQ(off, bytes.size());
    return out;
  }
  void Hello() {
    wire::HelloRequest h;
    h.client_nonce.fill(0x17);
    Send(Op::kHello, 1, wire::EncodeHello(h));
  }
  std::vector<uint8_t> PutBody(const Hash128& key, const Hash128& parent, uint8_t fill,
                               std::vector<uint8_t>* payload) {
    const size_t bytes = 2 * 2 * 16 * 2 * 64 * 2;
    payload->assign(bytes, fill);
    wire::BlockInfo info{key, parent, {}, Checksum64(payload->data(), bytes),
                         static_cast<uint32_t>(bytes), false};
    auto body = wire::EncodePutHead(enc_, info);
    body.insert(body.end(), payload->begin(), payload->end());
    return body;
  }

  testing::TestDir dir_;
  std::unique_ptr<Store> store_;
  NamespaceDesc desc_;
  std::string enc_;
  SessionConfig cfg_;
  SessionCounters counters_;
  std::unique_ptr<ServerSession> session_;
};

TEST_F(SessionTest, RequestBeforeHelloIsDeniedAndCloses) {
  Start();
  Send(Op::kStats, 5, {});
  auto r = Drain();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].h.status, static_cast<uint8_t>(Code::kPermissionDenied));
  EXPECT_EQ(r[0].h.request_id, 5u);
  EXPECT_TRUE(session_->closing());
}

TEST_F(SessionTest, UnauthenticatedPeersCannotMakeTheServerBuffer) {
  // A PUT header announcing 1 MiB before HELLO is refused from its header alone.
  Start("s3cret");
  uint8_t h[wire::kHeaderBytes];
  wire::EncodeHeader({static_cast<uint8_t>(Op::kPut), 0, wire::kFlagEnd, 1, 1u << 20}, h);
  Send(std::vector<uint8_t>(h, h + sizeof h));
  auto r = Drain();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].h.status, static_cast<uint8_t>(Code::kPermissionDenied));
  EXPECT_TRUE(session_->closing());
  // An AUTH announcing a large body likewise.
  Start("s3cret");
  Hello();
  Drain();
  wire::EncodeHeader({static_cast<uint8_t>(Op::kAuth), 0, wire::kFlagEnd, 2, 100000}, h);
  Send(std::vector<uint8_t>(h, h + sizeof h));
  r = Drain();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].h.status, static_cast<uint8_t>(Code::kInvalidArgument));
  EXPECT_TRUE(session_->closing());
}

TEST_F(SessionTest, PutLookupGetWithoutAuth) {
  Start();
  Hello();
  auto r = Drain();
  ASSERT_EQ(r.size(), 1u);
  wire::HelloResponse hr;
  ASSERT_TRUE(wire::DecodeHelloResponse(r[0].body, &hr).ok());
  EXPECT_FALSE(hr.auth_required);
  EXPECT_TRUE(session_->authenticated());

  std::vector<uint8_t> payload;
  Send(Op::kPut, 2, PutBody({11, 12}, {0, 0}, 0x5A, &payload));
  r = Drain();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].h.status, 0) << std::string(r[0].body.begin(), r[0].body.end());

  // Pipelined: lookup and get sent together, answered in order.
  std::vector<Hash128> keys = {{11, 12}, {99, 99}};
  std::vector<uint8_t> both;
  wire::AppendFrame({static_cast<uint8_t>(Op::kLookup), 0, wire::kFlagEnd, 3, 0},
                    wire::EncodeKeysRequest(enc_, keys), &both);
  wire::AppendFrame({static_cast<uint8_t>(Op::kGet), 0, wire::kFlagEnd, 4, 0},
                    wire::EncodeKeysRequest(enc_, keys), &both);
  Send(both);
  r = Drain();
  ASSERT_EQ(r.size(), 3u);  // lookup response + one get frame per key
  std::vector<wire::LookupEntry> entries;
  ASSERT_TRUE(wire::DecodeLookupResponse(r[0].body, cfg_.limits, &entries).ok());
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_TRUE(entries[0].present);
  EXPECT_FALSE(entries[1].present);
  EXPECT_EQ(entries[0].info.checksum, Checksum64(payload.data(), payload.size()));
  wire::GetBlockHead head;
  ASSERT_TRUE(wire::DecodeGetBlockHead(r[1].body.data(), r[1].h.body_len, &head).ok());
  EXPECT_TRUE(head.present);
  EXPECT_EQ(r[1].h.flags & wire::kFlagEnd, 0);
  EXPECT_EQ(0, std::memcmp(r[1].body.data() + wire::kGetBlockHeadBytes, payload.data(),
                           payload.size()));
  ASSERT_TRUE(wire::DecodeGetBlockHead(r[2].body.data(), r[2].h.body_len, &head).ok());
  EXPECT_FALSE(head.present);
  EXPECT_EQ(head.index, 1u);
  EXPECT_NE(r[2].h.flags & wire::kFlagEnd, 0);
  EXPECT_FALSE(session_->closing());
}

TEST_F(SessionTest, PutWithBadChecksumIsRefusedAndNotStored) {
  Start();
  Hello();
  Drain();
  std::vector<uint8_t> payload;
  auto body = PutBody({21, 22}, {0, 0}, 0x33, &payload);
  body.back() ^= 1;  // corrupt one payload byte
  Send(Op::kPut, 2, body);
  auto r = Drain();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].h.status, static_cast<uint8_t>(Code::kCorruption));
  BlockMeta m;
  auto info = store_->AcquirePeerNamespace(enc_);
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(store_->PeekLocal((*info)->id, {21, 22}, &m));
  store_->ReleasePeerNamespace((*info)->id);
  EXPECT_FALSE(session_->closing());  // a bad request, not a broken stream
}

TEST_F(SessionTest, AuthRequiredWrongMacDeniedRightMacAccepted) {
  Start("s3cret");
  Hello();
  auto r = Drain();
  wire::HelloResponse hr;
  ASSERT_TRUE(wire::DecodeHelloResponse(r[0].body, &hr).ok());
  EXPECT_TRUE(hr.auth_required);
  // Anything but AUTH now is denied.
  Send(Op::kStats, 2, {});
  r = Drain();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].h.status, static_cast<uint8_t>(Code::kPermissionDenied));
  EXPECT_TRUE(session_->closing());

  Start("s3cret");
  Hello();
  Drain();
  std::array<uint8_t, wire::kNonceBytes> cn;
  cn.fill(0x17);
  wire::AuthMessage am;
  am.mac = wire::AuthMac("wrong", wire::AuthRole::kClient, hr.server_nonce, cn);
  Send(Op::kAuth, 2, wire::EncodeAuth(am));
  r = Drain();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].h.status, static_cast<uint8_t>(Code::kPermissionDenied));
  EXPECT_TRUE(session_->closing());

  Start("s3cret");
  Hello();
  Drain();
  am.mac = wire::AuthMac("s3cret", wire::AuthRole::kClient, hr.server_nonce, cn);
  Send(Op::kAuth, 2, wire::EncodeAuth(am));
  r = Drain();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].h.status, 0);
  EXPECT_TRUE(session_->authenticated());
  wire::AuthMessage proof;
  ASSERT_TRUE(wire::DecodeAuth(r[0].body, &proof).ok());
  EXPECT_TRUE(wire::MacEqual(
      proof.mac, wire::AuthMac("s3cret", wire::AuthRole::kServer, hr.server_nonce, cn)));
}

// Inside TLS the AUTH proof is bound to the TLS session (its exporter value): a proof made on
// another TLS session (a relay) is refused; the right one is accepted, and frames carry no MAC.
TEST_F(SessionTest, AuthInsideTlsIsBoundToTheTlsSessionAndFramesCarryNoMac) {
  TlsPeer peer;
  peer.binding.fill(0xB1);
  std::array<uint8_t, 32> other{};
  other.fill(0xB2);
  std::array<uint8_t, wire::kNonceBytes> cn;
  cn.fill(0x17);
  for (const bool relayed : {true, false}) {
    Start("s3cret");
    session_->SetTlsPeer(peer);
    Hello();
    auto r = Drain();
    wire::HelloResponse hr;
    ASSERT_TRUE(wire::DecodeHelloResponse(r[0].body, &hr).ok());
    EXPECT_TRUE(hr.auth_required);
    wire::AuthMessage am;
    am.mac = wire::AuthMac("s3cret", wire::AuthRole::kClient, hr.server_nonce, cn,
                           relayed ? other : peer.binding);
    Send(Op::kAuth, 2, wire::EncodeAuth(am));
    r = Drain();
    ASSERT_EQ(r.size(), 1u);
    if (relayed) {
      EXPECT_EQ(r[0].h.status, static_cast<uint8_t>(Code::kPermissionDenied));
      EXPECT_TRUE(session_->closing());
      continue;
    }
    EXPECT_EQ(r[0].h.status, 0);
    EXPECT_TRUE(session_->authenticated());
    wire::AuthMessage proof;
    ASSERT_TRUE(wire::DecodeAuth(r[0].body, &proof).ok());
    EXPECT_TRUE(wire::MacEqual(proof.mac, wire::AuthMac("s3cret", wire::AuthRole::kServer,
                                                        hr.server_nonce, cn, peer.binding)));
    // An untagged request is answered, untagged (Drain parses exact frames, no trailers).
    Send(Op::kLookup, 3, wire::EncodeKeysRequest(enc_, std::vector<Hash128>{{1, 2}}));
    r = Drain();
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].h.status, 0);
    EXPECT_FALSE(session_->closing());
    EXPECT_EQ(counters_.frame_mac_failures.load(), 0u);
  }
}

TEST_F(SessionTest, BadRequestsAnswerErrorsBadFramesClose) {
  Start();
  Hello();
  Drain();
  // A bad namespace encoding: an error response, the session goes on.
  Send(Op::kLookup, 2, wire::EncodeKeysRequest("not-a-namespace", std::vector<Hash128>{{1, 1}}));
  auto r = Drain();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].h.status, static_cast<uint8_t>(Code::kInvalidArgument));
  EXPECT_FALSE(session_->closing());
  // A header announcing a body over the limit: protocol error, close, nothing allocated for it.
  uint8_t huge[wire::kHeaderBytes];
  wire::EncodeHeader({static_cast<uint8_t>(Op::kPut), 0, wire::kFlagEnd, 3, 0xFFFFFF00u}, huge);
  Send(std::vector<uint8_t>(huge, huge + sizeof huge));
  r = Drain();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].h.opcode, wire::kProtocolError);
  EXPECT_TRUE(session_->closing());
  EXPECT_FALSE(session_->WantsInput());
}

TEST_F(SessionTest, GetStreamsUnderTheHighWaterMark) {
  cfg_.out_high_water = 1;  // one block in flight at a time
  Start();
  Hello();
  Drain();
  std::vector<uint8_t> payload;
  std::vector<Hash128> keys;
  for (uint64_t i = 0; i < 5; ++i) {
    keys.push_back({100 + i, 1});
    Send(Op::kPut, 10 + i, PutBody(keys.back(), {0, 0}, static_cast<uint8_t>(i), &payload));
  }
  ASSERT_EQ(Drain().size(), 5u);
  Send(Op::kGet, 20, wire::EncodeKeysRequest(enc_, keys));
  // Only one block is queued until the output drains.
  EXPECT_LE(session_->output_bytes(), wire::kHeaderBytes + wire::kGetBlockHeadBytes + payload.size());
  auto r = Drain();
  ASSERT_EQ(r.size(), 5u);
  for (size_t i = 0; i < r.size(); ++i) {
    EXPECT_EQ(r[i].body[wire::kGetBlockHeadBytes], static_cast<uint8_t>(i));
  }
}

}  // namespace
}  // namespace kvt
