// kvtier-decode: the decode harness (see decode_harness.h) from the command line.
//   kvtier-decode [--preset small|default|llama8b] [--layers N] [--kv-heads N] [--q-heads N]
//                 [--head-dim N] [--block-tokens N] [--dtype fp16|bf16] [--seqs N]
//                 [--context TOKENS] [--nvme-fraction F] [--steps N] [--dir DIR] [--json]
// Exit: 0 done (outputs verified), 1 failure, 2 bad usage.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "tools/kvtier-decode/decode_harness.h"

namespace {

int Usage(const char* why) {
  std::fprintf(stderr,
               "kvtier-decode: %s\n"
               "usage: kvtier-decode [--preset small|default|llama8b] [--layers N] [--kv-heads N]\n"
               "  [--q-heads N] [--head-dim N] [--block-tokens N] [--dtype fp16|bf16] [--seqs N]\n"
               "  [--context TOKENS] [--nvme-fraction F] [--steps N] [--dir DIR] [--json]\n",
               why);
  return 2;
}

bool ParseInt(const char* s, int32_t* out) {
  char* end = nullptr;
  long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v <= 0 || v > (1 << 30)) return false;
  *out = static_cast<int32_t>(v);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  kvt::DecodeConfig c;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json") {
      json = true;
      continue;
    }
    if (i + 1 >= argc) return Usage(("missing value for " + a).c_str());
    const char* v = argv[++i];
    int32_t n = 0;
    auto num = [&](int32_t* field) {
      if (!ParseInt(v, &n)) return false;
      *field = n;
      return true;
    };
    bool ok = true;
    if (a == "--preset") {
      const std::string p = v;
      if (p == "small") {  // seconds on one CPU core: the ctest configuration
        c.layers = 4, c.kv_heads = 2, c.q_heads = 4, c.head_dim = 64, c.block_tokens = 16;
        c.seqs = 2, c.context_tokens = 128, c.steps = 2;
      } else if (p == "llama8b") {  // Llama-3-8B KV geometry: 2 MiB blocks
        c.layers = 32, c.kv_heads = 8, c.q_heads = 32, c.head_dim = 128, c.block_tokens = 16;
        c.seqs = 8, c.context_tokens = 1024, c.steps = 5;
      } else if (p != "default") {
        ok = false;
      }
    } else if (a == "--layers") ok = num(&c.layers);
    else if (a == "--kv-heads") ok = num(&c.kv_heads);
    else if (a == "--q-heads") ok = num(&c.q_heads);
    else if (a == "--head-dim") ok = num(&c.head_dim);
    else if (a == "--block-tokens") ok = num(&c.block_tokens);
    else if (a == "--seqs") ok = num(&c.seqs);
    else if (a == "--context") ok = num(&c.context_tokens);
    else if (a == "--steps") {
      int32_t s = 0;
      ok = ParseInt(v, &s);
      c.steps = s;
    } else if (a == "--dtype") {
      ok = kvt::ParseDType(v, &c.dtype);
    } else if (a == "--nvme-fraction") {
      char* end = nullptr;
      c.nvme_fraction = std::strtod(v, &end);
      ok = end != v && *end == '\0';
    } else if (a == "--dir") {
      c.dir = v;
    } else {
      return Usage(("unknown argument " + a).c_str());
    }
    if (!ok) return Usage(("bad value '" + std::string(v) + "' for " + a).c_str());
  }
  kvt::DecodeResult r;
  kvt::Status st = kvt::RunDecodeHarness(c, &r, json ? nullptr : &std::cout);
  if (!st.ok()) {
    std::fprintf(stderr, "kvtier-decode: %s\n", st.ToString().c_str());
    return 1;
  }
  const double bytes = double(r.blocks) * r.block_bytes;
  if (json) {
    std::printf(
        "{\"device\":\"%s\",\"emulated\":%s,\"blocks\":%llu,\"nvme_blocks\":%llu,"
        "\"block_bytes\":%llu,\"compute_ms\":%.3f,\"transfer_ms\":%.3f,\"serialized_ms\":%.3f,"
        "\"overlapped_ms\":%.3f,\"overlap_efficiency\":%.3f,\"serialized_efficiency\":%.3f,"
        "\"max_abs_err\":%.3g}\n",
        r.device.c_str(), r.emulated ? "true" : "false", (unsigned long long)r.blocks,
        (unsigned long long)r.nvme_blocks, (unsigned long long)r.block_bytes, r.compute_ms,
        r.transfer_ms, r.serialized_ms, r.overlapped_ms, r.Efficiency(r.overlapped_ms),
        r.Efficiency(r.serialized_ms), r.max_abs_err);
    return 0;
  }
  std::printf("medians over %d steps:\n", c.steps);
  std::printf("  compute only          %9.2f ms\n", r.compute_ms);
  std::printf("  transfer only         %9.2f ms  (%.2f GB/s NVMe+host -> %s)\n", r.transfer_ms,
              bytes / (r.transfer_ms * 1e-3) / 1e9, r.emulated ? "emulated HBM" : "HBM");
  std::printf("  serialized step       %9.2f ms  (efficiency %.2f)\n", r.serialized_ms,
              r.Efficiency(r.serialized_ms));
  std::printf("  layer-wise overlapped %9.2f ms  (overlap efficiency %.2f = step / max(compute, "
              "transfer); 1.00 is perfect)\n",
              r.overlapped_ms, r.Efficiency(r.overlapped_ms));
  std::printf("  outputs verified against the CPU reference (max |err| %.3g)\n", r.max_abs_err);
  return 0;
}
