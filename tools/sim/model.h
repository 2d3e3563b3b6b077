// What the simulator needs to turn blocks into bytes and seconds: the model's KV geometry (a preset
// or explicit, via the engine's Geometry), the GPU's prefill speed, link bandwidths, and parsers for
// the capacity / bandwidth / count syntax of the command line.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "src/block_key.h"

namespace kvt::sim {

struct ModelPreset {
  const char* name;
  const char* note;
  uint32_t layers, kv_heads, head_dim;
  bool mla;
  double active_params;  // parameters used per token (MoE: active), for FLOPs per token
};
const std::vector<ModelPreset>& ModelPresets();

struct GpuPreset {
  const char* name;
  double dense_bf16_flops;  // peak dense bf16/fp16 tensor FLOP/s
};
const std::vector<GpuPreset>& GpuPresets();

struct ModelSpec {
  std::string name = "llama-3-70b";
  Geometry geometry;           // block_tokens set from the trace's block size
  double active_params = 70.6e9;
  uint64_t kv_bytes_per_token() const {
    return geometry.block_tokens ? geometry.BlockBytes() / geometry.block_tokens : 0;
  }
};

// A preset by name (case-insensitive; "-" and "_" and "." ignored), with dtype and block_tokens.
StatusOr<ModelSpec> ModelFromPreset(std::string_view name, DType dtype, uint32_t block_tokens);
// "layers=80,kv_heads=8,head_dim=128[,dtype=bf16][,mla][,params=70e9]".
StatusOr<ModelSpec> ModelFromGeometry(std::string_view spec, DType dtype, uint32_t block_tokens);
StatusOr<const GpuPreset*> FindGpu(std::string_view name);

// Tier capacity as written on the command line, resolved to blocks once the block size is known.
struct Capacity {
  enum class Unit { kBlocks, kTokens, kBytes, kInfinite } unit = Unit::kInfinite;
  double value = 0;
  uint64_t Blocks(uint64_t block_bytes, uint32_t block_tokens) const;
  std::string ToString() const;
};
// "1000blk", "1000blocks", "3Mtok", "3e6tokens", "512GiB", "1TB", "inf". Counts take k/M/G (10^3)
// multipliers and exponents; bytes use ParseBytes.
StatusOr<Capacity> ParseCapacity(std::string_view text);
// "3M", "1.5k", "2e6", "12000" -> a non-negative count.
StatusOr<double> ParseCount(std::string_view text);
// Bytes per second: "50GB/s", "12.5GiB/s", "100Gbit/s", "100Gbps", "400Mbps".
StatusOr<double> ParseBandwidth(std::string_view text);
std::string FormatRate(double bytes_per_s);
std::string FormatSeconds(double s);
std::string FormatCount(double v);  // 3000000 -> "3M"

}  // namespace kvt::sim
