// The AVX2 build of XXH3-64. This file alone is compiled with -mavx2 (see base/CMakeLists.txt);
// base/hash.cc calls it only after checking the CPU supports AVX2.
#include <cstddef>
#include <cstdint>

#define XXH_INLINE_ALL
#define XXH_VECTOR XXH_AVX2
#include <xxhash.h>

namespace kvt {
uint64_t Checksum64Avx2(const void* data, size_t len) { return XXH3_64bits(data, len); }
}  // namespace kvt
