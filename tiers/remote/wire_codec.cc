#include "tiers/remote/wire_codec.h"

#include <chrono>
#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "base/counter.h"
#include "base/hash.h"
#include "kernels/quantize.h"
#include "tiers/nvme/codec.h"

namespace kvt {
namespace {

// zstd level 1: about 1.2 GB/s per core on fp16 KV here (MACHINE_FACTS.md); higher levels gain
// a few percent of ratio for several times the CPU, which a link fast enough to need this lacks.
constexpr int kZstdLevel = 1;

class Timer {
 public:
  explicit Timer(std::atomic<uint64_t>* into) : into_(into), t0_(std::chrono::steady_clock::now()) {}
  ~Timer() {
    Add(*into_, static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now() - t0_)
                                          .count()));
  }

 private:
  std::atomic<uint64_t>* into_;
  std::chrono::steady_clock::time_point t0_;
};

BlockLayout QuantLayout(const Geometry& g) {
  BlockLayout q = LayoutOf(g);
  q.dtype = DType::kFp8E4M3;
  return q;
}

// Per-thread scratch for the sender's own dequantization (the checksum of what the receiver
// will hold) and the receiver's scales.
std::vector<uint8_t>& Scratch() {
  thread_local std::vector<uint8_t> s;
  return s;
}

}  // namespace

StatusOr<uint8_t> ParseWireCompression(std::string_view name) {
  if (name == "none") return uint8_t{0};
  if (name == "zstd") return wire::kCodecZstd;
  if (name == "fp8") return static_cast<uint8_t>(wire::kCodecZstd | wire::kCodecFp8);
  return Status::InvalidArgument("compression: expected none, zstd or fp8, got '" +
                                 std::string(name) + "'");
}

const char* WireCompressionName(uint8_t codecs) {
  if (codecs & wire::kCodecFp8) return (codecs & wire::kCodecZstd) ? "fp8" : "fp8 only";
  return (codecs & wire::kCodecZstd) ? "zstd" : "none";
}

wire::Encoding ChooseEncoding(uint8_t codecs, const Geometry& g) {
  if ((codecs & wire::kCodecFp8) && g.lossy_ok && IsHalfDType(g.dtype)) return wire::Encoding::kFp8;
  if (codecs & wire::kCodecZstd) return wire::Encoding::kZstd;
  return wire::Encoding::kRaw;
}

uint64_t Fp8WireBytes(const Geometry& g) {
  const BlockLayout q = QuantLayout(g);
  return static_cast<uint64_t>(q.scales_per_block()) * sizeof(float) +
         static_cast<uint64_t>(q.block_elems());
}

void WireCodecCounters::ToJson(nlohmann::json* out) const {
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  auto& j = *out;
  j["encoded_zstd"] = get(encoded_zstd);
  j["encoded_fp8"] = get(encoded_fp8);
  j["sent_raw"] = get(sent_raw);
  j["encode_bytes_in"] = get(encode_bytes_in);
  j["encode_bytes_out"] = get(encode_bytes_out);
  j["encode_ns"] = get(encode_ns);
  j["decoded_zstd"] = get(decoded_zstd);
  j["decoded_fp8"] = get(decoded_fp8);
  j["lossy_blocks"] = get(decoded_fp8);  // blocks this side holds as fp8-decoded bytes
  j["decode_failures"] = get(decode_failures);
  j["decode_bytes_in"] = get(decode_bytes_in);
  j["decode_bytes_out"] = get(decode_bytes_out);
  j["decode_ns"] = get(decode_ns);
}

