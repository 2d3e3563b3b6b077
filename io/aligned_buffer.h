// AlignedBuffer: a move-only, page-aligned anonymous memory region (mmap), the unit of memory for
// O_DIRECT I/O and for the host tier's pool. Optionally locked in RAM (mlock); when locking is
// refused (RLIMIT_MEMLOCK) the buffer still works and Locked() says it is not locked, with the
// reason in LockError().
//
// Thread safety: the object is not synchronized; the memory it owns may be shared as the owner
// sees fit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/status.h"

namespace kvt {

class AlignedBuffer {
 public:
  static constexpr size_t kPage = 4096;
  static constexpr size_t kHugePage = 2u << 20;  // x86-64's PMD-sized transparent huge page

  AlignedBuffer() = default;
  // Maps `bytes` (rounded up to 4 KiB). With lock = true, tries mlock and records the outcome.
  // From 2 MiB up the region is 2 MiB-aligned and advised for transparent huge pages.
  static StatusOr<AlignedBuffer> Allocate(size_t bytes, bool lock);

  AlignedBuffer(AlignedBuffer&& o) noexcept { *this = std::move(o); }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  ~AlignedBuffer() { Reset(); }

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool Locked() const { return locked_; }
  const std::string& LockError() const { return lock_error_; }
  // Whether the kernel took the huge-page advice (it may still back parts with 4 KiB pages).
  bool HugePagesAdvised() const { return huge_pages_; }

 private:
  void Reset();
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool locked_ = false;
  bool huge_pages_ = false;
  std::string lock_error_;
};

inline constexpr size_t AlignUp(size_t v, size_t a) { return (v + a - 1) / a * a; }

}  // namespace kvt
