// The decode harness: how well layer-wise prefetch hides KV transfers behind decode attention.
//
// A store with an HBM tier (a GPU, or emulated in host memory) holds the KV of `seqs` contexts;
// each step starts with a part of every context on NVMe (the oldest nvme_fraction of its blocks)
// and the rest in the host tier, nothing in HBM. One decode step = paged attention for every layer
// over all contexts, reading K/V in place from the HBM pool through a block table. Per step:
//   transfer    prefetch to HBM and wait for all layers (no compute)
//   serialized  prefetch, wait for all layers, then compute every layer
//   overlapped  prefetch; for each layer: wait for that layer, compute it (copies of later layers
//               run meanwhile)
//   compute     attention over blocks already resident (no transfer)
// overlap efficiency = overlapped / max(compute, transfer): 1.0 is perfect hiding; serialized
// sits near (compute + transfer) / max(...).
//
// The attention outputs of every layer are checked against the CPU reference over the original
// payloads (bitwise on the emulated device; within the GPU kernel's stated tolerance on a GPU).
//
// Thread safety: one harness per thread.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "base/status.h"
#include "kernels/dtype.h"

namespace kvt {

struct DecodeConfig {
  int32_t layers = 8, kv_heads = 2, q_heads = 8, head_dim = 64, block_tokens = 16;
  DType dtype = DType::kFp16;  // fp16 | bf16
  int32_t seqs = 4;
  int32_t context_tokens = 512;  // per sequence; rounded down to whole blocks
  double nvme_fraction = 0.5;    // of each context's blocks, the oldest, start on NVMe
  int steps = 5;                 // timed steps (after one warm-up step)
  std::string dir;               // store directory; empty: a fresh one under /tmp, removed after
};

struct DecodeResult {
  std::string device;
  bool emulated = true;
  uint64_t blocks = 0, nvme_blocks = 0, block_bytes = 0;
  double compute_ms = 0, transfer_ms = 0, serialized_ms = 0, overlapped_ms = 0;  // medians
  double max_abs_err = 0;  // attention outputs vs the CPU reference

  double Efficiency(double step_ms) const {
    const double bound = compute_ms > transfer_ms ? compute_ms : transfer_ms;
    return bound > 0 ? step_ms / bound : 0;
  }
};

// Runs the harness; progress lines go to `log` (may be null). InvalidArgument for a bad config;
// Internal when an output disagrees with the reference.
Status RunDecodeHarness(const DecodeConfig& c, DecodeResult* out, std::ostream* log);

}  // namespace kvt
