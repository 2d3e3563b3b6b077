// RAII device and pinned buffers, and the "is there a GPU" check used by the GPU tests and bench.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace kvt::testing {

// Empty when a CUDA device is usable; otherwise why not (the tests skip with this text).
std::string NoGpuReason();

// Device memory, move-only; aborts the test binary on allocation failure (tests only).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  DeviceBuffer(const void* host, size_t bytes);  // allocate and upload
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  void* get() const { return p_; }
  template <typename T>
  T* as() const { return static_cast<T*>(p_); }
  size_t size() const { return n_; }
  std::vector<uint8_t> Download() const;
  void Upload(const void* host, size_t bytes);

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

// Pinned (page-locked) host memory, move-only.
class PinnedBuffer {
 public:
  explicit PinnedBuffer(size_t bytes);
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void* get() const { return p_; }
  size_t size() const { return n_; }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace kvt::testing
