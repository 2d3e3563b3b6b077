// BlockMeta: the identity of a stored block that every tier keeps and the store verifies on every
// hit. A hit counts only when the stored namespace, key, parent and (when both sides have them)
// token digest match what the caller asked for, and the payload checksum verifies where the bytes
// crossed a disk or a wire.
#pragma once

#include <cstdint>

#include "base/hash.h"

namespace kvt {

struct BlockMeta {
  uint64_t ns = 0;
  Hash128 key;
  Hash128 parent;
  Hash128 tokens_digest;
  bool has_tokens = false;
  uint32_t payload_bytes = 0;
  uint64_t checksum = 0;  // XXH3-64 of the logical (uncompressed) payload
};

}  // namespace kvt
