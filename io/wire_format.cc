#include "io/wire_format.h"

#include <cstring>

namespace kvt::wire {
namespace {

void PutU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void PutU64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t GetU32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{p[i]} << (8 * i);
  return v;
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}
void PutHash(uint8_t* p, const Hash128& h) {
  PutU64(p, h.lo);
  PutU64(p + 8, h.hi);
}
Hash128 GetHash(const uint8_t* p) { return Hash128{GetU64(p), GetU64(p + 8)}; }

bool KnownRequest(uint8_t op) {
  return op >= static_cast<uint8_t>(Op::kHello) && op <= static_cast<uint8_t>(Op::kStats);
}

Status Bad(const std::string& what) { return Status::InvalidArgument("wire: " + what); }

// A namespace field: u32 length then bytes. Advances *off.
Status ReadNamespace(std::span<const uint8_t> body, const Limits& limits, size_t* off,
                     std::string_view* ns) {
  if (body.size() - *off < 4) return Bad("body too short for the namespace length");
  const uint32_t len = GetU32(body.data() + *off);
  *off += 4;
  if (len == 0 || len > limits.max_namespace) {
    return Bad("namespace length " + std::to_string(len) + " outside 1.." +
               std::to_string(limits.max_namespace));
  }
  if (body.size() - *off < len) return Bad("namespace runs past the body");
  *ns = std::string_view(reinterpret_cast<const char*>(body.data() + *off), len);
  *off += len;
  return Status::Ok();
}

// The payload length that follows a block meta: raw blocks carry exactly payload_bytes; an encoded
// one must be shorter (else it would have gone raw) and not empty.
Status CheckPayloadLength(const BlockInfo& b, uint64_t wire, const char* what) {
  if (b.encoding > kMaxEncoding) {
    return Bad(std::string(what) + ": unknown payload encoding " + std::to_string(b.encoding));
  }
  if (b.encoding == static_cast<uint8_t>(Encoding::kRaw)) {
    if (wire != b.payload_bytes) {
      return Bad(std::string(what) + " payload of " + std::to_string(wire) +
                 " bytes; the meta says " + std::to_string(b.payload_bytes));
    }
    return Status::Ok();
  }
  if (wire == 0 || wire >= b.payload_bytes) {
    return Bad(std::string(what) + " " + EncodingName(b.encoding) + " payload of " +
               std::to_string(wire) + " bytes for a block of " + std::to_string(b.payload_bytes));
  }
  return Status::Ok();
}

void AppendNamespace(std::string_view ns, std::vector<uint8_t>* out) {
  const size_t at = out->size();
  out->resize(at + 4 + ns.size());
  PutU32(out->data() + at, static_cast<uint32_t>(ns.size()));
  std::memcpy(out->data() + at + 4, ns.data(), ns.size());
}

}  // namespace

const char* OpName(uint8_t opcode) {
  if (opcode == kProtocolError) return "PROTOCOL_ERROR";
  const bool resp = (opcode & kResponseBit) != 0;
  switch (static_cast<Op>(opcode & ~kResponseBit)) {
    case Op::kHello: return resp ? "HELLO_RESPONSE" : "HELLO";
    case Op::kAuth: return resp ? "AUTH_RESPONSE" : "AUTH";
    case Op::kLookup: return resp ? "LOOKUP_RESPONSE" : "LOOKUP";
    case Op::kGet: return resp ? "GET_RESPONSE" : "GET";
    case Op::kPut: return resp ? "PUT_RESPONSE" : "PUT";
    case Op::kDropNamespace: return resp ? "DROP_NAMESPACE_RESPONSE" : "DROP_NAMESPACE";
    case Op::kStats: return resp ? "STATS_RESPONSE" : "STATS";
  }
  return "UNKNOWN";
}

const char* EncodingName(uint8_t e) {
  switch (static_cast<Encoding>(e)) {
    case Encoding::kRaw: return "raw";
    case Encoding::kZstd: return "zstd";
    case Encoding::kFp8: return "fp8";
  }
  return "unknown";
}

