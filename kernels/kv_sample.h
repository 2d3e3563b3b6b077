// KV-like payload bytes for tests and benchmarks: normal(0, 1) values rounded to fp16 or bf16,
// what real K/V activations look like to a compressor (MACHINE_FACTS.md measures zstd on these).
// Random bytes do not compress at all and zeros compress absurdly; neither says anything about KV.
//
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "kernels/float_convert.h"

namespace kvt {

// Fills n bytes (n / 2 values of t, fp16 or bf16) deterministically from seed.
inline void FillKvLike(uint8_t* p, size_t n, uint64_t seed, DType t = DType::kFp16) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (size_t k = 0; k + 2 <= n; k += 2) StoreFromF32(p, static_cast<int64_t>(k / 2), t, d(rng));
}

inline std::vector<uint8_t> KvLikeBytes(uint64_t seed, size_t n, DType t = DType::kFp16) {
  std::vector<uint8_t> v(n);
  FillKvLike(v.data(), n, seed, t);
  return v;
}

}  // namespace kvt
