// The CUDA DeviceMemory: cudaMalloc'd regions, a non-blocking copy stream, events. Host code
// (no kernels), compiled only with KVT_WITH_CUDA.
#include <cuda_runtime_api.h>

#include <atomic>
#include <vector>

#include "tiers/hbm/device_memory.h"

namespace kvt {
namespace {

Status FromCuda(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return Status::Ok();
  const std::string msg = what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
  if (e == cudaErrorMemoryAllocation) return Status::NoSpace(msg);
  if (e == cudaErrorInvalidValue) return Status::InvalidArgument(msg);
  return Status::Internal(msg);
}

cudaStream_t S(GpuStream s) { return static_cast<cudaStream_t>(s); }

class CudaEvent final : public DeviceEvent {
 public:
  explicit CudaEvent(cudaEvent_t e) : e_(e) {}
  ~CudaEvent() override { cudaEventDestroy(e_); }
  Status Wait() override { return FromCuda(cudaEventSynchronize(e_), "cudaEventSynchronize"); }
  bool Ready() override { return cudaEventQuery(e_) != cudaErrorNotReady; }
  void* native() const override { return e_; }

 private:
  cudaEvent_t e_;
};

class CudaDeviceMemory final : public DeviceMemory {
 public:
  CudaDeviceMemory(int device, cudaStream_t copy, std::string desc)
      : device_(device), copy_(copy), desc_(std::move(desc)) {}
  ~CudaDeviceMemory() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(copy_);
    cudaStreamDestroy(copy_);
  }
  bool emulated() const override { return false; }
  const std::string& description() const override { return desc_; }
  StatusOr<void*> Alloc(size_t bytes) override {
    cudaSetDevice(device_);
    void* p = nullptr;
    KVT_RETURN_IF_ERROR(FromCuda(cudaMalloc(&p, bytes), "cudaMalloc of " + std::to_string(bytes) +
                                                            " bytes"));
    return p;
  }
  void Free(void* p) override {
    cudaSetDevice(device_);
    cudaFree(p);
  }
  GpuStream copy_stream() const override { return copy_; }
  Status CopyAsync(void* dst, const void* src, size_t n, GpuStream stream) override {
    cudaSetDevice(device_);
    return FromCuda(cudaMemcpyAsync(dst, src, n, cudaMemcpyDefault, S(stream)), "cudaMemcpyAsync");
  }
  Status CopyBatchAsync(const DeviceCopy* ops, size_t n, GpuStream stream) override {
    cudaSetDevice(device_);
#if CUDART_VERSION >= 13000
    if (n > 1 && stream != nullptr && batch_ok_.load(std::memory_order_relaxed)) {
      std::vector<void*> dsts(n);
      std::vector<const void*> srcs(n);
      std::vector<size_t> sizes(n);
      for (size_t i = 0; i < n; ++i) {
        dsts[i] = ops[i].dst;
        srcs[i] = ops[i].src;
        sizes[i] = ops[i].n;
      }
      cudaMemcpyAttributes attr{};
      attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;  // sources are ready in stream order
      size_t attr_idx = 0;
      const cudaError_t e = cudaMemcpyBatchAsync(dsts.data(), srcs.data(), sizes.data(), n, &attr,
                                                 &attr_idx, 1, S(stream));
      if (e == cudaSuccess) return Status::Ok();
      // Refused (an old driver, a kind of memory it does not batch): one call per copy from now on.
      cudaGetLastError();
      batch_ok_.store(false, std::memory_order_relaxed);
    }
#endif
    return DeviceMemory::CopyBatchAsync(ops, n, stream);
  }
  StatusOr<std::unique_ptr<DeviceEvent>> Record(GpuStream stream) override {
    cudaSetDevice(device_);
    cudaEvent_t e;
    KVT_RETURN_IF_ERROR(FromCuda(cudaEventCreateWithFlags(&e, cudaEventDisableTiming),
                                 "cudaEventCreate"));
    auto ev = std::make_unique<CudaEvent>(e);
    KVT_RETURN_IF_ERROR(FromCuda(cudaEventRecord(e, S(stream)), "cudaEventRecord"));
    return std::unique_ptr<DeviceEvent>(std::move(ev));
  }
  Status RecordExternal(void* event, GpuStream stream) override {
    cudaSetDevice(device_);
    return FromCuda(cudaEventRecord(static_cast<cudaEvent_t>(event), S(stream)),
                    "cudaEventRecord of a layer event");
  }
  Status StreamWaitEvent(GpuStream stream, void* event) override {
    cudaSetDevice(device_);
    return FromCuda(cudaStreamWaitEvent(S(stream), static_cast<cudaEvent_t>(event), 0),
                    "cudaStreamWaitEvent");
  }
  Status Synchronize(GpuStream stream) override {
    cudaSetDevice(device_);
    return FromCuda(cudaStreamSynchronize(S(stream)), "cudaStreamSynchronize");
  }
  Status OnComplete(GpuStream stream, std::function<void()> fn) override {
    auto* heap = new std::function<void()>(std::move(fn));
    cudaError_t e = cudaLaunchHostFunc(
        S(stream),
        [](void* p) {
          auto* f = static_cast<std::function<void()>*>(p);
          (*f)();
          delete f;
        },
        heap);
    if (e != cudaSuccess) {
      // Not enqueued: wait for the stream here instead, then run it.
      Status st = Synchronize(stream);
      (*heap)();
      delete heap;
      return st.ok() ? FromCuda(e, "cudaLaunchHostFunc") : st;
    }
    return Status::Ok();
  }

 private:
  const int device_;
  cudaStream_t copy_;
  const std::string desc_;
  std::atomic<bool> batch_ok_{true};  // cudaMemcpyBatchAsync accepted so far
};

}  // namespace

std::unique_ptr<DeviceMemory> OpenCudaDeviceMemory(std::string* why) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
    *why = e != cudaSuccess ? std::string("no CUDA device: ") + cudaGetErrorString(e)
                            : "no CUDA device visible";
    return nullptr;
  }
  int dev = 0;
  cudaGetDevice(&dev);
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, dev);
  cudaStream_t s;
  if ((e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)) != cudaSuccess) {
    *why = std::string("cudaStreamCreate failed: ") + cudaGetErrorString(e);
    return nullptr;
  }
  return std::make_unique<CudaDeviceMemory>(
      dev, s, "cuda device " + std::to_string(dev) + " (" + prop.name + ")");
}

}  // namespace kvt
