// Deterministic block bytes for benchmarks, demos and tests: bytes that depend on (seed, i) and
// differ between seeds, so a block served in place of another is caught byte for byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kvt {

inline std::vector<uint8_t> PatternBytes(uint64_t seed, size_t n) {
  std::vector<uint8_t> v(n);
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v[i] = static_cast<uint8_t>(x);
  }
  return v;
}

}  // namespace kvt
