// Helpers shared by the CPU kernel tests and the GPU kernel tests: random KV data in any dtype,
// paged caches with shuffled block tables, and a dense attention written independently of the
// paged code.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/dtype.h"
#include "kernels/float_convert.h"
#include "kernels/kv_layout.h"

namespace kvt::testing {

// n elements of dtype t drawn from N(0, sigma), stored as raw bytes.
inline std::vector<uint8_t> RandomElems(std::mt19937& rng, DType t, int64_t n, float sigma = 1.0f) {
  std::normal_distribution<float> nd(0.0f, sigma);
  std::vector<uint8_t> out(static_cast<size_t>(n * DTypeSize(t)));
  for (int64_t i = 0; i < n; ++i) StoreFromF32(out.data(), i, t, nd(rng));
  return out;
}

inline std::vector<uint8_t> RandomBytes(std::mt19937& rng, size_t n) {
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

// A paged cache for one layer that holds `num_seqs` contexts: dense per-sequence K/V
// [ctx][kv_heads][head_dim] scattered over shuffled physical blocks.
struct PagedContexts {
  int32_t kv_heads = 0, head_dim = 0, block_tokens = 0, max_blocks_per_seq = 0;
  int64_t num_cache_blocks = 0;
  DType dtype = DType::kFp16;
  std::vector<int32_t> lens;
  std::vector<std::vector<float>> dense_k, dense_v;  // exact values of the stored elements
  std::vector<int32_t> table;                         // [num_seqs][max_blocks_per_seq]
  std::vector<uint8_t> k_cache, v_cache;             // [num_cache_blocks][bt][kv_heads][d] (NHD)

  int64_t row_elems() const { return static_cast<int64_t>(kv_heads) * head_dim; }
  PagedLayer Layer() {
    PagedLayer p;
    p.k = k_cache.data();
    p.v = v_cache.data();
    p.head_stride = head_dim;
    p.token_stride = row_elems();
    p.block_stride = block_tokens * row_elems();
    return p;
  }
};

inline PagedContexts MakePagedContexts(std::mt19937& rng, DType dtype, int32_t kv_heads,
                                       int32_t head_dim, int32_t block_tokens,
                                       const std::vector<int32_t>& lens) {
  PagedContexts c;
  c.kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.block_tokens = block_tokens;
  c.dtype = dtype;
  c.lens = lens;
  int32_t total_blocks = 0;
  for (int32_t len : lens) {
    const int32_t nb = (len + block_tokens - 1) / block_tokens;
    c.max_blocks_per_seq = std::max(c.max_blocks_per_seq, nb);
    total_blocks += nb;
  }
  c.max_blocks_per_seq = std::max(c.max_blocks_per_seq, 1);
  c.num_cache_blocks = total_blocks + 3;  // spare blocks hold garbage no table points at
  std::vector<int32_t> phys(static_cast<size_t>(c.num_cache_blocks));
  std::iota(phys.begin(), phys.end(), 0);
  std::shuffle(phys.begin(), phys.end(), rng);
  const int64_t eb = DTypeSize(dtype);
  const int64_t cache_elems = c.num_cache_blocks * block_tokens * c.row_elems();
  c.k_cache = RandomElems(rng, dtype, cache_elems, 3.0f);  // garbage outside the contexts
  c.v_cache = RandomElems(rng, dtype, cache_elems, 3.0f);
  c.table.assign(static_cast<size_t>(lens.size()) * c.max_blocks_per_seq, -1);
  size_t next = 0;
  for (size_t s = 0; s < lens.size(); ++s) {
    const int32_t len = lens[s];
    const int32_t nb = (len + block_tokens - 1) / block_tokens;
    for (int32_t b = 0; b < nb; ++b) c.table[s * c.max_blocks_per_seq + b] = phys[next++];
    const int64_t n = static_cast<int64_t>(len) * c.row_elems();
    std::vector<uint8_t> k = RandomElems(rng, dtype, n), v = RandomElems(rng, dtype, n);
    std::vector<float> dk(static_cast<size_t>(n)), dv(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      dk[i] = LoadAsF32(k.data(), i, dtype);
      dv[i] = LoadAsF32(v.data(), i, dtype);
    }
    for (int32_t t = 0; t < len; ++t) {
      const int64_t blk = c.table[s * c.max_blocks_per_seq + t / block_tokens];
      const int64_t dst = (blk * block_tokens + t % block_tokens) * c.row_elems() * eb;
      const size_t bytes = static_cast<size_t>(c.row_elems() * eb);
      std::memcpy(&c.k_cache[dst], &k[t * c.row_elems() * eb], bytes);
      std::memcpy(&c.v_cache[dst], &v[t * c.row_elems() * eb], bytes);
    }
    c.dense_k.push_back(std::move(dk));
    c.dense_v.push_back(std::move(dv));
  }
  return c;
}

// Dense attention in double for one sequence and query head: the "naive" side of the tests.
inline std::vector<double> DenseAttention(const std::vector<float>& q, const std::vector<float>& k,
                                          const std::vector<float>& v, int32_t len,
                                          int32_t kv_heads, int32_t kvh, int32_t d, double scale) {
  std::vector<double> out(d, 0.0);
  if (len == 0) return out;
  std::vector<double> s(len);
  double mx = -INFINITY;
  for (int32_t t = 0; t < len; ++t) {
    double dot = 0.0;
    for (int32_t i = 0; i < d; ++i) dot += double(q[i]) * k[(int64_t(t) * kv_heads + kvh) * d + i];
    s[t] = dot * scale;
    mx = std::max(mx, s[t]);
  }
  double sum = 0.0;
  for (auto& x : s) sum += (x = std::exp(x - mx));
  for (int32_t t = 0; t < len; ++t) {
    for (int32_t i = 0; i < d; ++i) out[i] += s[t] / sum * v[(int64_t(t) * kv_heads + kvh) * d + i];
  }
  return out;
}

// Half an ulp of a value of magnitude |x| in dtype t (0 for fp32): the output rounding allowance.
inline double HalfUlp(DType t, double x) {
  const int mant = t == DType::kFp16 ? 10 : (t == DType::kBf16 ? 7 : -1);
  if (mant < 0) return 0.0;
  int e = 0;
  std::frexp(std::max(std::fabs(x), t == DType::kFp16 ? 6.103515625e-05 : 1e-38), &e);
  return std::ldexp(1.0, e - 1 - mant - 1);
}

}  // namespace kvt::testing
