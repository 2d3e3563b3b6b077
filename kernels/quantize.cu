// Launchers for the quantizing codec (device code: quantize.cuh).
#include <climits>

#include "kernels/cuda_launchers.h"
#include "kernels/quantize.cuh"

namespace kvt::cuda {
namespace {

cudaError_t Launch(bool quantize, const BlockLayout& g, int64_t num_blocks, const void* in,
                   void* out, float* scales, DType other, cudaStream_t stream) {
  const int64_t groups = num_blocks * g.scales_per_block();
  if (groups == 0) return cudaSuccess;
  if (groups > INT_MAX) return cudaErrorInvalidValue;
  const QuantArgs a{g, in, out, scales, other};
  if (quantize) {
    QuantizeKernel<<<static_cast<unsigned>(groups), kQuantThreads, 0, stream>>>(a);
  } else {
    DequantizeKernel<<<static_cast<unsigned>(groups), kQuantThreads, 0, stream>>>(a);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchQuantizeBlocks(const BlockLayout& src, int64_t num_blocks, const void* in,
                                 DType q_dtype, void* out, float* scales, cudaStream_t stream) {
  return Launch(true, src, num_blocks, in, out, scales, q_dtype, stream);
}

cudaError_t LaunchDequantizeBlocks(const BlockLayout& q, int64_t num_blocks, const void* in,
                                   const float* scales, DType out_dtype, void* out,
                                   cudaStream_t stream) {
  return Launch(false, q, num_blocks, in, out, const_cast<float*>(scales), out_dtype, stream);
}

}  // namespace kvt::cuda
