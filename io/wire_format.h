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
constexpr uint8_t kVersion = 2;  // 2: frames after AUTH carry a MAC trailer
constexpr size_t kHeaderBytes = 24;
constexpr size_t kNonceBytes = 32;
constexpr size_t kMacBytes = 32;  // HMAC-SHA256
// After an authenticated handshake every frame, both ways, is followed by this many bytes of
// HMAC-SHA256 (truncated) over its sequence number, header and body; not counted in body_len.
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
  uint32_t payload_bytes = 0;
  bool has_tokens = false;
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
};
struct HelloResponse {
  std::array<uint8_t, kNonceBytes> server_nonce{};
  bool auth_required = false;
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
  BlockInfo info;  // payload_bytes of payload follow when present
};
struct PutRequest {
  std::string_view ns;
  BlockInfo info;
  std::span<const uint8_t> payload;
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
// when present.
Status DecodeGetBlockHead(const uint8_t in[kGetBlockHeadBytes], uint32_t body_len,
                          GetBlockHead* out);

// The put body without its payload (header of the gather list: this, then the payload bytes).
std::vector<uint8_t> EncodePutHead(std::string_view ns, const BlockInfo& info);
Status DecodePut(std::span<const uint8_t> body, const Limits& limits, PutRequest* out);

}  // namespace kvt::wire
