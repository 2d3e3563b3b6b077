// XXH3 hashing used for payload checksums (64-bit) and block keys (128-bit).
//
// Checksums run over every byte kvtier moves, so they pick the AVX2 code path at run time when the
// CPU has it (Debian's libxxhash is built for baseline x86-64 and runs about 3x slower). Results
// are identical on every code path and every machine: XXH3 is a specified function.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvt {

struct Hash128 {
  uint64_t lo = 0;
  uint64_t hi = 0;
  bool operator==(const Hash128&) const = default;
};

// XXH3-64 of a buffer, seed 0.
uint64_t Checksum64(const void* data, size_t len);

// XXH3-128 of a buffer, seed 0.
Hash128 Hash128Of(const void* data, size_t len);

// XXH3-128 with a custom secret (keyed mode). REQUIRES: secret_len >= 136 (XXH3_SECRET_SIZE_MIN).
Hash128 Hash128WithSecret(const void* data, size_t len, const void* secret, size_t secret_len);

// Derives an XXH3 secret of kDerivedSecretBytes from arbitrary seed material.
constexpr size_t kDerivedSecretBytes = 192;
void DeriveSecret(const void* material, size_t len, uint8_t out[kDerivedSecretBytes]);

// Which checksum code path this process uses ("avx2" or "sse2"), for stats and benchmarks.
const char* ChecksumImpl();

}  // namespace kvt
