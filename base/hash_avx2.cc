// The AVX2 build of XXH3-64. This file alone is compiled with -mavx2 (see base/CMakeLists.txt);
// base/hash.cc calls it only after checking the CPU supports AVX2.
#include <cstddef>
#include <cstdint>

#define XXH_INLINE_ALL
#define XXH_VECTOR XXH_AVX2
#include <xxhash.h>

#include <cstring>

namespace kvt {
uint64_t Checksum64Avx2(const void* data, size_t len) { return XXH3_64bits(data, len); }

// Chunks of 16 KiB: copied, then hashed while in L1 (half of a 32 KiB L1d, leaving room for the
// source stream). A multiple of XXH3's 1 KiB stripe block, so the state never buffers a partial one.
uint64_t CopyWithChecksum64Avx2(void* dst, const void* src, size_t len) {
  constexpr size_t kChunk = 16 << 10;
  if (len <= kChunk) {
    if (len != 0) std::memcpy(dst, src, len);  // memcpy of null pointers is UB even for 0
    return XXH3_64bits(dst, len);
  }
  XXH3_state_t st;
  XXH3_64bits_reset(&st);
  auto* d = static_cast<uint8_t*>(dst);
  const auto* s = static_cast<const uint8_t*>(src);
  for (size_t off = 0; off < len; off += kChunk) {
    const size_t n = len - off < kChunk ? len - off : kChunk;
    std::memcpy(d + off, s + off, n);
    XXH3_64bits_update(&st, d + off, n);
  }
  return XXH3_64bits_digest(&st);
}
}  // namespace kvt
