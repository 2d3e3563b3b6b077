// On-disk format of the NVMe tier's segment files.
//
// A segment file is fallocate'd to segment_bytes and written as a log:
//   [segment header, 4 KiB][record][record]...          (unused tail: whatever was there before)
// and each record is
//   [record header, 4 KiB][stored payload, padded to 4 KiB]
// so every header and payload starts on a 4 KiB boundary: the payload is written straight from
// (and read straight into) a 4 KiB-aligned host slot with O_DIRECT, without copies.
//
// The segment header carries the segment's generation: reclaiming a segment rewrites it with a
// new, larger generation (a tier-wide sequence, so it also orders segments oldest first). Each
// record header repeats the generation it was written under, so an index entry, a record and the
// segment must all agree before a record is served.
//
// Integers are stored little-endian (the struct bytes as laid out on x86-64 and arm64).
//
// Thread safety: plain functions on caller-owned memory.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/hash.h"
#include "base/status.h"
#include "tiers/nvme/codec.h"

namespace kvt {

static_assert(std::endian::native == std::endian::little, "segment format assumes little-endian");

// Bump on any incompatible change of the segment files, record headers or index values.
inline constexpr uint32_t kNvmeFormatVersion = 1;
inline constexpr size_t kNvmeAlign = 4096;
inline constexpr size_t kSegmentHeaderBytes = 4096;
inline constexpr size_t kRecordHeaderBytes = 4096;
inline constexpr uint64_t kSegmentMagic = 0x3147455354564b00ull;  // "\0KVTSEG1" (LE)
inline constexpr uint64_t kRecordMagic = 0x3143455254564b00ull;   // "\0KVTREC1" (LE)

struct SegmentHeader {
  uint64_t magic = kSegmentMagic;
  uint32_t format_version = kNvmeFormatVersion;
  uint32_t segment_id = 0;
  uint64_t generation = 0;
  uint64_t segment_bytes = 0;
  uint64_t header_checksum = 0;  // XXH3-64 of the bytes above
};

struct RecordHeader {
  uint64_t magic = kRecordMagic;
  uint32_t format_version = kNvmeFormatVersion;
  uint8_t codec = 0;  // Codec
  uint8_t flags = 0;  // kRecordHasTokens
  uint16_t reserved = 0;
  uint64_t generation = 0;  // of the segment when the record was written
  uint64_t ns = 0;
  Hash128 key;
  Hash128 parent;
  Hash128 tokens_digest;
  uint32_t payload_bytes = 0;     // logical (uncompressed)
  uint32_t stored_bytes = 0;      // on disk after the codec; == payload_bytes for kNone
  uint64_t payload_checksum = 0;  // XXH3-64 of the logical payload
  uint64_t stored_checksum = 0;   // XXH3-64 of the stored bytes
  uint64_t header_checksum = 0;   // XXH3-64 of the bytes above
};
inline constexpr uint8_t kRecordHasTokens = 1;

static_assert(sizeof(SegmentHeader) <= kSegmentHeaderBytes);
static_assert(sizeof(RecordHeader) <= kRecordHeaderBytes);

// Bytes a record with `stored_bytes` of payload occupies in a segment.
inline constexpr uint64_t RecordBytes(uint64_t stored_bytes) {
  return kRecordHeaderBytes + (stored_bytes + kNvmeAlign - 1) / kNvmeAlign * kNvmeAlign;
}

// Writes `h` (checksum computed here) into a zeroed 4 KiB block.
void EncodeSegmentHeader(SegmentHeader h, uint8_t* block);
void EncodeRecordHeader(RecordHeader h, uint8_t* block);

// Parses and checks magic, format version and header checksum. Corruption names what differs.
Status DecodeSegmentHeader(const uint8_t* block, SegmentHeader* out);
Status DecodeRecordHeader(const uint8_t* block, RecordHeader* out);

// "seg-000042.kvs"
std::string SegmentFileName(uint32_t id);
// The id of a segment file name, or -1 when `name` is not one.
int64_t ParseSegmentFileName(const std::string& name);

}  // namespace kvt
