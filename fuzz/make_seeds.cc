// Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/): well-formed sessions,
// frames, server answers, records, index values, options and trace lines, so that the fuzzers
// start from deep inside each format. Run once; the output is committed.
// Usage: fuzz_make_seeds FUZZ_DIR
#include <cstdio>
#include <fstream>
#include <string>

#include "base/hash.h"
#include "io/wire_auth.h"
#include "io/wire_format.h"
#include "src/block_key.h"
#include "tiers/nvme/codec.h"
#include "tiers/nvme/nvme_index.h"
#include "tiers/nvme/segment_format.h"
#include "tiers/remote/wire_codec.h"
#include "kernels/kv_sample.h"

using namespace kvt;
using namespace kvt::wire;

namespace {

std::vector<uint8_t> F(Op op, uint64_t id, const std::vector<uint8_t>& body, uint8_t resp = 0,
                       uint8_t status = 0) {
  std::vector<uint8_t> out;
  AppendFrame({static_cast<uint8_t>(static_cast<uint8_t>(op) | resp), status, kFlagEnd, id, 0}, body,
              &out);
  return out;
}

void Write(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()),
                                              static_cast<std::streamsize>(bytes.size()));
}

// An fp16 geometry whose namespace allows fp8 on the wire: the seeds' encoded payloads must be
// in the geometry the fuzzer that reads them decodes with.
Geometry LossyGeometry(uint32_t layers, uint32_t kv_heads, uint32_t head_dim, uint32_t tokens) {
  Geometry g;
  g.layers = layers;
  g.kv_heads = kv_heads;
  g.head_dim = head_dim;
  g.block_tokens = tokens;
  g.lossy_ok = true;
  return g;
}

