#include "tiers/nvme/segment_format.h"

#include <cstdio>
#include <cstring>

namespace kvt {
namespace {

template <typename T>
uint64_t HeaderChecksum(const T& h) {
  return Checksum64(&h, offsetof(T, header_checksum));
}

template <typename T>
Status CheckCommon(const T& h, uint64_t magic, const char* what) {
  if (h.magic != magic) return Status::Corruption(std::string(what) + ": bad magic");
  if (HeaderChecksum(h) != h.header_checksum) {
    return Status::Corruption(std::string(what) + ": header checksum mismatch");
  }
  if (h.format_version != kNvmeFormatVersion) {
    return Status::Corruption(std::string(what) + ": format version " +
                              std::to_string(h.format_version) + ", this build reads version " +
                              std::to_string(kNvmeFormatVersion));
  }
  return Status::Ok();
}

}  // namespace

void EncodeSegmentHeader(SegmentHeader h, uint8_t* block) {
  std::memset(block, 0, kSegmentHeaderBytes);
  h.header_checksum = HeaderChecksum(h);
  std::memcpy(block, &h, sizeof(h));
}

void EncodeRecordHeader(RecordHeader h, uint8_t* block) {
  std::memset(block, 0, kRecordHeaderBytes);
  h.header_checksum = HeaderChecksum(h);
  std::memcpy(block, &h, sizeof(h));
}

Status DecodeSegmentHeader(const uint8_t* block, SegmentHeader* out) {
  std::memcpy(out, block, sizeof(*out));
  return CheckCommon(*out, kSegmentMagic, "segment header");
}

Status DecodeRecordHeader(const uint8_t* block, RecordHeader* out) {
  std::memcpy(out, block, sizeof(*out));
  KVT_RETURN_IF_ERROR(CheckCommon(*out, kRecordMagic, "record header"));
  // The rest of the block is written as zeros: anything else there is damage too.
  for (size_t i = sizeof(RecordHeader); i < kRecordHeaderBytes; ++i) {
    if (block[i] != 0) return Status::Corruption("record header: damaged padding");
  }
  if (out->codec > static_cast<uint8_t>(Codec::kZstd)) {
    return Status::Corruption("record header: unknown codec " + std::to_string(out->codec));
  }
  if (out->codec == static_cast<uint8_t>(Codec::kNone) && out->stored_bytes != out->payload_bytes) {
    return Status::Corruption("record header: raw record with stored != payload bytes");
  }
  return Status::Ok();
}

std::string SegmentFileName(uint32_t id) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "seg-%06u.kvs", id);
  return buf;
}

int64_t ParseSegmentFileName(const std::string& name) {
  unsigned id = 0;
  int consumed = 0;
  if (name.size() != 14 || std::sscanf(name.c_str(), "seg-%6u.kvs%n", &id, &consumed) != 1 ||
      consumed != 14) {
    return -1;
  }
  return id;
}

}  // namespace kvt
