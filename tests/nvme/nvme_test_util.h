// Helpers shared by the NVMe tier tests: deterministic blocks, small options, du.
#pragma once

#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "kernels/kv_sample.h"
#include "base/hash.h"
#include "io/aligned_buffer.h"
#include "tiers/policy/block_meta.h"
#include "tiers/nvme/nvme_options.h"

namespace kvt::testing {

inline Hash128 KeyOf(uint64_t i) { return Hash128{i * 0x9e3779b97f4a7c15ull + 1, i ^ 0xabcdef}; }

// Payload bytes of block i: a function of (ns, i, version) so any read can be checked exactly.
inline void FillBlock(uint64_t ns, uint64_t i, uint32_t version, uint8_t* p, size_t n) {
  std::mt19937_64 rng(ns * 1000003 + i * 7919 + version);
  size_t k = 0;
  for (; k + 8 <= n; k += 8) {
    uint64_t v = rng();
    std::memcpy(p + k, &v, 8);
  }
  for (; k < n; ++k) p[k] = static_cast<uint8_t>(rng());
}

inline BlockMeta MetaOf(uint64_t ns, uint64_t i, uint32_t bytes, const uint8_t* payload) {
  BlockMeta m;
  m.ns = ns;
  m.key = KeyOf(i);
  m.parent = i == 0 ? Hash128{} : KeyOf(i - 1);
  m.has_tokens = (i % 2) == 0;
  m.tokens_digest = Hash128{i, ns};
  m.payload_bytes = bytes;
  m.checksum = payload != nullptr ? Checksum64(payload, bytes) : 0;
  return m;
}

// An aligned slot big enough for `bytes`, like a host pool slot.
inline AlignedBuffer Slot(size_t bytes) {
  auto b = AlignedBuffer::Allocate(bytes, false);
  return std::move(b).value();
}

inline NvmeOptions SmallOptions(const std::string& dir, uint64_t segments = 8,
                                uint64_t segment_bytes = 256 << 10) {
  NvmeOptions o;
  o.dir = dir;
  o.segment_bytes = segment_bytes;
  o.budget_bytes = segments * segment_bytes;
  o.io_depth = 16;
  return o;
}

// Bytes allocated on disk under `path` (what du counts).
inline uint64_t DiskUsage(const std::string& path, bool segments_only = false) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(path)) {
    struct stat st;
    if (::lstat(e.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (segments_only && e.path().filename().string().rfind("seg-", 0) != 0) continue;
    total += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return total;
}

// KV-like fp16 data: normal(0, 1) values rounded to fp16 (kernels/kv_sample.h).
inline void FillFp16(uint8_t* p, size_t n, uint64_t seed) { FillKvLike(p, n, seed); }

}  // namespace kvt::testing
