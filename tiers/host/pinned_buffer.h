// PinnedBuffer: the host tier's memory. With a GPU present (CUDA build and a visible device) it is
// page-locked with cudaHostAlloc, so DMA to and from HBM runs at full PCIe speed without a bounce.
// Otherwise it is an mmap'd region, mlock'd where RLIMIT_MEMLOCK allows; when the lock is refused
// the reason is kept (and logged once by the pool) and the memory still works, pageable.
//
// Thread safety: not synchronized; move-only owner of the region.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/status.h"
#include "io/aligned_buffer.h"

namespace kvt {

class PinnedBuffer {
 public:
  enum class Kind { kCudaHost, kMlocked, kPageable };

  PinnedBuffer() = default;
  static StatusOr<PinnedBuffer> Allocate(size_t bytes, bool try_lock);
  PinnedBuffer(PinnedBuffer&& o) noexcept { *this = std::move(o); }
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer();

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  Kind kind() const { return kind_; }
  const char* KindName() const;
  // Why the region is not locked (empty when it is).
  const std::string& note() const { return note_; }
  // The mmap'd region took the transparent-huge-page advice (cudaHostAlloc'd memory never does).
  bool huge_pages() const { return kind_ != Kind::kCudaHost && mapped_.HugePagesAdvised(); }

 private:
  void FreeCudaHost();  // frees a cudaHostAlloc'd region; the mmap'd one frees itself
  AlignedBuffer mapped_;  // used unless kind_ == kCudaHost
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  Kind kind_ = Kind::kPageable;
  std::string note_;
};

}  // namespace kvt
