// Block payloads compressed for the wire (kvtierd protocol, docs/PROTOCOL.md "Compression"):
// the encoder and decoder both sides of a connection use, and the counters both report.
//
// kZstd is the NVMe tier's codec (16-bit byte shuffle + zstd, tiers/nvme/codec.h): lossless.
// kFp8 is the quantizing codec of the kernels (kernels/quantize.h): fp16/bf16 to fp8-e4m3 with
// one float scale per (layer, K/V, head); its wire form is the scales (little-endian floats,
// BlockLayout::scale_index order) then the fp8 bytes. Lossy, so only for namespaces flagged
// KVT_NS_LOSSY_OK; the sender dequantizes its own output to give the checksum of the bytes the
// receiver will hold, and the receiver verifies it after decoding.
//
// Nothing from the network is trusted: the decoded size must be the namespace's block size and
// within `max_bytes`, zstd must produce exactly that many bytes, an fp8 payload must have exactly
// its size and finite positive scales. Any disagreement is Corruption.
//
// Thread safety: the functions are thread-safe (per-thread scratch); counters are atomics.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/status.h"
#include "io/wire_format.h"
#include "src/block_key.h"

namespace kvt {

// remote_compression / kvtierd --compression: "none" | "zstd" | "fp8" as the codecs a side
// offers or accepts. fp8 includes zstd (for the namespaces that do not allow lossy blocks).
StatusOr<uint8_t> ParseWireCompression(std::string_view name);
const char* WireCompressionName(uint8_t codecs);

// The encoding a block of this namespace gets on a connection that negotiated `codecs`: fp8 when
// negotiated and the namespace allows it, else zstd when negotiated, else raw.
wire::Encoding ChooseEncoding(uint8_t codecs, const Geometry& g);

// Bytes of an fp8-encoded block of this geometry (scales then fp8 values).
uint64_t Fp8WireBytes(const Geometry& g);

struct WireCodecCounters {
  // Sender side: blocks given to the encoder on a connection with a codec, and what went out.
  std::atomic<uint64_t> encoded_zstd{0}, encoded_fp8{0}, sent_raw{0};
  std::atomic<uint64_t> encode_bytes_in{0}, encode_bytes_out{0}, encode_ns{0};
  // Receiver side.
  std::atomic<uint64_t> decoded_zstd{0}, decoded_fp8{0}, decode_failures{0};
  std::atomic<uint64_t> decode_bytes_in{0}, decode_bytes_out{0}, decode_ns{0};
  void ToJson(nlohmann::json* out) const;
};

// Encodes `n` bytes of payload with `want`. *out receives the wire bytes and *checksum the
// checksum of the bytes the receiver will decode (unchanged for lossless codecs, given as
// `checksum`); returns the encoding used: kRaw (out left empty) when `want` is kRaw, does not
// apply, or does not shrink the block.
wire::Encoding EncodePayload(wire::Encoding want, const Geometry& g, const uint8_t* src,
                             size_t n, std::vector<uint8_t>* out, uint64_t* checksum,
                             WireCodecCounters* c);

// Decodes `in` (encoding e, not kRaw) into dst (payload_bytes). Corruption when anything
// disagrees (see the file comment); dst then holds garbage and must not be used.
Status DecodePayload(wire::Encoding e, const Geometry& g, std::span<const uint8_t> in,
                     uint8_t* dst, size_t payload_bytes, size_t max_bytes,
                     WireCodecCounters* c);

}  // namespace kvt
