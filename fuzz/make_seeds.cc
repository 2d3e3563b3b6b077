// Writes the seed corpora of the two fuzz targets (fuzz/corpus/<target>/): well-formed sessions
// and frames, so that the fuzzers start from deep inside the protocol. Run once; the output is
// committed. Usage: fuzz_make_seeds FUZZ_DIR
#include <cstdio>
#include <fstream>
#include <string>

#include "base/hash.h"
#include "io/wire_auth.h"
#include "io/wire_format.h"
#include "src/block_key.h"

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
  Write(f + "error_response",
        F(Op::kPut, 10, {'n', 'o', 'p', 'e'}, kResponseBit, static_cast<uint8_t>(Code::kBusy)));
  std::printf("seeds written under %s/corpus\n", dir.c_str());
  return 0;
}
