// libFuzzer target: what the NVMe tier reads back from a segment file (tiers/nvme/segment_format.h,
// tiers/nvme/codec.h): segment headers, record headers, stored payloads and zstd frames, on arbitrary
// bytes. Decoders must return a status (never crash, never read past the block), and the read
// path's checks must hold: a record accepted as raw has stored == payload bytes, a zstd payload
// that decompresses gives exactly payload_bytes, and compress/decompress round-trips exactly.
//
// Input: byte 0 holds flags; then a 4 KiB header block (zero-padded when short); the rest is the
// stored payload. Flag bit 0 re-seals the header (magic, version, checksums computed here, as a
// writer would), so that the fuzzer reaches the checks behind the header checksum; bit 1 makes
// it a segment header instead of a record header.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tiers/nvme/codec.h"
#include "tiers/nvme/segment_format.h"

using namespace kvt;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

constexpr uint32_t kMaxPayload = 1u << 20;  // the fuzzer's bound; the tier's is the block size

void CheckRecord(const uint8_t* block, const uint8_t* stored, size_t stored_len) {
  RecordHeader h;
  if (!DecodeRecordHeader(block, &h).ok()) return;
  Check(h.codec <= static_cast<uint8_t>(Codec::kZstd));
  Check(h.codec != static_cast<uint8_t>(Codec::kNone) || h.stored_bytes == h.payload_bytes);
  Check(RecordBytes(h.stored_bytes) >= kRecordHeaderBytes + h.stored_bytes);
  // As NvmeTier::ReadRecord: the stored bytes must match their checksum before anything else.
  if (h.stored_bytes > stored_len || h.payload_bytes > kMaxPayload) return;
  if (Checksum64(stored, h.stored_bytes) != h.stored_checksum) return;
  std::vector<uint8_t> out(h.payload_bytes);
  if (h.codec == static_cast<uint8_t>(Codec::kZstd)) {
    if (!ZstdShuffleDecompress(stored, h.stored_bytes, out.data(), out.size()).ok()) return;
  } else {
    if (h.payload_bytes != 0) std::memcpy(out.data(), stored, h.payload_bytes);
  }
  // A payload checksum that does not match is a corrupt record; one that does is served.
  (void)(Checksum64(out.data(), out.size()) == h.payload_checksum);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  ++data;
  --size;
  std::vector<uint8_t> block(kRecordHeaderBytes, 0);
  const size_t head = std::min(size, kRecordHeaderBytes);
  if (head > 0) std::memcpy(block.data(), data, head);
  const uint8_t* stored = data + head;
  const size_t stored_len = size - head;

  if (flags & 2) {
    SegmentHeader sh;
    std::memcpy(&sh, block.data(), sizeof sh);
    if (flags & 1) {
      sh.magic = kSegmentMagic;
      sh.format_version = kNvmeFormatVersion;
      EncodeSegmentHeader(sh, block.data());
    }
    SegmentHeader got;
    if (DecodeSegmentHeader(block.data(), &got).ok()) {
      Check(got.magic == kSegmentMagic && got.format_version == kNvmeFormatVersion);
      if (flags & 1) Check(got.generation == sh.generation && got.segment_id == sh.segment_id);
    }
  } else {
    if (flags & 1) {
      // Sealed as a writer would seal it: the fields from the input, the rest made consistent.
      RecordHeader rh;
      std::memcpy(&rh, block.data(), sizeof rh);
      rh.magic = kRecordMagic;
      rh.format_version = kNvmeFormatVersion;
      rh.codec &= 1;
      rh.stored_bytes = static_cast<uint32_t>(std::min<size_t>(stored_len, kMaxPayload));
      if (rh.codec == 0) rh.payload_bytes = rh.stored_bytes;
      else rh.payload_bytes %= kMaxPayload + 1;
      rh.stored_checksum = Checksum64(stored, rh.stored_bytes);
      EncodeRecordHeader(rh, block.data());
    }
    CheckRecord(block.data(), stored, stored_len);
  }

  // The codec itself: any bytes decompress to a status, and any bytes round-trip exactly.
  if (stored_len > 0 && stored_len <= kMaxPayload) {
    std::vector<uint8_t> out(std::min<size_t>(stored_len * 4, kMaxPayload));
    (void)ZstdShuffleDecompress(stored, stored_len, out.data(), out.size());
    std::vector<uint8_t> z(ZstdBound(stored_len));
    auto n = ZstdShuffleCompress(stored, stored_len, z.data(), z.size(), 1);
    Check(n.ok());
    std::vector<uint8_t> back(stored_len);
    Check(ZstdShuffleDecompress(z.data(), *n, back.data(), back.size()).ok());
    Check(std::memcmp(back.data(), stored, stored_len) == 0);
  }
  (void)ParseSegmentFileName(std::string(reinterpret_cast<const char*>(data), std::min<size_t>(size, 32)));
  return 0;
}
