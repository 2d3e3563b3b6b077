// libFuzzer target: the frame decoder and every body decoder (io/wire_format.h) on arbitrary
// bytes. Whatever decodes must re-encode to the same bytes; nothing may read out of bounds,
// overflow or allocate beyond the limits.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "io/wire_format.h"

using namespace kvt::wire;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

void DecodeBody(const FrameHeader& h, std::span<const uint8_t> body, const Limits& limits) {
  const bool resp = (h.opcode & kResponseBit) != 0;
  switch (static_cast<Op>(h.opcode & ~kResponseBit)) {
    case Op::kHello:
      if (resp) {
        HelloResponse r;
        if (DecodeHelloResponse(body, &r).ok()) {
          auto again = EncodeHelloResponse(r);
          Check(again.size() == body.size());
          Check(std::memcmp(again.data(), body.data(), kNonceBytes) == 0);
        }
      } else {
        HelloRequest r;
        if (DecodeHello(body, &r).ok()) Check(EncodeHello(r) == std::vector(body.begin(), body.end()));
      }
      break;
    case Op::kAuth: {
      AuthMessage m;
      if (DecodeAuth(body, &m).ok()) Check(EncodeAuth(m) == std::vector(body.begin(), body.end()));
      break;
    }
    case Op::kLookup:
    case Op::kGet:
    case Op::kDropNamespace: {
      if (resp && (h.opcode & ~kResponseBit) == static_cast<uint8_t>(Op::kLookup)) {
        std::vector<LookupEntry> e;
        if (DecodeLookupResponse(body, limits, &e).ok()) Check(e.size() <= limits.max_keys);
        break;
      }
      if (resp && (h.opcode & ~kResponseBit) == static_cast<uint8_t>(Op::kGet)) {
        if (body.size() >= kGetBlockHeadBytes) {
          GetBlockHead g;
          if (DecodeGetBlockHead(body.data(), static_cast<uint32_t>(body.size()), &g).ok()) {
            Check(!g.present || g.info.payload_bytes == body.size() - kGetBlockHeadBytes);
          }
        }
        break;
      }
      const bool keys = (h.opcode & ~kResponseBit) != static_cast<uint8_t>(Op::kDropNamespace);
      KeysRequest r;
      if (DecodeKeysRequest(body, limits, keys, &r).ok()) {
        Check(r.keys.size() <= limits.max_keys && r.ns.size() <= limits.max_namespace);
        auto again = keys ? EncodeKeysRequest(r.ns, r.keys) : EncodeNamespaceRequest(r.ns);
        Check(again == std::vector(body.begin(), body.end()));
      }
      break;
    }
    case Op::kPut: {
      PutRequest p;
      if (DecodePut(body, limits, &p).ok()) {
        auto again = EncodePutHead(p.ns, p.info);
        again.insert(again.end(), p.payload.begin(), p.payload.end());
        Check(again.size() == body.size());
      }
      break;
    }
    case Op::kStats:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Limits limits;
  limits.max_body = 1 << 16;  // small, so that the limit paths are reached
  limits.max_keys = 64;
  limits.max_namespace = 256;
  std::span<const uint8_t> buf(data, size);
  while (!buf.empty()) {
    FrameHeader h;
    std::span<const uint8_t> body;
    size_t consumed = 0;
    if (!ParseFrame(buf, limits, &h, &body, &consumed).ok() || consumed == 0) break;
    Check(consumed == kHeaderBytes + h.body_len && h.body_len <= limits.max_body);
    // The header re-encodes to the bytes it came from.
    uint8_t again[kHeaderBytes];
    EncodeHeader(h, again);
    Check(std::memcmp(again, buf.data(), kHeaderBytes) == 0);
    DecodeBody(h, body, limits);
    buf = buf.subspan(consumed);
  }
  return 0;
}
