// Built when KVT_WITH_CUDA is off: the GPU entry points exist and say why they cannot run.
#include "kernels/gpu_kernels.h"

namespace kvt {
namespace {

Status NoCuda(const char* what) {
  return Status::Unavailable(std::string(what) +
                             ": kvtier was built without CUDA (KVT_WITH_CUDA=OFF)");
}

}  // namespace

bool GpuKernelsBuilt() { return false; }
bool GpuAttentionSupportsHeadDim(int32_t) { return false; }

Status GatherBlocksGpu(const PagedKvLayout&, const int32_t*, int64_t, const PayloadSlots&,
                       LayerRange, GpuStream) {
  return NoCuda("GatherBlocksGpu");
}
Status ScatterBlocksGpu(const PayloadSlots&, const PagedKvLayout&, const int32_t*, int64_t,
                        LayerRange, GpuStream) {
  return NoCuda("ScatterBlocksGpu");
}
Status QuantizeBlocksGpu(const BlockLayout&, int64_t, const void*, DType, void*, float*,
                         GpuStream) {
  return NoCuda("QuantizeBlocksGpu");
}
Status DequantizeBlocksGpu(const BlockLayout&, int64_t, const void*, const float*, DType, void*,
                           GpuStream) {
  return NoCuda("DequantizeBlocksGpu");
}
size_t PagedAttentionGpuWorkspaceBytes(const PagedAttentionParams&) { return 0; }
Status PagedAttentionGpu(const PagedAttentionParams&, void*, size_t, GpuStream) {
  return NoCuda("PagedAttentionGpu");
}

}  // namespace kvt
