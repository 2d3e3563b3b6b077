#include <gtest/gtest.h>

#include <cstring>

#include "io/wire_auth.h"
#include "io/wire_format.h"
#include "src/block_key.h"
#include "src/options.h"

namespace kvt::wire {
namespace {

std::vector<uint8_t> Frame(uint8_t op, uint64_t id, std::span<const uint8_t> body) {
  std::vector<uint8_t> out;
  AppendFrame({op, 0, kFlagEnd, id, 0}, body, &out);
  return out;
}

TEST(WireFormat, HeaderRoundTrip) {
  FrameHeader h{static_cast<uint8_t>(Op::kGet) | kResponseBit, 3, 0, 0x1122334455667788ull, 77};
  uint8_t buf[kHeaderBytes];
  EncodeHeader(h, buf);
  EXPECT_EQ(0, std::memcmp(buf, "KVTW", 4));  // magic reads as text on the wire
  FrameHeader d;
  ASSERT_TRUE(DecodeHeader(buf, Limits{}, &d).ok());
  EXPECT_EQ(d.opcode, h.opcode);
  EXPECT_EQ(d.status, 3);
  EXPECT_EQ(d.request_id, h.request_id);
  EXPECT_EQ(d.body_len, 77u);
}

TEST(WireFormat, HeaderRejectsEachBadField) {
  uint8_t good[kHeaderBytes];
  EncodeHeader({static_cast<uint8_t>(Op::kLookup), 0, kFlagEnd, 1, 10}, good);
  FrameHeader d;
  struct Case {
    size_t at;
    uint8_t value;
    const char* expect;
  } cases[] = {{0, 'X', "magic"}, {4, 1, "version"},  {5, 0, "opcode"},  {5, 0x42, "opcode"},
               {6, 200, "status"}, {7, 0x80, "flags"}, {20, 1, "reserved"}};
  for (const Case& c : cases) {
    uint8_t b[kHeaderBytes];
    std::memcpy(b, good, sizeof b);
    b[c.at] = c.value;
    Status s = DecodeHeader(b, Limits{}, &d);
    EXPECT_FALSE(s.ok()) << c.expect;
    EXPECT_NE(s.message().find(c.expect), std::string::npos) << s.message();
  }
  Limits small;
  small.max_body = 9;
  Status s = DecodeHeader(good, small, &d);
  EXPECT_NE(s.message().find("exceeds the limit"), std::string::npos);
}

TEST(WireFormat, ParseFrameWaitsForWholeFrame) {
  const std::vector<uint8_t> body(100, 7);
  auto f = Frame(static_cast<uint8_t>(Op::kStats), 9, body);
  FrameHeader h;
  std::span<const uint8_t> b;
  size_t consumed = 1;
  for (size_t n = 0; n < f.size(); ++n) {
    ASSERT_TRUE(ParseFrame({f.data(), n}, Limits{}, &h, &b, &consumed).ok());
    EXPECT_EQ(consumed, 0u);
  }
  ASSERT_TRUE(ParseFrame(f, Limits{}, &h, &b, &consumed).ok());
  EXPECT_EQ(consumed, f.size());
  EXPECT_EQ(b.size(), 100u);
  // A huge announced length fails from the header alone, before any body arrives.
  uint8_t huge[kHeaderBytes];
  EncodeHeader({static_cast<uint8_t>(Op::kPut), 0, kFlagEnd, 1, 0xFFFFFFF0u}, huge);
  EXPECT_FALSE(ParseFrame({huge, sizeof huge}, Limits{}, &h, &b, &consumed).ok());
}

TEST(WireFormat, KeysRequestRoundTripAndLimits) {
  std::vector<Hash128> keys = {{1, 2}, {3, 4}, {~0ull, 5}};
  auto body = EncodeKeysRequest("ns-encoding", keys);
  KeysRequest r;
  ASSERT_TRUE(DecodeKeysRequest(body, Limits{}, true, &r).ok());
  EXPECT_EQ(r.ns, "ns-encoding");
  EXPECT_EQ(r.keys, keys);
  // Count that disagrees with the bytes, a truncated body, too many keys.
  auto bad = body;
  bad[4 + 11] = 4;
  EXPECT_FALSE(DecodeKeysRequest(bad, Limits{}, true, &r).ok());
  EXPECT_FALSE(DecodeKeysRequest({body.data(), body.size() - 1}, Limits{}, true, &r).ok());
  Limits two;
  two.max_keys = 2;
  EXPECT_FALSE(DecodeKeysRequest(body, two, true, &r).ok());
  // Namespace length beyond the body or the limit.
  bad = body;
  bad[0] = 0xFF;
  EXPECT_FALSE(DecodeKeysRequest(bad, Limits{}, true, &r).ok());
  EXPECT_FALSE(DecodeKeysRequest(body, Limits{}, /*allow_keys=*/false, &r).ok());
  auto drop = EncodeNamespaceRequest("abc");
  ASSERT_TRUE(DecodeKeysRequest(drop, Limits{}, false, &r).ok());
  EXPECT_EQ(r.ns, "abc");
}

TEST(WireFormat, BlockBodiesRoundTrip) {
  BlockInfo info{{1, 2}, {3, 4}, {5, 6}, 0xABCDEF, 4096, true};
  uint8_t m[kMetaBytes];
  EncodeBlockInfo(info, m);
  EXPECT_EQ(DecodeBlockInfo(m), info);

  std::vector<LookupEntry> entries = {{true, info}, {false, {}}};
  std::vector<LookupEntry> back;
  ASSERT_TRUE(DecodeLookupResponse(EncodeLookupResponse(entries), Limits{}, &back).ok());
  ASSERT_EQ(back.size(), 2u);
  EXPECT_TRUE(back[0].present);
  EXPECT_EQ(back[0].info, info);
  EXPECT_FALSE(back[1].present);

  GetBlockHead head{7, true, info};
  uint8_t hb[kGetBlockHeadBytes];
  EncodeGetBlockHead(head, hb);
  GetBlockHead hd;
  ASSERT_TRUE(DecodeGetBlockHead(hb, kGetBlockHeadBytes + 4096, &hd).ok());
  EXPECT_EQ(hd.index, 7u);
  EXPECT_EQ(hd.info, info);
  EXPECT_FALSE(DecodeGetBlockHead(hb, kGetBlockHeadBytes + 4095, &hd).ok());

  std::vector<uint8_t> payload(4096, 9);
  auto put = EncodePutHead("ns", info);
  put.insert(put.end(), payload.begin(), payload.end());
  PutRequest pr;
  ASSERT_TRUE(DecodePut(put, Limits{}, &pr).ok());
  EXPECT_EQ(pr.ns, "ns");
  EXPECT_EQ(pr.info, info);
  EXPECT_EQ(pr.payload.size(), 4096u);
  put.pop_back();
  EXPECT_FALSE(DecodePut(put, Limits{}, &pr).ok());
}

TEST(WireFormat, HelloResponseWithZeroMaxKeysIsRejected) {
  HelloResponse hr;
  hr.max_body = Limits{}.max_body;
  hr.max_keys = 1;
  HelloResponse back;
  ASSERT_TRUE(DecodeHelloResponse(EncodeHelloResponse(hr), &back).ok());
  EXPECT_EQ(back.max_keys, 1u);
  hr.max_keys = 0;
  Status s = DecodeHelloResponse(EncodeHelloResponse(hr), &back);
  EXPECT_EQ(s.code(), Code::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("max_keys"), std::string::npos);
}

TEST(WireFormat, HelloCarriesCodecsOnlyWhenOffered) {
  HelloRequest plain;
  plain.client_nonce.fill(7);
  EXPECT_EQ(EncodeHello(plain).size(), kNonceBytes);  // what servers before compression expect
  HelloRequest offer = plain;
  offer.codecs = kCodecZstd | kCodecFp8 | 0x40;  // an unknown bit travels; the server drops it
  const auto body = EncodeHello(offer);
  ASSERT_EQ(body.size(), kNonceBytes + 4);
  HelloRequest d;
  ASSERT_TRUE(DecodeHello(body, &d).ok());
  EXPECT_EQ(d.codecs, offer.codecs);
  auto bad = body;
  bad[kNonceBytes + 2] = 1;  // reserved
  EXPECT_FALSE(DecodeHello(bad, &d).ok());
  bad = body;
  bad[kNonceBytes] = 0;  // the long form offering nothing is not canonical
  EXPECT_FALSE(DecodeHello(bad, &d).ok());
  bad = body;
  bad.pop_back();
  EXPECT_FALSE(DecodeHello(bad, &d).ok());
  HelloResponse r;
  r.max_body = 1 << 20;
  r.max_keys = 8;
  r.codecs = kCodecZstd;
  HelloResponse rd;
  ASSERT_TRUE(DecodeHelloResponse(EncodeHelloResponse(r), &rd).ok());
  EXPECT_EQ(rd.codecs, kCodecZstd);
}

TEST(WireFormat, EncodedPayloadLengthsAreChecked) {
  GetBlockHead h;
  h.present = true;
  h.info.key = {1, 2};
  h.info.payload_bytes = 1000;
  uint8_t buf[kGetBlockHeadBytes];
  GetBlockHead d;
  for (uint8_t e : {uint8_t{1}, uint8_t{2}}) {
    h.info.encoding = e;
    EncodeGetBlockHead(h, buf);
    ASSERT_TRUE(DecodeGetBlockHead(buf, kGetBlockHeadBytes + 400, &d).ok());
    EXPECT_EQ(d.info.encoding, e);
    EXPECT_EQ(d.wire_bytes, 400u);
    // An encoded block must be shorter than the block, and not empty.
    EXPECT_FALSE(DecodeGetBlockHead(buf, kGetBlockHeadBytes + 1000, &d).ok());
    EXPECT_FALSE(DecodeGetBlockHead(buf, kGetBlockHeadBytes, &d).ok());
  }
  h.info.encoding = 3;  // unknown
  EncodeGetBlockHead(h, buf);
  EXPECT_FALSE(DecodeGetBlockHead(buf, kGetBlockHeadBytes + 400, &d).ok());
  h.info.encoding = 0;
  EncodeGetBlockHead(h, buf);
  EXPECT_FALSE(DecodeGetBlockHead(buf, kGetBlockHeadBytes + 400, &d).ok());
  ASSERT_TRUE(DecodeGetBlockHead(buf, kGetBlockHeadBytes + 1000, &d).ok());

  BlockInfo info = h.info;
  info.encoding = static_cast<uint8_t>(Encoding::kZstd);
  auto put = EncodePutHead("ns", info);
  put.resize(put.size() + 300, 9);
  PutRequest p;
  ASSERT_TRUE(DecodePut(put, Limits{}, &p).ok());
  EXPECT_EQ(p.payload.size(), 300u);
  EXPECT_EQ(p.info.encoding, static_cast<uint8_t>(Encoding::kZstd));
  put.resize(put.size() + 700, 9);  // as long as the block: it should have gone raw
  EXPECT_FALSE(DecodePut(put, Limits{}, &p).ok());

  // A lookup entry describes a stored block: never an encoding.
  LookupEntry e;
  e.present = true;
  e.info = info;
  std::vector<LookupEntry> out;
  EXPECT_FALSE(DecodeLookupResponse(EncodeLookupResponse({&e, 1}), Limits{}, &out).ok());
}

TEST(WireAuth, MacDependsOnSecretRoleAndBothNonces) {
  std::array<uint8_t, kNonceBytes> a{}, b{};
  ASSERT_TRUE(RandomNonce(&a).ok());
  ASSERT_TRUE(RandomNonce(&b).ok());
  EXPECT_NE(a, b);
  const auto m = AuthMac("secret", AuthRole::kClient, a, b);
  EXPECT_TRUE(MacEqual(m, AuthMac("secret", AuthRole::kClient, a, b)));
  EXPECT_FALSE(MacEqual(m, AuthMac("secreT", AuthRole::kClient, a, b)));
  EXPECT_FALSE(MacEqual(m, AuthMac("secret", AuthRole::kServer, a, b)));
  EXPECT_FALSE(MacEqual(m, AuthMac("secret", AuthRole::kClient, b, a)));
}

TEST(WireAuth, FrameTagsDependOnKeyDirectionSequenceHeaderAndBody) {
  std::array<uint8_t, kNonceBytes> a{}, b{};
  a.fill(1);
  b.fill(2);
  const SessionKeys k = DeriveSessionKeys("secret", a, b);
  EXPECT_NE(k.client_to_server, k.server_to_client);
  EXPECT_NE(k.client_to_server, DeriveSessionKeys("secret", b, a).client_to_server);
  EXPECT_NE(k.client_to_server, DeriveSessionKeys("secreT", a, b).client_to_server);
  std::vector<uint8_t> frame;
  AppendFrame({static_cast<uint8_t>(Op::kLookup), 0, kFlagEnd, 7, 0}, std::vector<uint8_t>(40, 9),
              &frame);
  FrameMac send(k.client_to_server), recv(k.client_to_server), other(k.server_to_client);
  EXPECT_FALSE(FrameMac().active());
  const auto t0 = send.Tag(frame);
  EXPECT_EQ(send.seq(), 1u);
  EXPECT_NE(t0, other.Tag(frame));  // the other direction's key
  const auto t1 = send.Tag(frame);  // the same frame again: the next sequence number
  EXPECT_NE(t0, t1);
  // The receiver accepts them in order only, and the body in pieces as well as whole.
  recv.Begin(frame.data());
  recv.Update(std::span(frame).subspan(kHeaderBytes, 10));
  recv.Update(std::span(frame).subspan(kHeaderBytes + 10));
  EXPECT_TRUE(recv.Verify(t0.data()));
  EXPECT_FALSE(FrameMac(k.client_to_server).Tag(frame) == t1);
  FrameMac r2(k.client_to_server);
  frame.back() ^= 1;  // body
  EXPECT_NE(r2.Tag(frame), t0);
  frame.back() ^= 1;
  frame[8] ^= 1;  // request id in the header
  FrameMac r3(k.client_to_server);
  EXPECT_NE(r3.Tag(frame), t0);
}

// The tag is standard AES-256-GMAC (GCM, the frame as additional data, no plaintext) with
// iv = 0u32 | seq u64 little-endian. Expected bytes from Python's cryptography package:
//   AESGCM(bytes(range(32))).encrypt(bytes(4) + (5).to_bytes(8, "little"), b"", header + body)
// so a peer in another language can interoperate, and a change of the construction fails here.
TEST(WireAuth, FrameTagIsAes256GmacOfHeaderAndBodyWithTheSequenceAsIv) {
  FrameKey key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i);
  uint8_t header[kHeaderBytes];
  for (size_t i = 0; i < kHeaderBytes; ++i) header[i] = static_cast<uint8_t>(100 + i);
  std::vector<uint8_t> body(1000);
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<uint8_t>(i * 7);
  FrameMac mac(key);
  for (int i = 0; i < 5; ++i) {  // frames 0..4: the next one is seq 5
    mac.Begin(header);
    mac.Finish();
  }
  mac.Begin(header);
  mac.Update(std::span(body).first(333));  // in pieces that straddle 16-byte blocks
  mac.Update(std::span(body).subspan(333));
  const std::array<uint8_t, kTagBytes> want = {0xfe, 0x09, 0x1a, 0x85, 0x9d, 0xad, 0x12, 0xb5,
                                               0xec, 0xc7, 0x4f, 0x31, 0xe9, 0xbc, 0x72, 0xf8};
  EXPECT_EQ(mac.Finish(), want);
}

TEST(NamespaceEncoding, DecodeInvertsEncodeAndRejectsOthers) {
  NamespaceDesc d;
  d.model = "llama@3";
  d.kv_dtype = "bf16";
  d.tenant_salt = "tenant-7";
  d.adapter = "lora-x";
  d.layers = 32;
  d.kv_heads = 8;
  d.head_dim = 128;
  d.block_tokens = 16;
  d.tp_rank = 1;
  const std::string enc = EncodeNamespace(d);
  auto back = DecodeNamespace(enc);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(EncodeNamespace(*back), enc);
  EXPECT_EQ(back->tenant_salt, "tenant-7");
  EXPECT_FALSE(DecodeNamespace(enc + "x").ok());
  EXPECT_FALSE(DecodeNamespace(enc.substr(0, enc.size() - 1)).ok());
  EXPECT_FALSE(DecodeNamespace("kvtier-ns-v2" + enc.substr(12)).ok());
  std::string swapped = enc;
  swapped[12] = 2;  // first tag altered
  EXPECT_FALSE(DecodeNamespace(swapped).ok());
}

}  // namespace
}  // namespace kvt::wire

namespace kvt {
namespace {

TEST(RemoteOptions, RemoteWriteIsWriteThroughOrOff) {
  Options o;
  EXPECT_EQ(o.remote_write, "write_through");
  EXPECT_TRUE(o.Set("remote_write", "off").ok());
  EXPECT_EQ(o.remote_write, "off");
  Status s = o.Set("remote_write", "write_back");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("remote_write"), std::string::npos);
  EXPECT_EQ(o.remote_write, "off");  // unchanged by the bad value
  bool listed = false;
  for (auto n : Options::Names()) listed = listed || n == "remote_write";
  EXPECT_TRUE(listed);
}

}  // namespace
}  // namespace kvt
