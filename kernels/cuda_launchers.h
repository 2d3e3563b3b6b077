// CUDA launchers: enqueue a kernel on an explicit stream and return the launch's cudaError_t.
// They assume validated arguments (gpu_kernels.cc validates and converts to Status); a shape they
// cannot run (unsupported head dim, misaligned rows, too small a workspace) is
// cudaErrorInvalidValue, nothing enqueued. Host-only header; needs the CUDA runtime headers.
//
// Thread safety: stateless; any thread, any stream.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/kv_layout.h"
#include "kernels/paged_attention.h"

namespace kvt::cuda {

cudaError_t LaunchGatherBlocks(const PagedKvLayout& engine, const int32_t* block_ids, int64_t n,
                               const PayloadSlots& dst, LayerRange layers, cudaStream_t stream);
cudaError_t LaunchScatterBlocks(const PayloadSlots& src, const PagedKvLayout& engine,
                                const int32_t* block_ids, int64_t n, LayerRange layers,
                                cudaStream_t stream);

cudaError_t LaunchQuantizeBlocks(const BlockLayout& src, int64_t num_blocks, const void* in,
                                 DType q_dtype, void* out, float* scales, cudaStream_t stream);
cudaError_t LaunchDequantizeBlocks(const BlockLayout& q, int64_t num_blocks, const void* in,
                                   const float* scales, DType out_dtype, void* out,
                                   cudaStream_t stream);

bool AttentionHeadDimSupported(int32_t head_dim);
// Scratch bytes for the split-context path with `sm_count` SMs (0: no split).
size_t PagedAttentionWorkspaceBytes(const PagedAttentionParams& p, int sm_count);
cudaError_t LaunchPagedAttention(const PagedAttentionParams& p, void* workspace,
                                 size_t workspace_bytes, cudaStream_t stream);

}  // namespace kvt::cuda
