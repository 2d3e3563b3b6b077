// libFuzzer target: the frame decoder and every body decoder (io/wire_format.h) on arbitrary
// bytes, and the wire codec's decoder on every encoded payload they let through. Whatever decodes must re-encode to the same bytes; nothing may read out of bounds,
// overflow or allocate beyond the limits.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "io/wire_format.h"
#include "tiers/remote/wire_codec.h"

using namespace kvt::wire;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

// An encoded payload through the wire codec (tiers/remote/wire_codec.h), for a small lossy fp16
// namespace (the meta's payload_bytes decides whether it is that namespace's size): whatever the
// bytes, a status, and never a write past the block.
void DecodeEncoded(const BlockInfo& info, std::span<const uint8_t> in, const Limits& limits) {
  kvt::Geometry g;
  g.layers = 2;
  g.kv_heads = 2;
  g.head_dim = 64;
  g.block_tokens = 4;  // 4 KiB blocks; fp8: 8 scales (32 bytes) + 2048 bytes
  g.lossy_ok = (info.key.lo & 1) == 0;
  std::vector<uint8_t> dst(g.BlockBytes() + 1, 0xEE);  // one guard byte past the block
  kvt::WireCodecCounters c;
  kvt::Status s = kvt::DecodePayload(static_cast<Encoding>(info.encoding), g, in, dst.data(),
                                     info.payload_bytes, limits.max_body, &c);
  Check(dst.back() == 0xEE);
  Check(s.ok() == (c.decode_failures.load() == 0));
  if (s.ok()) Check(info.payload_bytes == g.BlockBytes());
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
            Check(!g.present || g.wire_bytes == body.size() - kGetBlockHeadBytes);
            Check(!g.present || g.info.encoding != 0 || g.wire_bytes == g.info.payload_bytes);
            Check(!g.present || g.info.encoding == 0 || g.wire_bytes < g.info.payload_bytes);
            if (g.present && g.info.encoding != 0) {
              DecodeEncoded(g.info, body.subspan(kGetBlockHeadBytes), limits);
            }
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
        if (p.info.encoding != 0) DecodeEncoded(p.info, p.payload, limits);
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
