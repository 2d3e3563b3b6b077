#include "tiers/host/pinned_buffer.h"

#include <utility>

#ifdef KVT_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace kvt {

StatusOr<PinnedBuffer> PinnedBuffer::Allocate(size_t bytes, bool try_lock) {
  PinnedBuffer b;
  b.size_ = AlignUp(bytes, AlignedBuffer::kPage);
#ifdef KVT_WITH_CUDA
  int devices = 0;
  if (cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0) {
    void* p = nullptr;
    cudaError_t err = cudaHostAlloc(&p, b.size_, cudaHostAllocPortable);
    if (err == cudaSuccess) {
      b.data_ = static_cast<uint8_t*>(p);
      b.kind_ = Kind::kCudaHost;
      return b;
    }
    b.note_ = std::string("cudaHostAlloc failed (") + cudaGetErrorString(err) + "); ";
  } else {
    cudaGetLastError();  // clear the sticky "no device" error
  }
#endif
  auto mapped = AlignedBuffer::Allocate(b.size_, try_lock);
  if (!mapped.ok()) return mapped.status();
  b.mapped_ = std::move(mapped).value();
  b.data_ = b.mapped_.data();
  if (b.mapped_.Locked()) {
    b.kind_ = Kind::kMlocked;
  } else {
    b.kind_ = Kind::kPageable;
    b.note_ += try_lock ? b.mapped_.LockError() : "locking disabled by host_mlock=false";
  }
  return b;
}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& o) noexcept {
  if (this != &o) {
    FreeCudaHost();
    mapped_ = std::move(o.mapped_);
    data_ = std::exchange(o.data_, nullptr);
    size_ = std::exchange(o.size_, 0);
    kind_ = o.kind_;
    note_ = std::move(o.note_);
  }
  return *this;
}

PinnedBuffer::~PinnedBuffer() { FreeCudaHost(); }

void PinnedBuffer::FreeCudaHost() {
#ifdef KVT_WITH_CUDA
  if (kind_ == Kind::kCudaHost && data_ != nullptr) cudaFreeHost(data_);
#endif
  data_ = nullptr;
}

const char* PinnedBuffer::KindName() const {
  switch (kind_) {
    case Kind::kCudaHost: return "cuda_host";
    case Kind::kMlocked: return "mlocked";
    case Kind::kPageable: return "pageable";
  }
  return "?";
}

}  // namespace kvt
