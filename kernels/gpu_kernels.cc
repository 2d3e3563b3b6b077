// Status wrappers over the CUDA launchers: validate on the host, launch, convert cudaError_t.
#include "kernels/gpu_kernels.h"

#include <cuda_runtime_api.h>

#include <string>

#include "kernels/cuda_launchers.h"
#include "kernels/validate.h"

namespace kvt {
namespace {

Status FromCuda(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return Status::Ok();
  const std::string msg = std::string(what) + ": " + cudaGetErrorName(e) + " (" +
                          cudaGetErrorString(e) + ")";
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver) return Status::Unavailable(msg);
  if (e == cudaErrorInvalidValue) return Status::InvalidArgument(msg);
  return Status::Internal(msg);
}

cudaStream_t S(GpuStream s) { return static_cast<cudaStream_t>(s); }

bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

bool GpuKernelsBuilt() { return true; }

bool GpuAttentionSupportsHeadDim(int32_t head_dim) {
  return cuda::AttentionHeadDimSupported(head_dim);
}

Status GatherBlocksGpu(const PagedKvLayout& engine, const int32_t* block_ids, int64_t n,
                       const PayloadSlots& dst, LayerRange layers, GpuStream stream) {
  KVT_RETURN_IF_ERROR(ValidateBlockCopy(engine, block_ids, n, dst, layers));
  return FromCuda(cuda::LaunchGatherBlocks(engine, block_ids, n, dst, layers, S(stream)),
                  "GatherBlocksGpu");
}

Status ScatterBlocksGpu(const PayloadSlots& src, const PagedKvLayout& engine,
                        const int32_t* block_ids, int64_t n, LayerRange layers, GpuStream stream) {
  KVT_RETURN_IF_ERROR(ValidateBlockCopy(engine, block_ids, n, src, layers));
  return FromCuda(cuda::LaunchScatterBlocks(src, engine, block_ids, n, layers, S(stream)),
                  "ScatterBlocksGpu");
}

Status QuantizeBlocksGpu(const BlockLayout& src, int64_t num_blocks, const void* in, DType q_dtype,
                         void* out, float* scales, GpuStream stream) {
  KVT_RETURN_IF_ERROR(ValidateQuantize(src, num_blocks, in, q_dtype, out, scales));
  return FromCuda(cuda::LaunchQuantizeBlocks(src, num_blocks, in, q_dtype, out, scales, S(stream)),
                  "QuantizeBlocksGpu");
}

Status DequantizeBlocksGpu(const BlockLayout& q, int64_t num_blocks, const void* in,
                           const float* scales, DType out_dtype, void* out, GpuStream stream) {
  KVT_RETURN_IF_ERROR(ValidateDequantize(q, num_blocks, in, scales, out_dtype, out));
  return FromCuda(
      cuda::LaunchDequantizeBlocks(q, num_blocks, in, scales, out_dtype, out, S(stream)),
      "DequantizeBlocksGpu");
}

size_t PagedAttentionGpuWorkspaceBytes(const PagedAttentionParams& p) {
  int dev = 0, sms = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
    (void)cudaGetLastError();  // no device: clear the sticky-free error, plan for one SM
    sms = 1;
  }
  return cuda::PagedAttentionWorkspaceBytes(p, sms);
}

Status PagedAttentionGpu(const PagedAttentionParams& p, void* workspace, size_t workspace_bytes,
                         GpuStream stream) {
  KVT_RETURN_IF_ERROR(ValidatePagedAttention(p));
  if (!cuda::AttentionHeadDimSupported(p.head_dim)) {
    return Status::InvalidArgument("PagedAttentionGpu: head_dim " + std::to_string(p.head_dim) +
                                   " not compiled (64, 80, 96, 128, 256)");
  }
  const int64_t eb = DTypeSize(p.kv_dtype);
  if (!Aligned16(p.kv.k) || !Aligned16(p.kv.v) || (p.kv.block_stride * eb) % 16 != 0 ||
      (p.kv.token_stride * eb) % 16 != 0 || (p.kv.head_stride * eb) % 16 != 0) {
    return Status::InvalidArgument("PagedAttentionGpu: K/V rows must be 16-byte aligned");
  }
  const size_t need = PagedAttentionGpuWorkspaceBytes(p);
  if (workspace_bytes < need) {
    return Status::InvalidArgument("PagedAttentionGpu: workspace " +
                                   std::to_string(workspace_bytes) + " bytes < " +
                                   std::to_string(need) + " needed");
  }
  return FromCuda(cuda::LaunchPagedAttention(p, workspace, workspace_bytes, S(stream)),
                  "PagedAttentionGpu");
}

}  // namespace kvt
