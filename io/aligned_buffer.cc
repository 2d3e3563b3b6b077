#include "io/aligned_buffer.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

namespace kvt {

StatusOr<AlignedBuffer> AlignedBuffer::Allocate(size_t bytes, bool lock) {
  if (bytes == 0) return Status::InvalidArgument("AlignedBuffer::Allocate: zero bytes");
  const size_t size = AlignUp(bytes, kPage);
  // Regions of a huge page or more start on a huge-page boundary and ask for transparent huge
  // pages, before anything touches (or mlock populates) them. A 4 KiB-paged pool of hundreds of
  // MiB costs a TLB miss per page on every pass over it: on these virtual machines the kernel's
  // socket copies out of such a pool ran at a third of their speed from a small buffer
  // (docs/bench_results.md, "huge pages"). The advice is best effort (THP may be off).
  const bool huge = size >= kHugePage;
  const size_t span = huge ? size + kHugePage - kPage : size;
  void* p = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return Status::FromErrno(errno, "mmap of " + std::to_string(span) + " bytes");
  }
  auto* base = static_cast<uint8_t*>(p);
  auto* data = base;
  if (huge) {  // trim the mapping to the aligned `size` bytes
    data = reinterpret_cast<uint8_t*>(AlignUp(reinterpret_cast<uintptr_t>(base), kHugePage));
    if (data > base) ::munmap(base, static_cast<size_t>(data - base));
    uint8_t* const end = data + size;
    if (base + span > end) ::munmap(end, static_cast<size_t>(base + span - end));
  }
  AlignedBuffer b;
  b.data_ = data;
  b.size_ = size;
  b.huge_pages_ = huge && ::madvise(data, size, MADV_HUGEPAGE) == 0;
  if (lock) {
    if (::mlock(data, size) == 0) {
      b.locked_ = true;
    } else {
      int err = errno;
      b.lock_error_ = std::string("mlock of ") + std::to_string(size) +
                      " bytes refused: " + std::strerror(err) +
                      (err == ENOMEM || err == EPERM ? " (raise RLIMIT_MEMLOCK, ulimit -l)" : "");
    }
  }
  return b;
}

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& o) noexcept {
  if (this != &o) {
    Reset();
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    locked_ = std::exchange(o.locked_, false);
    huge_pages_ = std::exchange(o.huge_pages_, false);
    lock_error_ = std::move(o.lock_error_);
  }
  return *this;
}

void AlignedBuffer::Reset() {
  if (data_ != nullptr) {
    ::munmap(data_, size_);  // munmap also unlocks
    data_ = nullptr;
    size_ = 0;
    locked_ = false;
    huge_pages_ = false;
  }
}

}  // namespace kvt
