#include "tools/sim/model.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "base/units.h"

namespace kvt::sim {

const std::vector<ModelPreset>& ModelPresets() {
  // KV bytes per token = layers * tensors(2, MLA 1) * kv_heads * head_dim * dtype bytes.
  static const std::vector<ModelPreset> kPresets = {
      {"llama-3-8b", "GQA 32x8x128", 32, 8, 128, false, 8.0e9},
      {"llama-3-70b", "GQA 80x8x128 (320 KiB/token in bf16, the Mooncake paper's model)", 80, 8,
       128, false, 70.6e9},
      {"llama-3.1-405b", "GQA 126x8x128", 126, 8, 128, false, 405e9},
      {"qwen2.5-7b", "GQA 28x4x128", 28, 4, 128, false, 7.6e9},
      {"qwen2.5-72b", "GQA 80x8x128", 80, 8, 128, false, 72.7e9},
      {"mistral-7b", "GQA 32x8x128", 32, 8, 128, false, 7.2e9},
      {"llama-2-7b", "MHA 32x32x128", 32, 32, 128, false, 6.7e9},
      {"deepseek-v3", "MLA 61 layers x (512 latent + 64 rope), 37B active of 671B", 61, 1, 576,
       true, 37e9},
      {"deepseek-v2-lite", "MLA 27 layers x (512 latent + 64 rope), 2.4B active", 27, 1, 576, true,
       2.4e9},
  };
  return kPresets;
}

const std::vector<GpuPreset>& GpuPresets() {
  static const std::vector<GpuPreset> kGpus = {
      {"h100", 989e12}, {"h200", 989e12}, {"h800", 989e12}, {"h20", 148e12},
      {"a100", 312e12}, {"a800", 312e12}, {"l40s", 362e12}, {"b200", 2250e12},
  };
  return kGpus;
}

namespace {

std::string Canon(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '-' || c == '_' || c == '.') continue;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

bool IStartsWithDigit(std::string_view s) {
  return !s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '.');
}

// Splits "a=1,b=2,c" into pairs; a bare word has an empty value.
std::vector<std::pair<std::string, std::string>> SplitKv(std::string_view spec) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t comma = spec.find(',', start);
    if (comma == std::string_view::npos) comma = spec.size();
    std::string_view part = spec.substr(start, comma - start);
    if (!part.empty()) {
      size_t eq = part.find('=');
      if (eq == std::string_view::npos) {
        out.emplace_back(std::string(part), "");
      } else {
        out.emplace_back(std::string(part.substr(0, eq)), std::string(part.substr(eq + 1)));
      }
    }
    start = comma + 1;
  }
  return out;
}

}  // namespace

StatusOr<ModelSpec> ModelFromPreset(std::string_view name, DType dtype, uint32_t block_tokens) {
  const std::string want = Canon(name);
  std::string known;
  for (const ModelPreset& p : ModelPresets()) {
    if (Canon(p.name) == want) {
      ModelSpec m;
      m.name = p.name;
      m.geometry.layers = p.layers;
      m.geometry.kv_heads = p.kv_heads;
      m.geometry.head_dim = p.head_dim;
      m.geometry.mla = p.mla;
      m.geometry.dtype = dtype;
      m.geometry.block_tokens = block_tokens;
      m.active_params = p.active_params;
      return m;
    }
    known += known.empty() ? "" : ", ";
    known += p.name;
  }
  return Status::InvalidArgument("unknown model '" + std::string(name) + "' (presets: " + known +
                                 "; or use --geometry)");
}

StatusOr<ModelSpec> ModelFromGeometry(std::string_view spec, DType dtype, uint32_t block_tokens) {
  ModelSpec m;
  m.name = "custom";
  m.geometry.dtype = dtype;
  m.geometry.block_tokens = block_tokens;
  m.active_params = 0;
  for (const auto& [k, v] : SplitKv(spec)) {
    auto u32 = [&, &v = v, &k = k](uint32_t* dst) -> Status {
      auto n = ParseUint(v);
      if (!n.ok() || *n == 0 || *n > UINT32_MAX) {
        return Status::InvalidArgument("--geometry " + k + "='" + v + "' is not a positive integer");
      }
      *dst = static_cast<uint32_t>(*n);
      return Status::Ok();
    };
    if (k == "layers") {
      KVT_RETURN_IF_ERROR(u32(&m.geometry.layers));
    } else if (k == "kv_heads") {
      KVT_RETURN_IF_ERROR(u32(&m.geometry.kv_heads));
    } else if (k == "head_dim") {
      KVT_RETURN_IF_ERROR(u32(&m.geometry.head_dim));
    } else if (k == "dtype") {
      KVT_ASSIGN_OR_RETURN(m.geometry.dtype, ParseKvDType(v));
    } else if (k == "mla" && v.empty()) {
      m.geometry.mla = true;
    } else if (k == "params") {
      KVT_ASSIGN_OR_RETURN(m.active_params, ParseCount(v));
    } else if (k == "name") {
      m.name = v;
    } else {
      return Status::InvalidArgument("--geometry: unknown field '" + k +
                                     "' (layers, kv_heads, head_dim, dtype, mla, params, name)");
    }
  }
  if (m.geometry.mla && m.geometry.kv_heads == 0) m.geometry.kv_heads = 1;
  if (!m.geometry.layers || !m.geometry.kv_heads || !m.geometry.head_dim) {
    return Status::InvalidArgument("--geometry needs layers, kv_heads and head_dim, e.g. "
                                   "layers=80,kv_heads=8,head_dim=128");
  }
  return m;
}

