#include "io/aligned_buffer.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace kvt {

StatusOr<AlignedBuffer> AlignedBuffer::Allocate(size_t bytes, bool lock) {
  if (bytes == 0) return Status::InvalidArgument("AlignedBuffer::Allocate: zero bytes");
  size_t size = AlignUp(bytes, kPage);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return Status::FromErrno(errno, "mmap of " + std::to_string(size) + " bytes");
  }
  AlignedBuffer b;
  b.data_ = static_cast<uint8_t*>(p);
  b.size_ = size;
  if (lock) {
    if (::mlock(p, size) == 0) {
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
  }
}

}  // namespace kvt
