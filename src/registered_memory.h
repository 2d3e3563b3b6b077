// MemoryRegistry: caller memory registered with the store (kvt_register_memory), typically an
// engine's host KV pool. Each range is pinned (mlock where the limit allows), registered with the
// NVMe tier's io_uring rings (so reads land in it with READ_FIXED and no bounce copy) and, where
// a GPU is visible, with cudaHostRegister (so device copies from it are DMA).
//
// Reads into a range hold a Lease on it; Unregister waits until no lease is left, so the caller
// may free the memory as soon as Unregister returns.
//
// Thread safety: every method may be called from any thread.
#pragma once

#include <sys/uio.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"

namespace kvt {

class MemoryRegistry {
 public:
  // Registers a range with io_uring (the NVMe tier's RegisterRegion) and returns its handle, or
  // takes one back; both may be empty (no NVMe tier).
  using AddRegion = std::function<uint64_t(void* base, size_t bytes)>;
  using RemoveRegion = std::function<void(uint64_t handle)>;
  MemoryRegistry(AddRegion add, RemoveRegion remove)
      : add_(std::move(add)), remove_(std::move(remove)) {}
  ~MemoryRegistry();

  // InvalidArgument: NULL, zero bytes, or overlapping a registered range.
  Status Register(void* addr, size_t bytes);
  // InvalidArgument: addr is not the start of a registered range. Waits for leases on it.
  Status Unregister(void* addr);

  // A hold on the registered range containing [p, p + len), or an empty lease when none does.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& o) noexcept : reg_(o.reg_), base_(o.base_) { o.reg_ = nullptr; }
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    explicit operator bool() const { return reg_ != nullptr; }

   private:
    friend class MemoryRegistry;
    MemoryRegistry* reg_ = nullptr;
    uintptr_t base_ = 0;
  };
  Lease Acquire(const void* p, size_t len);

  size_t ranges() const;
  uint64_t bytes() const;
  bool mlocked_all() const;
  bool cuda_registered() const { return cuda_ok_; }

 private:
  struct Range {
    size_t bytes = 0;
    int leases = 0;
    bool closing = false;
    bool locked = false;  // mlock succeeded
    bool cuda = false;    // cudaHostRegister succeeded
    uint64_t ring_handle = 0;
  };

  AddRegion add_;
  RemoveRegion remove_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<uintptr_t, Range> ranges_;  // GUARDED_BY(mu_), by start address
  bool cuda_ok_ = false;
};

}  // namespace kvt