void EncodeHeader(const FrameHeader& h, uint8_t out[kHeaderBytes]) {
  PutU32(out, kMagic);
  out[4] = kVersion;
  out[5] = h.opcode;
  out[6] = h.status;
  out[7] = h.flags;
  PutU64(out + 8, h.request_id);
  PutU32(out + 16, h.body_len);
  PutU32(out + 20, 0);
}

Status DecodeHeader(const uint8_t in[kHeaderBytes], const Limits& limits, FrameHeader* out) {
  if (GetU32(in) != kMagic) return Bad("bad magic (not a kvtier frame)");
  if (in[4] != kVersion) {
    return Bad("protocol version " + std::to_string(in[4]) + ", this build speaks " +
               std::to_string(kVersion));
  }
  const uint8_t op = in[5];
  if (op != kProtocolError && !KnownRequest(op & ~kResponseBit)) return Bad("unknown opcode " + std::to_string(op));
  if (in[6] > static_cast<uint8_t>(Code::kInternal)) {
    return Bad("unknown status " + std::to_string(in[6]));
  }
  if ((in[7] & ~kFlagEnd) != 0) return Bad("unknown flags " + std::to_string(in[7]));
  if (GetU32(in + 20) != 0) return Bad("reserved header bytes are not zero");
  const uint32_t len = GetU32(in + 16);
  if (len > limits.max_body) {
    return Bad("body of " + std::to_string(len) + " bytes exceeds the limit of " +
               std::to_string(limits.max_body));
  }
  out->opcode = op;
  out->status = in[6];
  out->flags = in[7];
  out->request_id = GetU64(in + 8);
  out->body_len = len;
  return Status::Ok();
}

Status ParseFrame(std::span<const uint8_t> buf, const Limits& limits, FrameHeader* header,
                  std::span<const uint8_t>* body, size_t* consumed) {
  *consumed = 0;
  if (buf.size() < kHeaderBytes) return Status::Ok();
  KVT_RETURN_IF_ERROR(DecodeHeader(buf.data(), limits, header));
  if (buf.size() - kHeaderBytes < header->body_len) return Status::Ok();
  *body = buf.subspan(kHeaderBytes, header->body_len);
  *consumed = kHeaderBytes + header->body_len;
  return Status::Ok();
}

void AppendFrame(const FrameHeader& h, std::span<const uint8_t> body, std::vector<uint8_t>* out) {
  FrameHeader hh = h;
  hh.body_len = static_cast<uint32_t>(body.size());
  const size_t at = out->size();
  out->resize(at + kHeaderBytes + body.size());
  EncodeHeader(hh, out->data() + at);
  if (!body.empty()) std::memcpy(out->data() + at + kHeaderBytes, body.data(), body.size());
}

void EncodeBlockInfo(const BlockInfo& b, uint8_t out[kMetaBytes]) {
  PutHash(out, b.key);
  PutHash(out + 16, b.parent);
  PutHash(out + 32, b.tokens_digest);
  PutU64(out + 48, b.checksum);
  PutU32(out + 56, b.payload_bytes);
  out[60] = b.has_tokens ? 1 : 0;
  out[61] = b.encoding;
  out[62] = out[63] = 0;
}

BlockInfo DecodeBlockInfo(const uint8_t in[kMetaBytes]) {
  BlockInfo b;
  b.key = GetHash(in);
  b.parent = GetHash(in + 16);
  b.tokens_digest = GetHash(in + 32);
  b.checksum = GetU64(in + 48);
  b.payload_bytes = GetU32(in + 56);
  b.has_tokens = in[60] != 0;
  b.encoding = in[61];
  return b;
}

std::vector<uint8_t> EncodeHello(const HelloRequest& r) {
  std::vector<uint8_t> b(r.client_nonce.begin(), r.client_nonce.end());
  if (r.codecs != 0) b.insert(b.end(), {r.codecs, 0, 0, 0});  // codecs u8, 3 reserved
  return b;
}

