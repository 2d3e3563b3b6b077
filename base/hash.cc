#include "base/hash.h"

#include <cstring>

#include "base/copy_checksum.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace kvt {

// Defined in hash_avx2.cc, compiled with -mavx2; only called when the CPU supports AVX2.
uint64_t Checksum64Avx2(const void* data, size_t len);
uint64_t CopyWithChecksum64Avx2(void* dst, const void* src, size_t len);

namespace {
bool HaveAvx2() {
#if defined(__x86_64__)
  static const bool have = __builtin_cpu_supports("avx2");
  return have;
#else
  return false;
#endif
}
}  // namespace

uint64_t Checksum64(const void* data, size_t len) {
#if defined(__x86_64__)
  if (HaveAvx2()) return Checksum64Avx2(data, len);
#endif
  return XXH3_64bits(data, len);
}

uint64_t CopyWithChecksum64(void* dst, const void* src, size_t len) {
#if defined(__x86_64__)
  if (HaveAvx2()) return CopyWithChecksum64Avx2(dst, src, len);
#endif
  if (len != 0) std::memcpy(dst, src, len);  // memcpy of null pointers is UB even for 0
  return XXH3_64bits(dst, len);
}

const char* ChecksumImpl() { return HaveAvx2() ? "avx2" : "sse2"; }

Hash128 Hash128Of(const void* data, size_t len) {
  XXH128_hash_t h = XXH3_128bits(data, len);
  return Hash128{h.low64, h.high64};
}

Hash128 Hash128WithSecret(const void* data, size_t len, const void* secret, size_t secret_len) {
  XXH128_hash_t h = XXH3_128bits_withSecret(data, len, secret, secret_len);
  return Hash128{h.low64, h.high64};
}

void DeriveSecret(const void* material, size_t len, uint8_t out[kDerivedSecretBytes]) {
  XXH3_generateSecret(out, kDerivedSecretBytes, material, len);
}

}  // namespace kvt