StatusOr<const GpuPreset*> FindGpu(std::string_view name) {
  std::string known;
  for (const GpuPreset& g : GpuPresets()) {
    if (Canon(g.name) == Canon(name)) return &g;
    known += known.empty() ? "" : ", ";
    known += g.name;
  }
  return Status::InvalidArgument("unknown GPU '" + std::string(name) + "' (presets: " + known +
                                 "; or use --prefill-tps)");
}

StatusOr<double> ParseCount(std::string_view text) {
  const std::string shown = "'" + std::string(text) + "'";
  if (!IStartsWithDigit(text)) return Status::InvalidArgument(shown + " is not a number");
  std::string s(text);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (errno || end == s.c_str() || !std::isfinite(v) || v < 0) {
    return Status::InvalidArgument(shown + " is not a number");
  }
  std::string_view rest(end);
  if (rest == "k" || rest == "K") v *= 1e3;
  else if (rest == "M" || rest == "m") v *= 1e6;
  else if (rest == "G" || rest == "B" || rest == "g") v *= 1e9;
  else if (rest == "T") v *= 1e12;
  else if (!rest.empty())
    return Status::InvalidArgument(shown + ": unknown multiplier '" + std::string(rest) +
                                   "' (use k, M, G, T)");
  return v;
}

uint64_t Capacity::Blocks(uint64_t block_bytes, uint32_t block_tokens) const {
  switch (unit) {
    case Unit::kInfinite:
      return UINT64_MAX;
    case Unit::kBlocks:
      return static_cast<uint64_t>(value);
    case Unit::kTokens:
      return block_tokens ? static_cast<uint64_t>(value / block_tokens) : 0;
    case Unit::kBytes:
      return block_bytes ? static_cast<uint64_t>(value / static_cast<double>(block_bytes)) : 0;
  }
  return 0;
}

std::string Capacity::ToString() const {
  switch (unit) {
    case Unit::kInfinite:
      return "inf";
    case Unit::kBlocks:
      return FormatCount(value) + " blocks";
    case Unit::kTokens:
      return FormatCount(value) + " tokens";
    case Unit::kBytes:
      return FormatBytes(static_cast<uint64_t>(value));
  }
  return "?";
}

StatusOr<Capacity> ParseCapacity(std::string_view text) {
  Capacity c;
  if (text == "inf" || text == "infinite" || text == "unlimited") return c;
  struct Suffix {
    const char* s;
    Capacity::Unit unit;
  };
  static const Suffix kSuffixes[] = {
      {"blocks", Capacity::Unit::kBlocks}, {"block", Capacity::Unit::kBlocks},
      {"blk", Capacity::Unit::kBlocks},    {"tokens", Capacity::Unit::kTokens},
      {"token", Capacity::Unit::kTokens},  {"tok", Capacity::Unit::kTokens},
  };
  for (const Suffix& s : kSuffixes) {
    std::string_view sv(s.s);
    if (text.size() > sv.size() && text.substr(text.size() - sv.size()) == sv) {
      KVT_ASSIGN_OR_RETURN(c.value, ParseCount(text.substr(0, text.size() - sv.size())));
      c.unit = s.unit;
      return c;
    }
  }
  auto b = ParseBytes(text);
  if (!b.ok()) {
    return Status::InvalidArgument("capacity '" + std::string(text) +
                                   "' is not blocks (1000blk), tokens (3Mtok), bytes (512GiB, "
                                   "1TB) or inf");
  }
  c.unit = Capacity::Unit::kBytes;
  c.value = static_cast<double>(*b);
  return c;
}

StatusOr<double> ParseBandwidth(std::string_view text) {
  std::string_view t = text;
  auto ends = [&](std::string_view suf) {
    return t.size() > suf.size() && t.substr(t.size() - suf.size()) == suf;
  };
  double bits = 0;
  if (ends("bit/s")) {
    t.remove_suffix(5), bits = 1;
  } else if (ends("bps")) {
    t.remove_suffix(3), bits = 1;
  } else if (ends("/s")) {
    t.remove_suffix(2);
  }
  if (bits) {
    // "100G" / "400M" bits: decimal multipliers.
    KVT_ASSIGN_OR_RETURN(double v, ParseCount(t));
    if (v <= 0) return Status::InvalidArgument("bandwidth '" + std::string(text) + "' is zero");
    return v / 8;
  }
  auto b = ParseBytes(t);
  if (!b.ok() || *b == 0) {
    return Status::InvalidArgument("bandwidth '" + std::string(text) +
                                   "' is not e.g. 50GB/s, 12GiB/s, 100Gbit/s or 100Gbps");
  }
  return static_cast<double>(*b);
}

std::string FormatRate(double bps) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f GB/s", bps / 1e9);
  return buf;
}

std::string FormatSeconds(double s) {
  char buf[64];
  if (s < 1e-3) std::snprintf(buf, sizeof buf, "%.0f us", s * 1e6);
  else if (s < 1) std::snprintf(buf, sizeof buf, "%.1f ms", s * 1e3);
  else std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}

std::string FormatCount(double v) {
  char buf[64];
  const struct {
    double m;
    const char* s;
  } kUnits[] = {{1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}};
  for (const auto& u : kUnits) {
    if (v >= u.m) {
      double x = v / u.m;
      if (x == std::floor(x)) std::snprintf(buf, sizeof buf, "%.0f%s", x, u.s);
      else std::snprintf(buf, sizeof buf, "%.3g%s", x, u.s);
      return buf;
    }
  }
  std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

}  // namespace kvt::sim