Status DecodeHello(std::span<const uint8_t> body, HelloRequest* out) {
  if (body.size() != kNonceBytes && body.size() != kNonceBytes + 4) {
    return Bad("hello body is not " + std::to_string(kNonceBytes) + " or " +
               std::to_string(kNonceBytes + 4) + " bytes");
  }
  std::memcpy(out->client_nonce.data(), body.data(), kNonceBytes);
  out->codecs = 0;
  if (body.size() > kNonceBytes) {
    if (body[kNonceBytes + 1] != 0 || body[kNonceBytes + 2] != 0 || body[kNonceBytes + 3] != 0) {
      return Bad("hello: reserved bytes are not zero");
    }
    out->codecs = body[kNonceBytes];  // unknown bits are simply not accepted
    // One encoding per hello: offering nothing is the 32-byte body.
    if (out->codecs == 0) return Bad("hello offers no codec in its codec field");
  }
  return Status::Ok();
}

std::vector<uint8_t> EncodeHelloResponse(const HelloResponse& r) {
  std::vector<uint8_t> b(kNonceBytes + 12, 0);
  std::memcpy(b.data(), r.server_nonce.data(), kNonceBytes);
  b[kNonceBytes] = r.auth_required ? 1 : 0;
  b[kNonceBytes + 1] = r.codecs;
  PutU32(b.data() + kNonceBytes + 4, r.max_body);
  PutU32(b.data() + kNonceBytes + 8, r.max_keys);
  return b;
}

Status DecodeHelloResponse(std::span<const uint8_t> body, HelloResponse* out) {
  if (body.size() != kNonceBytes + 12) return Bad("hello response has the wrong size");
  std::memcpy(out->server_nonce.data(), body.data(), kNonceBytes);
  out->auth_required = body[kNonceBytes] != 0;
  out->codecs = body[kNonceBytes + 1];  // the client checks it against what it offered
  out->max_body = GetU32(body.data() + kNonceBytes + 4);
  out->max_keys = GetU32(body.data() + kNonceBytes + 8);
  // The client sends keys in chunks of max_keys: zero would never make progress.
  if (out->max_keys == 0) return Bad("hello response announces max_keys 0");
  return Status::Ok();
}

std::vector<uint8_t> EncodeAuth(const AuthMessage& m) {
  std::vector<uint8_t> b(m.mac.begin(), m.mac.end());
  b.insert(b.end(), m.credential.begin(), m.credential.end());
  return b;
}

Status DecodeAuth(std::span<const uint8_t> body, AuthMessage* out) {
  if (body.size() < kMacBytes || body.size() > kMacBytes + kMaxCredentialId) {
    return Bad("auth body is not " + std::to_string(kMacBytes) + " bytes plus at most " +
               std::to_string(kMaxCredentialId) + " of credential id");
  }
  std::memcpy(out->mac.data(), body.data(), kMacBytes);
  out->credential.assign(reinterpret_cast<const char*>(body.data()) + kMacBytes,
                         body.size() - kMacBytes);
  return Status::Ok();
}

std::vector<uint8_t> EncodeNamespaceRequest(std::string_view ns) {
  std::vector<uint8_t> b;
  AppendNamespace(ns, &b);
  return b;
}

std::vector<uint8_t> EncodeKeysRequest(std::string_view ns, std::span<const Hash128> keys) {
  std::vector<uint8_t> b;
  b.reserve(8 + ns.size() + keys.size() * 16);
  AppendNamespace(ns, &b);
  const size_t at = b.size();
  b.resize(at + 4 + keys.size() * 16);
  PutU32(b.data() + at, static_cast<uint32_t>(keys.size()));
  for (size_t i = 0; i < keys.size(); ++i) PutHash(b.data() + at + 4 + 16 * i, keys[i]);
  return b;
}

Status DecodeKeysRequest(std::span<const uint8_t> body, const Limits& limits, bool allow_keys,
                         KeysRequest* out) {
  size_t off = 0;
  KVT_RETURN_IF_ERROR(ReadNamespace(body, limits, &off, &out->ns));
  out->keys.clear();
  if (!allow_keys) {
    if (off != body.size()) return Bad("trailing bytes after the namespace");
    return Status::Ok();
  }
  if (body.size() - off < 4) return Bad("body too short for the key count");
  const uint32_t n = GetU32(body.data() + off);
  off += 4;
  if (n == 0 || n > limits.max_keys) {
    return Bad("key count " + std::to_string(n) + " outside 1.." + std::to_string(limits.max_keys));
  }
  if ((body.size() - off) != uint64_t{n} * 16) {
    return Bad("key count " + std::to_string(n) + " does not match " +
               std::to_string(body.size() - off) + " bytes of keys");
  }
  out->keys.resize(n);
  for (uint32_t i = 0; i < n; ++i) out->keys[i] = GetHash(body.data() + off + 16 * i);
  return Status::Ok();
}

