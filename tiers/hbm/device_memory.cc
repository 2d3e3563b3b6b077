// The emulated DeviceMemory (always built) and DeviceRegion. The CUDA implementation lives in
// device_memory_cuda.cc, compiled only with KVT_WITH_CUDA.
#include "tiers/hbm/device_memory.h"

#include <cstdlib>
#include <cstring>
#include <utility>

namespace kvt {

#ifdef KVT_WITH_CUDA
// device_memory_cuda.cc: the CUDA implementation, or nullptr with *why set when no device is usable.
std::unique_ptr<DeviceMemory> OpenCudaDeviceMemory(std::string* why);
#endif

namespace {

class DoneEvent final : public DeviceEvent {
 public:
  Status Wait() override { return Status::Ok(); }
  bool Ready() override { return true; }
  void* native() const override { return nullptr; }
};

// Host memory standing in for device memory; copies complete before they return.
class EmulatedDeviceMemory final : public DeviceMemory {
 public:
  explicit EmulatedDeviceMemory(std::string why) : desc_("emulated in host memory (" + why + ")") {}
  bool emulated() const override { return true; }
  const std::string& description() const override { return desc_; }
  StatusOr<void*> Alloc(size_t bytes) override {
    void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (p == nullptr) return Status::NoSpace("emulated device memory: cannot allocate " +
                                             std::to_string(bytes) + " bytes");
    return p;
  }
  void Free(void* p) override { std::free(p); }
  GpuStream copy_stream() const override { return nullptr; }
  Status CopyAsync(void* dst, const void* src, size_t n, GpuStream) override {
    if (n > 0) std::memcpy(dst, src, n);
    return Status::Ok();
  }
  StatusOr<std::unique_ptr<DeviceEvent>> Record(GpuStream) override {
    return std::unique_ptr<DeviceEvent>(new DoneEvent());
  }
  Status RecordExternal(void*, GpuStream) override { return Status::Ok(); }
  Status StreamWaitEvent(GpuStream, void*) override { return Status::Ok(); }
  Status Synchronize(GpuStream) override { return Status::Ok(); }
  Status OnComplete(GpuStream, std::function<void()> fn) override {
    fn();
    return Status::Ok();
  }

 private:
  const std::string desc_;
};

}  // namespace

std::unique_ptr<DeviceMemory> OpenEmulatedDeviceMemory(const std::string& why) {
  return std::make_unique<EmulatedDeviceMemory>(why);
}

std::unique_ptr<DeviceMemory> OpenDeviceMemory(bool force_emulated) {
  if (force_emulated) return OpenEmulatedDeviceMemory("emulation requested");
#ifdef KVT_WITH_CUDA
  std::string why;
  if (auto cuda = OpenCudaDeviceMemory(&why)) return cuda;
  return OpenEmulatedDeviceMemory(why);
#else
  return OpenEmulatedDeviceMemory("built without CUDA");
#endif
}

Status DeviceMemory::CopyBatchAsync(const DeviceCopy* ops, size_t n, GpuStream stream) {
  for (size_t i = 0; i < n; ++i) {
    KVT_RETURN_IF_ERROR(CopyAsync(ops[i].dst, ops[i].src, ops[i].n, stream));
  }
  return Status::Ok();
}

StatusOr<DeviceRegion> DeviceRegion::Allocate(DeviceMemory* mem, size_t bytes) {
  DeviceRegion r;
  KVT_ASSIGN_OR_RETURN(void* p, mem->Alloc(bytes));
  r.mem_ = mem;
  r.data_ = static_cast<uint8_t*>(p);
  r.size_ = bytes;
  return r;
}

DeviceRegion& DeviceRegion::operator=(DeviceRegion&& o) noexcept {
  if (this != &o) {
    Reset();
    mem_ = std::exchange(o.mem_, nullptr);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
  }
  return *this;
}

void DeviceRegion::Reset() {
  if (mem_ != nullptr && data_ != nullptr) mem_->Free(data_);
  mem_ = nullptr;
  data_ = nullptr;
  size_ = 0;
}

}  // namespace kvt
