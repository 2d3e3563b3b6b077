// The GPU kernels behind a plain C++ header that returns Status, so tiers and the store include it
// without CUDA headers and compile the same with and without KVT_WITH_CUDA.
//
// Every call validates its arguments on the host (InvalidArgument, nothing enqueued), then enqueues
// work on `stream` and returns without waiting: a Status from here covers the launch, and faults
// during execution surface at the caller's next synchronization on that stream. All pointers,
// including the pointer arrays inside PagedKvLayout and PayloadSlots, must be device-accessible.
// Without KVT_WITH_CUDA every call returns Unavailable ("built without CUDA").
//
// Semantics and shapes are those of the CPU references (paged_copy.h, quantize.h,
// paged_attention.h); tests/gpu compares each call with its reference.
//
// Thread safety: stateless; calls may come from any thread. Work on one stream runs in order.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/status.h"
#include "kernels/kv_layout.h"
#include "kernels/paged_attention.h"

namespace kvt {

using GpuStream = void*;  // a cudaStream_t, passed opaquely; nullptr is the legacy default stream

// True when this build has the CUDA kernels (it says nothing about a device being present).
bool GpuKernelsBuilt();

// Head dims the GPU paged attention is compiled for: 64, 80, 96, 128, 256.
bool GpuAttentionSupportsHeadDim(int32_t head_dim);

// Gather engine blocks into payload slots / scatter payload slots into engine blocks (same
// semantics as GatherBlocksRef / ScatterBlocksRef). Ids the host cannot see are checked on the
// device: an id outside [0, num_blocks) is skipped like a negative one.
Status GatherBlocksGpu(const PagedKvLayout& engine, const int32_t* block_ids, int64_t n,
                       const PayloadSlots& dst, LayerRange layers, GpuStream stream);
Status ScatterBlocksGpu(const PayloadSlots& src, const PagedKvLayout& engine,
                        const int32_t* block_ids, int64_t n, LayerRange layers, GpuStream stream);

// The quantizing codec; produces the same bytes and scales as the CPU reference.
Status QuantizeBlocksGpu(const BlockLayout& src, int64_t num_blocks, const void* in, DType q_dtype,
                         void* out, float* scales, GpuStream stream);
Status DequantizeBlocksGpu(const BlockLayout& q, int64_t num_blocks, const void* in,
                           const float* scales, DType out_dtype, void* out, GpuStream stream);

// Device scratch PagedAttentionGpu needs for these parameters on the current device (0 when the
// context is not split). Depends on num_seqs, heads, head_dim, max_context_len and the device's SM
// count. Returns 0 without CUDA.
size_t PagedAttentionGpuWorkspaceBytes(const PagedAttentionParams& p);

// Paged decode attention (semantics: paged_attention.h). REQUIRES: every K/V row 16-byte aligned
// (base pointers and strides in bytes multiples of 16); workspace of at least
// PagedAttentionGpuWorkspaceBytes(p) bytes (may be null when that is 0), not shared with a call in
// flight on another stream.
Status PagedAttentionGpu(const PagedAttentionParams& p, void* workspace, size_t workspace_bytes,
                         GpuStream stream);

}  // namespace kvt
