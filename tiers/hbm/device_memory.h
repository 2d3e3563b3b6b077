// DeviceMemory: the HBM tier's memory and copy engine behind one small interface, so the tier, the
// prefetch pipeline and the kvt_gpu_* paths are written once and run either on a GPU or, without
// one, on host memory ("emulated"): same slots, same ordering, memcpy instead of DMA, CPU reference
// kernels instead of CUDA kernels.
//
//   CUDA     (KVT_WITH_CUDA and a visible device): cudaMalloc'd regions, copies with
//            cudaMemcpyAsync on the given stream (a dedicated non-blocking copy stream by default),
//            DeviceEvent = a cudaEvent_t recorded on that stream.
//   emulated (otherwise): malloc'd 256-byte-aligned host regions; every copy is a memcpy that has
//            completed when the call returns, so events are always complete.
//
// Addresses returned by Alloc are "device addresses": dereferenceable on the host only when
// emulated(). Copies take any mix of host and device addresses (unified addressing).
//
// Thread safety: every method may be called from any thread; copies on one stream run in order.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "base/status.h"
#include "kernels/gpu_kernels.h"

namespace kvt {

// A point in a stream's work. Move-only; destroying it releases the CUDA event.
class DeviceEvent {
 public:
  virtual ~DeviceEvent() = default;
  // Blocks the calling thread until the work before the event has finished; the status of that
  // work (a failed asynchronous copy surfaces here).
  virtual Status Wait() = 0;
  // Whether that work has finished (never blocks).
  virtual bool Ready() = 0;
  // The cudaEvent_t, or nullptr when emulated.
  virtual void* native() const = 0;
};

// One copy of a batch (see DeviceMemory::CopyBatchAsync).
struct DeviceCopy {
  void* dst;
  const void* src;
  size_t n;
};

class DeviceMemory {
 public:
  virtual ~DeviceMemory() = default;

  virtual bool emulated() const = 0;
  // "cuda device 0 (NVIDIA H100 80GB HBM3)" or "emulated in host memory (<why>)".
  virtual const std::string& description() const = 0;

  // A region of `bytes`, 256-byte aligned. Free it with Free (or hold it in a DeviceRegion).
  virtual StatusOr<void*> Alloc(size_t bytes) = 0;
  virtual void Free(void* p) = 0;

  // A non-blocking stream owned by this object, for the tier's own transfers (nullptr emulated).
  virtual GpuStream copy_stream() const = 0;
  // Enqueues a copy of n bytes on `stream` (nullptr: the legacy default stream). A CUDA copy from
  // memory that is not page-locked is synchronous; the host tier's memory is page-locked.
  virtual Status CopyAsync(void* dst, const void* src, size_t n, GpuStream stream) = 0;
  // Enqueues every copy of ops[0..n) on `stream`, in one driver call where the runtime has
  // cudaMemcpyBatchAsync (CUDA 13): small copies (one layer of many blocks: 64 KiB each) are
  // bound by the cost of each call, not by the link. Copies within one batch may run in any
  // order; the batch as a whole is ordered in the stream. Falls back to one call per copy where
  // batching is refused (for example on the legacy default stream). The default is one
  // CopyAsync per copy.
  virtual Status CopyBatchAsync(const DeviceCopy* ops, size_t n, GpuStream stream);
  // An event recorded on `stream` after everything enqueued so far.
  virtual StatusOr<std::unique_ptr<DeviceEvent>> Record(GpuStream stream) = 0;
  // Records a caller-owned cudaEvent_t on `stream` (emulated: nothing to record; the work is done).
  virtual Status RecordExternal(void* event, GpuStream stream) = 0;
  // Makes work enqueued on `stream` from now on wait for `event` (a cudaEvent_t), without blocking
  // the calling thread (emulated: nothing to wait for).
  virtual Status StreamWaitEvent(GpuStream stream, void* event) = 0;
  // Waits for everything enqueued on `stream`.
  virtual Status Synchronize(GpuStream stream) = 0;
  // Runs fn on a runtime thread once the work enqueued so far on `stream` has finished (emulated:
  // now, on the calling thread). fn must not call CUDA. Used to drop pins after async loads.
  virtual Status OnComplete(GpuStream stream, std::function<void()> fn) = 0;
};

// The CUDA implementation when this build has CUDA and a device is visible and force_emulated is
// false; otherwise the emulated one, whose description() says why.
std::unique_ptr<DeviceMemory> OpenDeviceMemory(bool force_emulated);
// Always the emulated implementation (tests, and engine caches registered with host pointers).
std::unique_ptr<DeviceMemory> OpenEmulatedDeviceMemory(const std::string& why);

// One region of a DeviceMemory, freed on destruction. Move-only.
class DeviceRegion {
 public:
  DeviceRegion() = default;
  static StatusOr<DeviceRegion> Allocate(DeviceMemory* mem, size_t bytes);
  DeviceRegion(DeviceRegion&& o) noexcept { *this = std::move(o); }
  DeviceRegion& operator=(DeviceRegion&& o) noexcept;
  DeviceRegion(const DeviceRegion&) = delete;
  DeviceRegion& operator=(const DeviceRegion&) = delete;
  ~DeviceRegion() { Reset(); }

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  void Reset();

 private:
  DeviceMemory* mem_ = nullptr;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace kvt