std::vector<uint8_t> Cat(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string dir = argv[1];
  NamespaceDesc d;
  d.model = "fuzz@1";
  d.kv_dtype = "fp16";
  d.layers = 1;
  d.kv_heads = 1;
  d.head_dim = 64;
  d.block_tokens = 16;  // 4 KiB blocks
  const std::string ns = EncodeNamespace(d);
  std::vector<uint8_t> payload(4096);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 7);
  const std::vector<Hash128> keys = {{1, 2}, {3, 4}, {5, 6}};
  std::vector<std::vector<uint8_t>> puts;
  for (size_t i = 0; i < keys.size(); ++i) {
    BlockInfo info{keys[i], i ? keys[i - 1] : Hash128{}, {9, 9}, Checksum64(payload.data(), 4096),
                   4096, i == 1};
    auto body = EncodePutHead(ns, info);
    body.insert(body.end(), payload.begin(), payload.end());
    puts.push_back(F(Op::kPut, 10 + i, body));
  }
  HelloRequest hello;
  hello.client_nonce.fill(0x17);
  std::array<uint8_t, kNonceBytes> server_nonce;
  server_nonce.fill(0x42);  // the fuzzer's fixed server nonce
  AuthMessage auth;
  auth.mac = AuthMac("fuzz-secret", AuthRole::kClient, server_nonce, hello.client_nonce);
  const auto h = F(Op::kHello, 1, EncodeHello(hello));
  const auto a = F(Op::kAuth, 2, EncodeAuth(auth));
  const auto lookup = F(Op::kLookup, 20, EncodeKeysRequest(ns, keys));
  const auto get = F(Op::kGet, 21, EncodeKeysRequest(ns, keys));
  const auto drop = F(Op::kDropNamespace, 22, EncodeNamespaceRequest(ns));
  const auto stats = F(Op::kStats, 23, {});

  // Session seeds: byte 0 = mode (bit 0: authentication on; higher bits: read chunking).
  const std::string s = dir + "/corpus/server_session/";
  auto session = [&](const char* name, uint8_t mode, std::vector<uint8_t> stream) {
    stream.insert(stream.begin(), mode);
    Write(s + name, stream);
  };
  session("plain_put_lookup_get", 0, Cat({h, puts[0], puts[1], puts[2], lookup, get}));
  session("auth_put_get_stats", 1, Cat({h, a, puts[0], get, stats}));
  session("auth_wrong_order", 1, Cat({h, lookup}));
  session("drop_then_get", 0x10, Cat({h, puts[0], drop, get}));
  session("byte_by_byte", 0x00 | (0 << 1), Cat({h, puts[1], get}));
  session("stats_only", 0x22, Cat({h, stats, stats}));
  {
    // A hello offering zstd, zstd-encoded puts of KV-like blocks, and a get the node encodes.
    HelloRequest offer = hello;
    offer.codecs = kCodecZstd;
    Geometry g = *ValidateNamespace(d);
    WireCodecCounters c;
    std::vector<uint8_t> stream = F(Op::kHello, 1, EncodeHello(offer));
    for (size_t i = 0; i < keys.size(); ++i) {
      const auto kv = KvLikeBytes(i, g.BlockBytes());
      std::vector<uint8_t> wire;
      uint64_t sum = Checksum64(kv.data(), kv.size());
      const Encoding e = EncodePayload(Encoding::kZstd, g, kv.data(), kv.size(), &wire, &sum, &c);
      if (e == Encoding::kRaw) wire = kv;
      BlockInfo info{keys[i], i ? keys[i - 1] : Hash128{}, {9, 9}, sum,
                     static_cast<uint32_t>(kv.size()), false, static_cast<uint8_t>(e)};
      auto body = EncodePutHead(ns, info);
      body.insert(body.end(), wire.begin(), wire.end());
      stream = Cat({stream, F(Op::kPut, 30 + i, body)});
    }
    session("compressed_put_get", 0, Cat({stream, get}));
  }

  // Decoder seeds: single frames and runs of them, requests and responses.
  const std::string f = dir + "/corpus/frame_decoder/";
  HelloResponse hr;
  hr.server_nonce = server_nonce;
  hr.auth_required = true;
  hr.max_body = Limits{}.max_body;
  hr.max_keys = 64;
  std::vector<LookupEntry> entries = {{true, {keys[0], {}, {}, 7, 4096, false}}, {false, {}}};
  uint8_t head[kGetBlockHeadBytes];
  EncodeGetBlockHead({0, true, {keys[0], {}, {}, Checksum64(payload.data(), 4096), 4096, false}},
                     head);
  std::vector<uint8_t> get_body(head, head + sizeof head);
  get_body.insert(get_body.end(), payload.begin(), payload.end());
  Write(f + "requests", Cat({h, a, puts[0], lookup, get, drop, stats}));
  Write(f + "hello_response", F(Op::kHello, 1, EncodeHelloResponse(hr), kResponseBit));
  Write(f + "lookup_response", F(Op::kLookup, 20, EncodeLookupResponse(entries), kResponseBit));
  Write(f + "get_response", F(Op::kGet, 21, get_body, kResponseBit));
  {
    // Encoded payloads for the wire codec, in the geometry frame_decoder_fuzzer decodes them
    // with (2 layers, 2 heads of 64, 4 tokens of fp16: 4 KiB blocks; an even key allows fp8).
    const Geometry g = LossyGeometry(2, 2, 64, 4);
    const auto kv = KvLikeBytes(5, g.BlockBytes());
    WireCodecCounters c;
    for (Encoding e : {Encoding::kZstd, Encoding::kFp8}) {
      std::vector<uint8_t> wire;
      uint64_t sum = Checksum64(kv.data(), kv.size());
      if (EncodePayload(e, g, kv.data(), kv.size(), &wire, &sum, &c) != e) std::abort();
      BlockInfo info{{2, 2}, {}, {}, sum, static_cast<uint32_t>(kv.size()), false,
                     static_cast<uint8_t>(e)};
      uint8_t eh[kGetBlockHeadBytes];
      EncodeGetBlockHead({0, true, info}, eh);
      std::vector<uint8_t> body(eh, eh + sizeof eh);
      body.insert(body.end(), wire.begin(), wire.end());
      auto put = EncodePutHead(ns, info);
      put.insert(put.end(), wire.begin(), wire.end());
      const std::string name = EncodingName(static_cast<uint8_t>(e));
      Write(f + "get_response_" + name, F(Op::kGet, 21, body, kResponseBit));
      Write(f + "put_" + name, F(Op::kPut, 10, put));
    }
    HelloRequest offer = hello;
    offer.codecs = kCodecZstd | kCodecFp8;
    HelloResponse accept = hr;
    accept.codecs = kCodecZstd;
    Write(f + "hello_codecs", Cat({F(Op::kHello, 1, EncodeHello(offer)),
                                   F(Op::kHello, 1, EncodeHelloResponse(accept), kResponseBit)}));
  }
  Write(f + "error_response",
        F(Op::kPut, 10, {'n', 'o', 'p', 'e'}, kResponseBit, static_cast<uint8_t>(Code::kBusy)));

  // Hostile-server seeds for the remote client: byte 0 = flags, then what the server sends on
  // each connection (split at "#SPLIT#"); the client's request ids count from 1 (hello).
  const std::string rc = dir + "/corpus/remote_client/";
  auto frame = [](Op op, uint64_t id, const std::vector<uint8_t>& body, uint8_t flags = kFlagEnd,
                  uint8_t status = 0) {
    std::vector<uint8_t> out;
    AppendFrame({static_cast<uint8_t>(static_cast<uint8_t>(op) | kResponseBit), status, flags, id,
                 0},
                body, &out);
    return out;
  };
  auto str = [](const std::string& t) { return std::vector<uint8_t>(t.begin(), t.end()); };
  HelloResponse open_hr;
  open_hr.server_nonce = server_nonce;
  open_hr.auth_required = false;
  open_hr.max_body = Limits{}.max_body;
  open_hr.max_keys = 64;
  const auto hello_ok = frame(Op::kHello, 1, EncodeHelloResponse(open_hr));
  std::vector<LookupEntry> three = {{true, {keys[0], {}, {}, 7, 4096, false}}, {false, {}},
                                    {true, {keys[2], {}, {}, 9, 4096, true}}};
  std::vector<uint8_t> absent_body(kGetBlockHeadBytes);
  EncodeGetBlockHead({1, false, {}}, absent_body.data());
  const auto get_frames = Cat({frame(Op::kGet, 3, get_body, 0), frame(Op::kGet, 3, absent_body)});
  auto remote = [&](const char* name, uint8_t flags, std::vector<uint8_t> stream) {
    stream.insert(stream.begin(), flags);
    Write(rc + name, stream);
  };
  remote("every_call", 0,
         Cat({hello_ok, frame(Op::kLookup, 2, EncodeLookupResponse(three)), get_frames,
              frame(Op::kPut, 4, {}), frame(Op::kDropNamespace, 5, {}),
              frame(Op::kStats, 6, str("kvtier_store_puts 1\n"))}));
  remote("errors", 0,
         Cat({hello_ok, frame(Op::kLookup, 2, str("busy"), kFlagEnd,
                              static_cast<uint8_t>(Code::kBusy)),
              frame(Op::kGet, 3, str("no"), kFlagEnd, static_cast<uint8_t>(Code::kNotFound)),
              frame(Op::kPut, 4, str("full"), kFlagEnd, static_cast<uint8_t>(Code::kNoSpace))}));
  const std::string split = "#SPLIT#";
  std::vector<uint8_t> reconnect = Cat({hello_ok, frame(Op::kLookup, 9, {})});
  reconnect.insert(reconnect.end(), split.begin(), split.end());
  const auto again = Cat({hello_ok, frame(Op::kGet, 2, get_body)});
  reconnect.insert(reconnect.end(), again.begin(), again.end());
  remote("wrong_id_then_reconnect", 0, reconnect);
  remote("auth_required", 1, Cat({frame(Op::kHello, 1, EncodeHelloResponse(hr)),
                                   frame(Op::kAuth, 2, EncodeAuth(auth))}));
  {
    // Flags bit 1: the client offers zstd and fp8 for the fuzzer's 128-byte lossy namespace
    // (1 layer, 1 head of 8, 4 tokens of fp16); the server accepts both and sends one block of
    // each encoding.
    const Geometry g = LossyGeometry(1, 1, 8, 4);
    const auto kv = KvLikeBytes(8, g.BlockBytes());
    WireCodecCounters c;
    HelloResponse both = open_hr;
    both.codecs = kCodecZstd | kCodecFp8;
    std::vector<uint8_t> frames = frame(Op::kHello, 1, EncodeHelloResponse(both));
    frames = Cat({frames, frame(Op::kLookup, 2, EncodeLookupResponse(three))});
    uint32_t index = 0;
    for (Encoding e : {Encoding::kZstd, Encoding::kFp8}) {
      std::vector<uint8_t> wire;
      uint64_t sum = Checksum64(kv.data(), kv.size());
      const Encoding used = EncodePayload(e, g, kv.data(), kv.size(), &wire, &sum, &c);
      if (used == Encoding::kRaw) wire = kv;
      BlockInfo info{keys[index], {}, {}, sum, static_cast<uint32_t>(kv.size()), false,
                     static_cast<uint8_t>(used)};
      std::vector<uint8_t> body(kGetBlockHeadBytes);
      EncodeGetBlockHead({index, true, info}, body.data());
      body.insert(body.end(), wire.begin(), wire.end());
      frames = Cat({frames, frame(Op::kGet, 3, body, index == 1 ? kFlagEnd : 0)});
      ++index;
    }
    remote("compressed_get", 2, Cat({frames, frame(Op::kPut, 4, {}), frame(Op::kDropNamespace, 5, {})}));
  }
  HelloResponse tiny = open_hr;
  tiny.max_keys = 1;
  tiny.max_body = 100;
  remote("tiny_limits", 0, Cat({frame(Op::kHello, 1, EncodeHelloResponse(tiny)),
                                frame(Op::kLookup, 2, EncodeLookupResponse({three.data(), 1}))}));

  // Segment records: byte 0 = flags (bit 0 reseal, bit 1 segment header), 4 KiB header, payload.
  const std::string sr = dir + "/corpus/segment_record/";
  auto record = [&](const char* name, uint8_t flags, Codec codec) {
    std::vector<uint8_t> stored = payload;
    if (codec == Codec::kZstd) {
      stored.resize(ZstdBound(payload.size()));
      auto n = ZstdShuffleCompress(payload.data(), payload.size(), stored.data(), stored.size(), 1);
      if (!n.ok()) std::abort();
      stored.resize(*n);
    }
    RecordHeader rh;
    rh.codec = static_cast<uint8_t>(codec);
    rh.flags = kRecordHasTokens;
    rh.generation = 3;
    rh.ns = 77;
    rh.key = keys[0];
    rh.payload_bytes = static_cast<uint32_t>(payload.size());
    rh.stored_bytes = static_cast<uint32_t>(stored.size());
    rh.payload_checksum = Checksum64(payload.data(), payload.size());
    rh.stored_checksum = Checksum64(stored.data(), stored.size());
    std::vector<uint8_t> out(1 + kRecordHeaderBytes);
    out[0] = flags;
    EncodeRecordHeader(rh, out.data() + 1);
    out.insert(out.end(), stored.begin(), stored.end());
    Write(sr + name, out);
  };
  record("raw", 0, Codec::kNone);
  record("zstd", 0, Codec::kZstd);
  record("zstd_resealed", 1, Codec::kZstd);
  {
    SegmentHeader sh;
    sh.segment_id = 5;
    sh.generation = 9;
    sh.segment_bytes = 1 << 20;
    std::vector<uint8_t> out(1 + kSegmentHeaderBytes);
    out[0] = 2;
    EncodeSegmentHeader(sh, out.data() + 1);
    Write(sr + "segment_header", out);
  }

  // Index values: byte 0 = key length (24), the key, then the value.
  const std::string iv = dir + "/corpus/index_value/";
  NvmeLocation loc;
  loc.segment = 3;
  loc.generation = 12;
  loc.offset = 8192;
  loc.stored_bytes = 3000;
  loc.payload_bytes = 4096;
  loc.checksum = 0x1234;
  loc.codec = Codec::kZstd;
  loc.has_tokens = true;
  loc.parent = keys[1];
  for (const auto& [name, l] : {std::pair<const char*, NvmeLocation>{"zstd", loc},
                                {"raw", NvmeLocation{}}}) {
    const std::string k = EncodeIndexKey(77, keys[0]);
    std::string v = std::string(1, static_cast<char>(k.size())) + k + EncodeLocation(l);
    Write(iv + name, std::vector<uint8_t>(v.begin(), v.end()));
  }

  // Options: byte 0 bit 0 = a config file; else NAME '\0' VALUE.
  const std::string op = dir + "/corpus/options/";
  auto text = [](const std::string& path, const std::string& t) {
    std::ofstream(path, std::ios::binary) << t;
  };
  text(op + "config", std::string(1, '\1') +
                          "# a store\ndir = /tmp/x\nhost_bytes = 1.5GiB\nhost_policy = s3fifo\n"
                          "nvme_bytes = 64GB\nnvme_codec = zstd\nnvme_admission = budget:1GiB+"
                          "seen_twice\nremote = a:1,[::1]:7420\nhash_secret = 00ff\n");
  text(op + "set_size", std::string("\0host_bytes\0", 12) + "64.5MiB");
  text(op + "set_remote", std::string("\0remote\0", 8) + "host:7420,10.0.0.2:7421");
  text(op + "set_admission", std::string("\0nvme_admission\0", 16) + "budget:512MiB+seen_twice");

  // Trace lines: byte 0 = flags (bit 0 skip bad lines; bits 2-7: 9 = 512-token blocks), jsonl.
  const std::string tr = dir + "/corpus/trace/";
  const std::string lines =
      "{\"timestamp\": 0, \"input_length\": 1024, \"output_length\": 5, \"hash_ids\": [1, 2]}\n"
      "{\"timestamp\": 7, \"input_length\": 600, \"output_length\": 1, \"hash_ids\": [1, 3]}\n"
      "\n{\"timestamp\": 3, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [9]}\r\n";
  text(tr + "mooncake", std::string(1, static_cast<char>(9 << 2)) + lines);
  text(tr + "skip_bad", std::string(1, static_cast<char>(1 | (9 << 2))) + lines +
                            "\xff\n{\"timestamp\": -1}\n");
  std::printf("seeds written under %s/corpus\n", dir.c_str());
  return 0;
}
