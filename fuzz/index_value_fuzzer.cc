// libFuzzer target: the NVMe tier's RocksDB index keys and values (tiers/nvme/nvme_index.h), as read
// back at open. Arbitrary bytes must decode to false or to an entry that re-encodes to the same
// bytes (the reserved byte and the has_tokens byte are normalised), and decode again identically.
//
// Input: byte 0 picks how the rest is split: its value (mod 33) is the key's length, the remainder
// is the value.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "tiers/nvme/nvme_index.h"

using namespace kvt;

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

bool SameLocation(const NvmeLocation& a, const NvmeLocation& b) {
  return a.SamePlace(b) && a.stored_bytes == b.stored_bytes &&
         a.payload_bytes == b.payload_bytes && a.checksum == b.checksum && a.codec == b.codec &&
         a.has_tokens == b.has_tokens && a.parent == b.parent &&
         a.tokens_digest == b.tokens_digest;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t key_len = std::min<size_t>(data[0] % 33, size - 1);
  const std::string key(reinterpret_cast<const char*>(data) + 1, key_len);
  const std::string value(reinterpret_cast<const char*>(data) + 1 + key_len, size - 1 - key_len);

  uint64_t ns = 0;
  Hash128 k;
  if (DecodeIndexKey(key, &ns, &k)) Check(EncodeIndexKey(ns, k) == key);

  NvmeLocation loc;
  if (DecodeLocation(value, &loc)) {
    const std::string again = EncodeLocation(loc);
    Check(again.size() == value.size());
    std::string norm = value;
    norm[2] = norm[2] != 0 ? 1 : 0;  // has_tokens
    norm[3] = 0;                     // reserved
    Check(again == norm);
    NvmeLocation twice;
    Check(DecodeLocation(again, &twice) && SameLocation(loc, twice));
    Check(loc.codec == Codec::kNone || loc.codec == Codec::kZstd);
  }
  return 0;
}
