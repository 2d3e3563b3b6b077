// The kvtierd wire format: framing and the body of every operation, as pure functions over byte
// spans (no sockets, no allocation before a length is checked), so that the daemon, the remote
// tier and the fuzzers share one decoder. docs/PROTOCOL.md is the prose description; keep both in
// step.
//
// Every integer is little-endian. A frame is a 24-byte header followed by body_len body bytes:
//   magic u32 "KVTW" | version u8 | opcode u8 | status u8 | flags u8 | request_id u64 |
//   body_len u32 | reserved u32 (zero)
// A response carries the request's opcode with kResponseBit set and the request's id. Requests
// are pipelined: a client may send many before reading; the server answers in order.
//
// Thread safety: pure functions; Limits is a value.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/hash.h"
#include "base/status.h"

namespace kvt::wire {

constexpr uint32_t kMagic = 0x5754564Bu;  // bytes "KVTW"
constexpr uint8_t kVersion = 3;  // 2: frames after AUTH carry a MAC trailer; 3: it is AES-GMAC
constexpr size_t kHeaderBytes = 24;
constexpr size_t kNonceBytes = 32;
constexpr size_t kMacBytes = 32;  // HMAC-SHA256
// After an authenticated handshake every frame, both ways, is followed by this many bytes of
// AES-256-GMAC tag over its header and body (IV: the direction's frame number); not counted in
// body_len.
constexpr size_t kTagBytes = 16;
constexpr size_t kMaxCredentialId = 128;  // bytes of a credential id in AUTH
constexpr size_t kMetaBytes = 64;
constexpr size_t kLookupEntryBytes = 4 + kMetaBytes;  // present u8, 3 reserved, meta
constexpr size_t kGetBlockHeadBytes = 8 + kMetaBytes;  // index u32, present u8, 3 reserved, meta

enum class Op : uint8_t {
  kHello = 1,
  kAuth = 2,
  kLookup = 3,
  kGet = 4,
  kPut = 5,
  kDropNamespace = 6,
  kStats = 7,
};
constexpr uint8_t kResponseBit = 0x80;
// The response to a frame the server could not parse (bad header): status and message, then the
// server closes the connection.
constexpr uint8_t kProtocolError = 0xFF;
constexpr uint8_t kFlagEnd = 0x01;  // the last frame of a response (every non-streamed one)

const char* OpName(uint8_t opcode);  // "GET", "GET_RESPONSE", "UNKNOWN"

// How a block's payload travels (meta byte 61). kRaw: the payload bytes as stored. kZstd: the
// 16-bit byte shuffle + zstd of the NVMe codec. kFp8: fp16/bf16 quantized to fp8-e4m3 with one
// float scale per (layer, K/V, head): lossy, only in namespaces flagged KVT_NS_LOSSY_OK. Every
// encoded payload is strictly shorter than payload_bytes (a block that does not shrink goes raw).
enum class Encoding : uint8_t { kRaw = 0, kZstd = 1, kFp8 = 2 };
constexpr uint8_t kMaxEncoding = 2;
const char* EncodingName(uint8_t e);  // "raw" | "zstd" | "fp8" | "unknown"
// Codecs a connection may use, as the bitmask HELLO offers and its response accepts: bit
// (encoding - 1). Bits a peer does not know are never accepted (ignored, not an error).
constexpr uint8_t kCodecZstd = 1u << 0;
constexpr uint8_t kCodecFp8 = 1u << 1;
constexpr uint8_t kKnownCodecs = kCodecZstd | kCodecFp8;
constexpr uint8_t CodecBit(Encoding e) {
  return e == Encoding::kRaw ? 0 : static_cast<uint8_t>(1u << (static_cast<uint8_t>(e) - 1));
}

// Upper bounds checked before anything is allocated or read further. Both sides use the same
// defaults; the server announces its own in the hello response.
struct Limits {
  uint32_t max_body = (64u << 20) + 8192;  // one block of up to 64 MiB plus its framing
  uint32_t max_keys = 4096;               // keys per lookup / get
  uint32_t max_namespace = 4096;          // bytes of a namespace encoding
  uint32_t max_message = 4096;            // bytes of an error message
};

struct FrameHeader {
  uint8_t opcode = 0;
  uint8_t status = 0;  // a kvt::Code; responses only
  uint8_t flags = 0;
  uint64_t request_id = 0;
  uint32_t body_len = 0;
};

// The identity of a block on the wire: what the receiving store verifies (parent, tokens digest,
// payload checksum) before it serves or keeps the bytes.
struct BlockInfo {
  Hash128 key;
  Hash128 parent;
  Hash128 tokens_digest;
  uint64_t checksum = 0;  // XXH3-64 of the payload
  uint32_t payload_bytes = 0;  // the decoded size (what the receiver stores)
  bool has_tokens = false;
  // How the payload bytes that follow travel (Encoding). Only in GET responses and PUT requests
  // of a connection that negotiated the codec; always kRaw in LOOKUP responses. The checksum is
  // over the decoded bytes: for fp8, over what the receiver gets after dequantizing.
  uint8_t encoding = 0;
  bool operator==(const BlockInfo&) const = default;
};

void EncodeHeader(const FrameHeader& h, uint8_t out[kHeaderBytes]);
// Checks magic, version, reserved bits, opcode (known request or response) and status, and
// body_len against limits.max_body. InvalidArgument names the bad field.
Status DecodeHeader(const uint8_t in[kHeaderBytes], const Limits& limits, FrameHeader* out);

// One complete frame at the start of `buf`. Ok with *consumed == 0: not complete yet (a valid
// header may already be there; `*header` is filled once it is). Ok with *consumed > 0: header and
// body (a view into buf) of one frame. An error: the stream is unusable (bad header).
Status ParseFrame(std::span<const uint8_t> buf, const Limits& limits, FrameHeader* header,
                  std::span<const uint8_t>* body, size_t* consumed);

// Appends header + body to out.
void AppendFrame(const FrameHeader& h, std::span<const uint8_t> body, std::vector<uint8_t>* out);

// --- bodies ----------------------------------------------------------------------------------
// Decoders return InvalidArgument naming the field when a body is short, long, or over a limit;
// views point into the body.

struct HelloRequest {
  std::array<uint8_t, kNonceBytes> client_nonce{};
  // Codecs the client offers (kCodec*). 0 encodes the original 32-byte body, so a client that
  // offers nothing speaks exactly to servers from before compression.
  uint8_t codecs = 0;
};
struct HelloResponse {
  std::array<uint8_t, kNonceBytes> server_nonce{};
  bool auth_required = false;
  uint8_t codecs = 0;  // the offered codecs the server accepts (a byte older servers leave 0)
  uint32_t max_body = 0;
  uint32_t max_keys = 0;
};
struct AuthMessage {  // request: the client's proof; response: the server's proof
  std::array<uint8_t, kMacBytes> mac{};
  // Request only: which credential (kvtierd --tenants) the proof is made with; empty: the node's
  // shared secret.
  std::string credential;
};
// lookup, get and drop namespace: a namespace encoding and keys (none for drop).
struct KeysRequest {
  std::string_view ns;
  std::vector<Hash128> keys;
};
struct LookupEntry {
  bool present = false;
  BlockInfo info;
};
struct GetBlockHead {
  uint32_t index = 0;  // position of the key in the request
  bool present = false;
  BlockInfo info;  // when present, wire_bytes of payload follow (encoded per info.encoding)
  uint32_t wire_bytes = 0;  // decoded from the frame's body_len
};
struct PutRequest {
  std::string_view ns;
  BlockInfo info;
  std::span<const uint8_t> payload;  // as it travels (info.encoding)
};

void EncodeBlockInfo(const BlockInfo& b, uint8_t out[kMetaBytes]);
BlockInfo DecodeBlockInfo(const uint8_t in[kMetaBytes]);

std::vector<uint8_t> EncodeHello(const HelloRequest& r);
Status DecodeHello(std::span<const uint8_t> body, HelloRequest* out);
std::vector<uint8_t> EncodeHelloResponse(const HelloResponse& r);
Status DecodeHelloResponse(std::span<const uint8_t> body, HelloResponse* out);
std::vector<uint8_t> EncodeAuth(const AuthMessage& m);
Status DecodeAuth(std::span<const uint8_t> body, AuthMessage* out);

// The drop namespace body: the namespace alone.
std::vector<uint8_t> EncodeNamespaceRequest(std::string_view ns);
std::vector<uint8_t> EncodeKeysRequest(std::string_view ns, std::span<const Hash128> keys);
// allow_keys false: drop namespace, whose body is the namespace alone.
Status DecodeKeysRequest(std::span<const uint8_t> body, const Limits& limits, bool allow_keys,
                         KeysRequest* out);

std::vector<uint8_t> EncodeLookupResponse(std::span<const LookupEntry> entries);
Status DecodeLookupResponse(std::span<const uint8_t> body, const Limits& limits,
                            std::vector<LookupEntry>* out);

void EncodeGetBlockHead(const GetBlockHead& h, uint8_t out[kGetBlockHeadBytes]);
// Checks that `body_len` (the frame's) matches the head: kGetBlockHeadBytes, plus payload_bytes
// when present and raw, or 1..payload_bytes-1 bytes when encoded with a known encoding.
Status DecodeGetBlockHead(const uint8_t in[kGetBlockHeadBytes], uint32_t body_len,
                          GetBlockHead* out);

// The put body without its payload (header of the gather list: this, then the payload bytes as
// they travel; DecodePut checks their length as DecodeGetBlockHead does).
std::vector<uint8_t> EncodePutHead(std::string_view ns, const BlockInfo& info);
Status DecodePut(std::span<const uint8_t> body, const Limits& limits, PutRequest* out);

}  // namespace kvt::wire
