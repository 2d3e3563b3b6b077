#include "tests/gpu/gpu_test_util.h"

#include <cstdio>
#include <cstdlib>

namespace kvt::testing {
namespace {

void Check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::abort();
  }
}

}  // namespace

std::string NoGpuReason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    return std::string("no usable CUDA device: cudaGetDeviceCount: ") + cudaGetErrorString(e);
  }
  if (n == 0) return "no CUDA device: cudaGetDeviceCount reports 0";
  return "";
}

DeviceBuffer::DeviceBuffer(size_t bytes) : n_(bytes) {
  Check(cudaMalloc(&p_, bytes > 0 ? bytes : 1), "cudaMalloc");
}
DeviceBuffer::DeviceBuffer(const void* host, size_t bytes) : DeviceBuffer(bytes) {
  Upload(host, bytes);
}
DeviceBuffer::~DeviceBuffer() {
  if (p_ != nullptr) cudaFree(p_);
}
std::vector<uint8_t> DeviceBuffer::Download() const {
  std::vector<uint8_t> out(n_);
  Check(cudaMemcpy(out.data(), p_, n_, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
  return out;
}
void DeviceBuffer::Upload(const void* host, size_t bytes) {
  Check(cudaMemcpy(p_, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
}

PinnedBuffer::PinnedBuffer(size_t bytes) : n_(bytes) {
  Check(cudaHostAlloc(&p_, bytes, cudaHostAllocDefault), "cudaHostAlloc");
}
PinnedBuffer::~PinnedBuffer() {
  if (p_ != nullptr) cudaFreeHost(p_);
}

}  // namespace kvt::testing