wire::Encoding EncodePayload(wire::Encoding want, const Geometry& g, const uint8_t* src,
                             size_t n, std::vector<uint8_t>* out, uint64_t* checksum,
                             WireCodecCounters* c) {
  out->clear();
  if (want == wire::Encoding::kRaw) return wire::Encoding::kRaw;
  Timer t(&c->encode_ns);
  Add(c->encode_bytes_in, n);
  wire::Encoding used = wire::Encoding::kRaw;
  if (want == wire::Encoding::kFp8 && g.lossy_ok && IsHalfDType(g.dtype) && n == g.BlockBytes() &&
      Fp8WireBytes(g) < n) {
    const BlockLayout src_layout = LayoutOf(g);
    const BlockLayout q = QuantLayout(g);
    const size_t scale_bytes = static_cast<size_t>(q.scales_per_block()) * sizeof(float);
    out->resize(static_cast<size_t>(Fp8WireBytes(g)));
    std::vector<float> scales(static_cast<size_t>(q.scales_per_block()));
    if (QuantizeBlocksRef(src_layout, 1, src, DType::kFp8E4M3, out->data() + scale_bytes,
                          scales.data())
            .ok()) {
      std::memcpy(out->data(), scales.data(), scale_bytes);  // little-endian hosts only
      std::vector<uint8_t>& back = Scratch();
      back.resize(n);
      if (DequantizeBlocksRef(q, 1, out->data() + scale_bytes, scales.data(), g.dtype, back.data())
              .ok()) {
        *checksum = Checksum64(back.data(), n);
        used = wire::Encoding::kFp8;
        Add(c->encoded_fp8);
      }
    }
  } else if (want == wire::Encoding::kZstd) {
    out->resize(ZstdBound(n));
    auto r = ZstdShuffleCompress(src, n, out->data(), out->size(), kZstdLevel);
    if (r.ok() && *r < n) {
      out->resize(*r);
      used = wire::Encoding::kZstd;
      Add(c->encoded_zstd);
    }
  }
  if (used == wire::Encoding::kRaw) {
    out->clear();
    Add(c->sent_raw);
    Add(c->encode_bytes_out, n);
  } else {
    Add(c->encode_bytes_out, out->size());
  }
  return used;
}

Status DecodePayload(wire::Encoding e, const Geometry& g, std::span<const uint8_t> in,
                     uint8_t* dst, size_t payload_bytes, size_t max_bytes,
                     WireCodecCounters* c) {
  Timer t(&c->decode_ns);
  auto fail = [c](const std::string& what) {
    Add(c->decode_failures);
    return Status::Corruption("wire payload: " + what);
  };
  if (payload_bytes != g.BlockBytes() || payload_bytes > max_bytes) {
    return fail("decoded size " + std::to_string(payload_bytes) + " is not the namespace's block size " +
                std::to_string(g.BlockBytes()) + " within " + std::to_string(max_bytes));
  }
  if (in.size() >= payload_bytes) return fail("encoded payload does not shrink the block");
  if (e == wire::Encoding::kZstd) {
    Status s = ZstdShuffleDecompress(in.data(), in.size(), dst, payload_bytes);
    if (!s.ok()) return fail(s.message());
    Add(c->decoded_zstd);
  } else if (e == wire::Encoding::kFp8) {
    if (!g.lossy_ok || !IsHalfDType(g.dtype)) return fail("fp8 for a namespace without KVT_NS_LOSSY_OK");
    if (in.size() != Fp8WireBytes(g)) {
      return fail("fp8 payload of " + std::to_string(in.size()) + " bytes, expected " +
                  std::to_string(Fp8WireBytes(g)));
    }
    const BlockLayout q = QuantLayout(g);
    std::vector<float> scales(static_cast<size_t>(q.scales_per_block()));
    const size_t scale_bytes = scales.size() * sizeof(float);
    std::memcpy(scales.data(), in.data(), scale_bytes);
    for (float s : scales) {
      if (!std::isfinite(s) || !(s > 0.0f)) return fail("fp8 scale that is not finite and positive");
    }
    Status s = DequantizeBlocksRef(q, 1, in.data() + scale_bytes, scales.data(), g.dtype, dst);
    if (!s.ok()) return fail(s.message());
    Add(c->decoded_fp8);
  } else {
    return fail(std::string("unknown encoding ") + wire::EncodingName(static_cast<uint8_t>(e)));
  }
  Add(c->decode_bytes_in, in.size());
  Add(c->decode_bytes_out, payload_bytes);
  return Status::Ok();
}

}  // namespace kvt
