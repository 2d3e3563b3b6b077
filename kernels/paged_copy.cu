// Launchers for gather/scatter (device code: paged_copy.cuh).
#include <climits>

#include "kernels/cuda_launchers.h"
#include "kernels/paged_copy.cuh"

namespace kvt::cuda {
namespace {

template <bool kToPayload>
cudaError_t Launch(const PagedKvLayout& e, const int32_t* ids, int64_t n, const PayloadSlots& s,
                   LayerRange layers, cudaStream_t stream) {
  const int64_t units = n * layers.count * e.geo.tensors();
  if (units == 0) return cudaSuccess;
  if (units > INT_MAX) return cudaErrorInvalidValue;
  CopyArgs a{};
  a.geo = e.geo;
  a.k_layers = e.k_layers;
  a.v_layers = e.v_layers;
  a.num_blocks = e.num_blocks;
  a.block_stride = e.block_stride;
  a.token_stride = e.token_stride;
  a.head_stride = e.head_stride;
  a.block_ids = ids;
  a.payload_base = static_cast<uint8_t*>(s.base);
  a.slot_bytes = s.slot_bytes;
  a.slots = s.slots;
  a.layer_begin = layers.begin;
  a.layer_count = layers.count;
  PagedCopyKernel<kToPayload><<<static_cast<unsigned>(units), kCopyThreads, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchGatherBlocks(const PagedKvLayout& engine, const int32_t* block_ids, int64_t n,
                               const PayloadSlots& dst, LayerRange layers, cudaStream_t stream) {
  return Launch<true>(engine, block_ids, n, dst, layers, stream);
}

cudaError_t LaunchScatterBlocks(const PayloadSlots& src, const PagedKvLayout& engine,
                                const int32_t* block_ids, int64_t n, LayerRange layers,
                                cudaStream_t stream) {
  return Launch<false>(engine, block_ids, n, src, layers, stream);
}

}  // namespace kvt::cuda
