// On-wire compression of block payloads (remote_compression, kvtierd --compression): byte-exact
// zstd round trips through a real kvtierd node, plain transfers when either side does not offer
// or accept a codec (including a node from before compression), fp8 only for namespaces that
// allow lossy blocks and reported as such, and damaged or crafted encoded payloads that must be
// misses, never bytes.
#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "kernels/kv_sample.h"
#include "kernels/quant_math.h"
#include "remote_test_util.h"
#include "tamper_proxy.h"
#include "tests/core/test_util.h"
#include "tiers/nvme/codec.h"
#include "tiers/remote/remote_tier.h"

namespace kvt {
namespace {

using testing::Node;
using testing::StoreOptions;

constexpr size_t kBlocks = 6;

NamespaceDesc LossyNamespace() {
  NamespaceDesc d = testing::SmallNamespace();
  d.flags = kNsLossyOk;
  return d;
}

ServerOptions Accepting(const char* compression) {
  ServerOptions so;
  so.codecs = *ParseWireCompression(compression);
  return so;
}

Options ClientOptions(const std::string& dir, const std::string& endpoint,
                      const char* compression, bool write_through = true) {
  Options o = StoreOptions(dir, endpoint);
  EXPECT_TRUE(o.Set("remote_compression", compression).ok());
  if (!write_through) {
    EXPECT_TRUE(o.Set("remote_write", "off").ok());
  }
  return o;
}

// kBlocks KV-like blocks (normal values as fp16) of a chain put through `s`.
struct Prompt {
  std::vector<int32_t> toks;
  std::vector<Hash128> keys;
  std::vector<std::vector<uint8_t>> data;
};

Prompt PutKvLike(Store* s, uint64_t ns, int32_t base) {
  Prompt p;
  for (size_t i = 0; i < kBlocks * 16; ++i) p.toks.push_back(base + static_cast<int32_t>(i));
  EXPECT_TRUE(s->HashTokens(ns, p.toks, &p.keys).ok());
  const size_t bytes = (*s->Namespace(ns))->block_bytes;
  for (size_t i = 0; i < p.keys.size(); ++i) {
    p.data.push_back(KvLikeBytes(p.keys[i].lo, bytes));
    Status st = s->Put(ns, p.keys[i], i == 0 ? Hash128{} : p.keys[i - 1], &p.toks[i * 16],
                       p.data[i].data(), bytes);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  return p;
}

nlohmann::json Remote(Store* s) { return nlohmann::json::parse(s->StatsJson())["tiers"]["remote"]; }
uint64_t Codec(Store* s, const char* name) { return Remote(s)["codec"][name].get<uint64_t>(); }

TEST(RemoteCompression, OptionIsValidatedAndOffByDefault) {
  Options o;
  EXPECT_EQ(o.remote_compression, "none");
  Status s = o.Set("remote_compression", "lz4");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("remote_compression"), std::string::npos) << s.ToString();
  EXPECT_TRUE(o.Set("remote_compression", "fp8").ok());
  // The lossy flag is for 16-bit float namespaces only.
  NamespaceDesc d = LossyNamespace();
  d.kv_dtype = "int8";
  EXPECT_EQ(ValidateNamespace(d).status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(ValidateNamespace(LossyNamespace()).ok());
}

TEST(RemoteCompression, ZstdRoundTripThroughANodeIsByteExact) {
  Node node(Accepting("zstd"));
  testing::TestDir a_dir, b_dir;
  auto a = testing::MustOpen(ClientOptions(a_dir.path(), node.endpoint(), "zstd"));
  auto b = testing::MustOpen(ClientOptions(b_dir.path(), node.endpoint(), "zstd", false));
  ASSERT_TRUE(a && b);
  const uint64_t ns_a = *a->OpenNamespace(testing::SmallNamespace());
  const Prompt p = PutKvLike(a.get(), ns_a, 7);
  // The puts went compressed, and the node decoded every one.
  EXPECT_EQ(Codec(a.get(), "encoded_zstd"), kBlocks);
  EXPECT_LT(Codec(a.get(), "encode_bytes_out"), Codec(a.get(), "encode_bytes_in"));
  const SessionCounters& sc = node.server->session_counters();
  EXPECT_EQ(sc.codec.decoded_zstd.load(), kBlocks);

  const uint64_t ns_b = *b->OpenNamespace(testing::SmallNamespace());
  for (size_t i = 0; i < kBlocks; ++i) {
    std::vector<uint8_t> got(p.data[i].size(), 0);
    ASSERT_TRUE(b->Get(ns_b, p.keys[i], got.data(), got.size()).ok());
    EXPECT_EQ(got, p.data[i]) << "block " << i;
  }
  EXPECT_EQ(sc.codec.encoded_zstd.load(), kBlocks);
  EXPECT_EQ(Codec(b.get(), "decoded_zstd"), kBlocks);
  EXPECT_EQ(Codec(b.get(), "lossy_blocks"), 0u);
  EXPECT_EQ(Codec(b.get(), "decode_failures"), 0u);
  EXPECT_LT(Codec(b.get(), "decode_bytes_in"), Codec(b.get(), "decode_bytes_out"));
  EXPECT_GE(Remote(b.get())["compressed_connections"].get<uint64_t>(), 1u);
  EXPECT_EQ(Remote(b.get())["compression"].get<std::string>(), "zstd");
}

TEST(RemoteCompression, PlainWhenEitherSideDoesNotOffer) {
  for (const auto& [server, client] : {std::pair{"none", "zstd"}, std::pair{"zstd", "none"}}) {
    SCOPED_TRACE(std::string("node ") + server + ", client " + client);
    Node node(Accepting(server));
    testing::TestDir a_dir, b_dir;
    auto a = testing::MustOpen(ClientOptions(a_dir.path(), node.endpoint(), client));
    auto b = testing::MustOpen(ClientOptions(b_dir.path(), node.endpoint(), client, false));
    ASSERT_TRUE(a && b);
    const Prompt p = PutKvLike(a.get(), *a->OpenNamespace(testing::SmallNamespace()), 3);
    const uint64_t ns_b = *b->OpenNamespace(testing::SmallNamespace());
    for (size_t i = 0; i < kBlocks; ++i) {
      std::vector<uint8_t> got(p.data[i].size(), 0);
      ASSERT_TRUE(b->Get(ns_b, p.keys[i], got.data(), got.size()).ok());
      EXPECT_EQ(got, p.data[i]);
    }
    const SessionCounters& sc = node.server->session_counters();
    EXPECT_EQ(sc.compressed_connections.load(), 0u);
    EXPECT_EQ(sc.codec.encoded_zstd.load() + sc.codec.decoded_zstd.load(), 0u);
    EXPECT_EQ(Remote(b.get())["compressed_connections"].get<uint64_t>(), 0u);
    EXPECT_EQ(Codec(b.get(), "decoded_zstd") + Codec(a.get(), "encoded_zstd"), 0u);
  }
}

// A node from before compression: it refuses a 36-byte hello as it always did (error, close).
void OldNode(int fd, std::atomic<int>* refused) {
  for (;;) {
    wire::FrameHeader h;
    std::vector<uint8_t> body;
    if (!testing::ReadFrame(fd, &h, &body)) return;
    const uint8_t resp = static_cast<uint8_t>(wire::Op::kHello) | wire::kResponseBit;
    std::vector<uint8_t> f;
    if (h.opcode == static_cast<uint8_t>(wire::Op::kHello) && body.size() != wire::kNonceBytes) {
      ++*refused;
      const std::string msg = "wire: hello body is not 32";
      wire::AppendFrame({resp, static_cast<uint8_t>(Code::kInvalidArgument), wire::kFlagEnd,
                         h.request_id, 0},
                        {reinterpret_cast<const uint8_t*>(msg.data()), msg.size()}, &f);
      testing::WriteAll(fd, f.data(), f.size());
      return;
    }
    wire::HelloResponse hr;
    hr.max_body = wire::Limits{}.max_body;
    hr.max_keys = 16;
    wire::AppendFrame({resp, 0, wire::kFlagEnd, h.request_id, 0}, wire::EncodeHelloResponse(hr), &f);
    testing::WriteAll(fd, f.data(), f.size());
  }
}

TEST(RemoteCompression, OldNodeRefusingTheLongerHelloGetsAPlainConnection) {
  std::atomic<int> refused{0};
  testing::FakeServer old([&](int fd) { OldNode(fd, &refused); });
  auto c = RemoteConn::Connect(old.endpoint(), "", RemoteTimeouts{}, "", {}, 0, wire::kCodecZstd);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(refused.load(), 1);
  EXPECT_TRUE((*c)->fallback());
  EXPECT_EQ((*c)->codecs(), 0u);
}

// The fp8 error bound of one value (kernels/quant_math.h) plus fp16's own rounding of the result.
double Fp8Bound(double x, double scale) {
  const double back = std::abs(x) * (1 + 1.0 / 16);
  return QuantErrorBound(DType::kFp8E4M3, static_cast<float>(std::abs(x)), static_cast<float>(scale)) +
         back * std::ldexp(1.0, -11) + 1e-7;
}

// Every value of `got` within fp8's bound of `want` (scales per layer, K/V and head as the codec
// computes them); returns how many values differ at all.
size_t CheckWithinFp8Bound(const Geometry& g, const std::vector<uint8_t>& want,
                           const std::vector<uint8_t>& got) {
  const BlockLayout l = LayoutOf(g);
  size_t differ = 0;
  for (int32_t layer = 0; layer < l.layers; ++layer) {
    for (int32_t t = 0; t < l.tensors(); ++t) {
      for (int32_t h = 0; h < l.kv_heads; ++h) {
        double amax = 0;
        for (int32_t tok = 0; tok < l.block_tokens; ++tok) {
          for (int32_t d = 0; d < l.head_dim; ++d) {
            amax = std::max<double>(amax, std::abs(LoadAsF32(want.data(), l.offset(layer, t, tok, h) + d, g.dtype)));
          }
        }
        const double scale = amax / kFp8E4M3Max;
        for (int32_t tok = 0; tok < l.block_tokens; ++tok) {
          for (int32_t d = 0; d < l.head_dim; ++d) {
            const int64_t i = l.offset(layer, t, tok, h) + d;
            const double x = LoadAsF32(want.data(), i, g.dtype), y = LoadAsF32(got.data(), i, g.dtype);
            EXPECT_LE(std::abs(x - y), Fp8Bound(x, scale)) << "value " << i << ": " << x << " -> " << y;
            differ += x != y ? 1 : 0;
          }
        }
      }
    }
  }
  return differ;
}

TEST(RemoteCompression, Fp8OnlyForLossyNamespacesReportedLossyWithinItsBound) {
  Node node(Accepting("fp8"));
  testing::TestDir a_dir, b_dir, c_dir;
  // The writer sends exact blocks (no compression); the reader asks for fp8.
  auto a = testing::MustOpen(ClientOptions(a_dir.path(), node.endpoint(), "none"));
  auto b = testing::MustOpen(ClientOptions(b_dir.path(), node.endpoint(), "fp8", false));
  ASSERT_TRUE(a && b);
  const Prompt lossy = PutKvLike(a.get(), *a->OpenNamespace(LossyNamespace()), 11);
  const Prompt exact = PutKvLike(a.get(), *a->OpenNamespace(testing::SmallNamespace()), 11);
  const Geometry g = *ValidateNamespace(LossyNamespace());

  const uint64_t ns_lossy = *b->OpenNamespace(LossyNamespace());
  size_t differ = 0;
  for (size_t i = 0; i < kBlocks; ++i) {
    std::vector<uint8_t> got(lossy.data[i].size(), 0);
    ASSERT_TRUE(b->Get(ns_lossy, lossy.keys[i], got.data(), got.size()).ok());
    differ += CheckWithinFp8Bound(g, lossy.data[i], got);
  }
  EXPECT_GT(differ, 0u);  // really quantized: fp8 keeps 3 mantissa bits of fp16's 10
  EXPECT_EQ(Codec(b.get(), "decoded_fp8"), kBlocks);
  EXPECT_EQ(Codec(b.get(), "lossy_blocks"), kBlocks);
  EXPECT_EQ(node.server->session_counters().codec.encoded_fp8.load(), kBlocks);
  // Never passed off as the original: the reader keeps the checksum of what it decoded.
  BlockMeta m;
  ASSERT_TRUE(b->PeekLocal(ns_lossy, lossy.keys[0], &m));
  EXPECT_NE(m.checksum, Checksum64(lossy.data[0].data(), lossy.data[0].size()));

  // The same prompt in a namespace without the flag: zstd, byte-exact.
  const uint64_t ns_exact = *b->OpenNamespace(testing::SmallNamespace());
  for (size_t i = 0; i < kBlocks; ++i) {
    std::vector<uint8_t> got(exact.data[i].size(), 0);
    ASSERT_TRUE(b->Get(ns_exact, exact.keys[i], got.data(), got.size()).ok());
    EXPECT_EQ(got, exact.data[i]);
  }
  EXPECT_EQ(Codec(b.get(), "decoded_fp8"), kBlocks);
  EXPECT_EQ(Codec(b.get(), "decoded_zstd"), kBlocks);

  // An fp8 writer: the node keeps the blocks as decoded (lossy), and says so.
  auto c = testing::MustOpen(ClientOptions(c_dir.path(), node.endpoint(), "fp8"));
  ASSERT_TRUE(c);
  const Prompt put8 = PutKvLike(c.get(), *c->OpenNamespace(LossyNamespace()), 5000);
  EXPECT_EQ(Codec(c.get(), "encoded_fp8"), kBlocks);
  EXPECT_EQ(node.server->session_counters().codec.decoded_fp8.load(), kBlocks);
  const uint64_t ns_node = *node.store->OpenNamespace(LossyNamespace());
  std::vector<uint8_t> held(put8.data[0].size());
  ASSERT_TRUE(node.store->Get(ns_node, put8.keys[0], held.data(), held.size()).ok());
  EXPECT_GT(CheckWithinFp8Bound(g, put8.data[0], held), 0u);
}

// Flips a byte in the middle of every compressed GET payload (no authentication: no frame MAC
// to catch it, so the decoder and the checksum must).
TEST(RemoteCompression, DamagedCompressedPayloadIsAMissNeverBytes) {
  Node node(Accepting("zstd"));
  testing::TestDir a_dir, b_dir;
  auto a = testing::MustOpen(ClientOptions(a_dir.path(), node.endpoint(), "none"));
  ASSERT_TRUE(a);
  const Prompt p = PutKvLike(a.get(), *a->OpenNamespace(testing::SmallNamespace()), 21);
  std::atomic<int> damaged{0};
  testing::TamperProxy proxy(node.server->port(), false,
                             [&](size_t, testing::Dir dir, const testing::WireFrame& f) {
    testing::WireFrame g = f;
    const uint8_t get = static_cast<uint8_t>(wire::Op::kGet) | wire::kResponseBit;
    if (dir == testing::Dir::kToClient && f.h.opcode == get &&
        f.h.body_len > wire::kGetBlockHeadBytes) {
      uint8_t* head = g.bytes.data() + wire::kHeaderBytes;
      wire::GetBlockHead gh;
      EXPECT_TRUE(wire::DecodeGetBlockHead(head, f.h.body_len, &gh).ok());
      EXPECT_EQ(gh.info.encoding, static_cast<uint8_t>(wire::Encoding::kZstd));
      head[wire::kGetBlockHeadBytes + gh.wire_bytes / 2] ^= 0x5A;
      ++damaged;
    }
    return std::vector<testing::WireFrame>{g};
  });
  auto b = testing::MustOpen(ClientOptions(b_dir.path(), proxy.endpoint(), "zstd", false));
  ASSERT_TRUE(b);
  const uint64_t ns = *b->OpenNamespace(testing::SmallNamespace());
  for (size_t i = 0; i < kBlocks; ++i) {
    std::vector<uint8_t> dst(p.data[i].size(), 0x11);
    Status s = b->Get(ns, p.keys[i], dst.data(), dst.size());
    EXPECT_TRUE(s.IsNotFound()) << s.ToString();
    EXPECT_EQ(dst, std::vector<uint8_t>(p.data[i].size(), 0x11));
  }
  EXPECT_GE(damaged.load(), static_cast<int>(kBlocks));  // a retried batch is damaged again
  // Each damaged block failed to decode or failed its checksum after decoding.
  EXPECT_EQ(Codec(b.get(), "decode_failures") + Remote(b.get())["checksum_failures"].get<uint64_t>(),
            kBlocks);
  EXPECT_EQ(nlohmann::json::parse(b->StatsJson())["tiers"]["host"]["inserts"].get<uint64_t>(), 0u);
}

// A server that accepts zstd and answers a GET with `frame(head, payload)` of its own making.
struct CraftedNode {
  using Answer = std::function<void(const Hash128& key, wire::GetBlockHead* head,
                                    std::vector<uint8_t>* payload)>;
  explicit CraftedNode(Answer a)
      : answer(std::move(a)), server([this](int fd) { Serve(fd); }) {}
  void Serve(int fd) {
    wire::FrameHeader h;
    std::vector<uint8_t> body, f;
    if (!testing::ReadFrame(fd, &h, &body)) return;
    wire::HelloResponse hr;
    hr.codecs = wire::kCodecZstd;
    hr.max_body = wire::Limits{}.max_body;
    hr.max_keys = 16;
    wire::AppendFrame({static_cast<uint8_t>(wire::Op::kHello) | wire::kResponseBit, 0,
                       wire::kFlagEnd, h.request_id, 0},
                      wire::EncodeHelloResponse(hr), &f);
    testing::WriteAll(fd, f.data(), f.size());
    while (testing::ReadFrame(fd, &h, &body)) {
      wire::KeysRequest req;
      if (!wire::DecodeKeysRequest(body, wire::Limits{}, true, &req).ok()) return;
      wire::GetBlockHead head;
      std::vector<uint8_t> payload;
      answer(req.keys[0], &head, &payload);
      std::vector<uint8_t> out(wire::kGetBlockHeadBytes);
      wire::EncodeGetBlockHead(head, out.data());
      out.insert(out.end(), payload.begin(), payload.end());
      f.clear();
      wire::AppendFrame({static_cast<uint8_t>(wire::Op::kGet) | wire::kResponseBit, 0,
                         wire::kFlagEnd, h.request_id, 0},
                        out, &f);
      testing::WriteAll(fd, f.data(), f.size());
    }
  }
  Answer answer;
  testing::FakeServer server;
};

TEST(RemoteCompression, CraftedEncodedBlocksAreMissesAndCloseTheConnection) {
  const NamespaceDesc d = testing::SmallNamespace();
  const std::string enc = EncodeNamespace(d);
  const size_t bytes = ValidateNamespace(d)->BlockBytes();
  const std::vector<uint8_t> block = KvLikeBytes(9, bytes);
  struct Case {
    const char* what;
    std::function<void(wire::GetBlockHead*, std::vector<uint8_t>*)> craft;
  };
  const Case cases[] = {
      {"zstd that decodes to fewer bytes than the meta says",
       [&](wire::GetBlockHead* h, std::vector<uint8_t>* p) {
         p->resize(ZstdBound(bytes));
         p->resize(*ZstdShuffleCompress(block.data(), bytes - 64, p->data(), p->size(), 1));
       }},
      {"fp8 on a connection that negotiated zstd only",
       [&](wire::GetBlockHead* h, std::vector<uint8_t>* p) {
         h->info.encoding = static_cast<uint8_t>(wire::Encoding::kFp8);
         p->assign(bytes / 2 + 64, 1);
       }},
      {"zstd that is not zstd", [&](wire::GetBlockHead*, std::vector<uint8_t>* p) {
         p->assign(bytes / 3, 0x42);
       }},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.what);
    CraftedNode node([&](const Hash128& key, wire::GetBlockHead* h, std::vector<uint8_t>* p) {
      h->present = true;
      h->info.key = key;
      h->info.payload_bytes = static_cast<uint32_t>(bytes);
      h->info.checksum = Checksum64(block.data(), bytes);
      h->info.encoding = static_cast<uint8_t>(wire::Encoding::kZstd);
      k.craft(h, p);
    });
    RemoteOptions ro;
    ro.endpoints = {node.server.endpoint()};
    ro.codecs = wire::kCodecZstd;
    auto rt = std::move(RemoteTier::Create(ro)).value();
    const Hash128 key{1, 2};
    std::vector<uint8_t> dst(bytes, 0x11);
    bool good = false;
    Status s = rt->Get(enc, {&key, 1}, [&](size_t, RemotePayload* p) { good = p->Read(dst.data()).ok(); });
    EXPECT_FALSE(s.ok());
    EXPECT_FALSE(good);
    EXPECT_EQ(rt->counters().codec.decode_failures.load(), 1u);
    EXPECT_EQ(rt->counters().get_hits.load(), 0u);
    node.server.Stop();
  }
}

}  // namespace
}  // namespace kvt