std::vector<uint8_t> EncodeLookupResponse(std::span<const LookupEntry> entries) {
  std::vector<uint8_t> b(4 + entries.size() * kLookupEntryBytes, 0);
  PutU32(b.data(), static_cast<uint32_t>(entries.size()));
  for (size_t i = 0; i < entries.size(); ++i) {
    uint8_t* p = b.data() + 4 + i * kLookupEntryBytes;
    p[0] = entries[i].present ? 1 : 0;
    if (entries[i].present) EncodeBlockInfo(entries[i].info, p + 4);
  }
  return b;
}

Status DecodeLookupResponse(std::span<const uint8_t> body, const Limits& limits,
                            std::vector<LookupEntry>* out) {
  if (body.size() < 4) return Bad("lookup response too short");
  const uint32_t n = GetU32(body.data());
  if (n > limits.max_keys) return Bad("lookup response count " + std::to_string(n) + " over limit");
  if (body.size() - 4 != uint64_t{n} * kLookupEntryBytes) {
    return Bad("lookup response size does not match its count");
  }
  out->resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    const uint8_t* p = body.data() + 4 + i * kLookupEntryBytes;
    (*out)[i].present = p[0] != 0;
    (*out)[i].info = (*out)[i].present ? DecodeBlockInfo(p + 4) : BlockInfo{};
    if ((*out)[i].info.encoding != 0) return Bad("lookup response entry with a payload encoding");
  }
  return Status::Ok();
}

void EncodeGetBlockHead(const GetBlockHead& h, uint8_t out[kGetBlockHeadBytes]) {
  std::memset(out, 0, kGetBlockHeadBytes);
  PutU32(out, h.index);
  out[4] = h.present ? 1 : 0;
  if (h.present) EncodeBlockInfo(h.info, out + 8);
}

Status DecodeGetBlockHead(const uint8_t in[kGetBlockHeadBytes], uint32_t body_len,
                          GetBlockHead* out) {
  out->index = GetU32(in);
  out->present = in[4] != 0;
  out->info = out->present ? DecodeBlockInfo(in + 8) : BlockInfo{};
  out->wire_bytes = 0;
  if (body_len < kGetBlockHeadBytes) return Bad("get response body shorter than its head");
  const uint32_t wire = body_len - static_cast<uint32_t>(kGetBlockHeadBytes);
  if (!out->present) {
    if (wire != 0) return Bad("get response for an absent block carries " + std::to_string(wire) + " bytes");
    return Status::Ok();
  }
  KVT_RETURN_IF_ERROR(CheckPayloadLength(out->info, wire, "get response"));
  out->wire_bytes = wire;
  return Status::Ok();
}

std::vector<uint8_t> EncodePutHead(std::string_view ns, const BlockInfo& info) {
  std::vector<uint8_t> b;
  b.reserve(4 + ns.size() + kMetaBytes);
  AppendNamespace(ns, &b);
  const size_t at = b.size();
  b.resize(at + kMetaBytes);
  EncodeBlockInfo(info, b.data() + at);
  return b;
}

Status DecodePut(std::span<const uint8_t> body, const Limits& limits, PutRequest* out) {
  size_t off = 0;
  KVT_RETURN_IF_ERROR(ReadNamespace(body, limits, &off, &out->ns));
  if (body.size() - off < kMetaBytes) return Bad("put body too short for the block meta");
  out->info = DecodeBlockInfo(body.data() + off);
  off += kMetaBytes;
  if (out->info.payload_bytes == 0) return Bad("put of an empty block");
  KVT_RETURN_IF_ERROR(CheckPayloadLength(out->info, body.size() - off, "put"));
  out->payload = body.subspan(off);
  return Status::Ok();
}

}  // namespace kvt::wire
