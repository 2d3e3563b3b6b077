#include "src/registered_memory.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

#if defined(KVT_WITH_CUDA)
#include <cuda_runtime_api.h>
#endif

namespace kvt {
namespace {

// cudaHostRegister when this build has CUDA and a device is visible; false otherwise (and on any
// CUDA error: the range still works, device copies from it are just staged by the driver).
bool CudaRegister(void* addr, size_t bytes) {
#if defined(KVT_WITH_CUDA)
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
    return false;
  }
  if (cudaHostRegister(addr, bytes, cudaHostRegisterDefault) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return true;
#else
  (void)addr;
  (void)bytes;
  return false;
#endif
}

void CudaUnregister(void* addr) {
#if defined(KVT_WITH_CUDA)
  if (cudaHostUnregister(addr) != cudaSuccess) (void)cudaGetLastError();
#else
  (void)addr;
#endif
}

}  // namespace

MemoryRegistry::~MemoryRegistry() {
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [base, r] : ranges_) {
    if (remove_ && r.ring_handle != 0) remove_(r.ring_handle);
    if (r.cuda) CudaUnregister(reinterpret_cast<void*>(base));
    if (r.locked) ::munlock(reinterpret_cast<void*>(base), r.bytes);
  }
}

Status MemoryRegistry::Register(void* addr, size_t bytes) {
  if (addr == nullptr) return Status::InvalidArgument("register memory: addr is NULL");
  if (bytes == 0) return Status::InvalidArgument("register memory: bytes is 0");
  const auto b = reinterpret_cast<uintptr_t>(addr);
  if (b + bytes < b) return Status::InvalidArgument("register memory: range wraps around");
  {
    std::lock_guard<std::mutex> l(mu_);
    auto next = ranges_.lower_bound(b);
    bool overlap = next != ranges_.end() && next->first < b + bytes;
    if (!overlap && next != ranges_.begin()) {
      auto prev = std::prev(next);
      overlap = prev->first + prev->second.bytes > b;
    }
    if (overlap) {
      return Status::InvalidArgument("register memory: range overlaps one already registered");
    }
    Range r;
    r.bytes = bytes;
    // Pinning is best effort: an ordinary user's memlock limit is small (8 MiB here), and the
    // range works unpinned too (io_uring then reads into it with plain requests).
    r.locked = ::mlock(addr, bytes) == 0;
    if (!r.locked) {
      KVT_LOG(kInfo, std::string("register memory: mlock refused (") + std::strerror(errno) +
                         "), the range stays pageable");
    }
    r.cuda = CudaRegister(addr, bytes);
    cuda_ok_ = cuda_ok_ || r.cuda;
    if (add_) r.ring_handle = add_(addr, bytes);
    ranges_.emplace(b, r);
  }
  return Status::Ok();
}

Status MemoryRegistry::Unregister(void* addr) {
  const auto b = reinterpret_cast<uintptr_t>(addr);
  {
    std::unique_lock<std::mutex> l(mu_);
    auto it = ranges_.find(b);
    if (it == ranges_.end() || it->second.closing) {
      return Status::InvalidArgument("unregister memory: address is not the start of a registered "
                                     "range");
    }
    it->second.closing = true;  // no new leases
    cv_.wait(l, [&] { return it->second.leases == 0; });
    // The rings drop the range before the caller may free it (every context re-registers its
    // set before its next request).
    if (remove_ && it->second.ring_handle != 0) remove_(it->second.ring_handle);
    if (it->second.cuda) CudaUnregister(addr);
    if (it->second.locked) ::munlock(addr, it->second.bytes);
    ranges_.erase(it);
  }
  return Status::Ok();
}

MemoryRegistry::Lease MemoryRegistry::Acquire(const void* p, size_t len) {
  Lease lease;
  const auto a = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> l(mu_);
  auto it = ranges_.upper_bound(a);
  if (it == ranges_.begin()) return lease;
  --it;
  if (it->second.closing || a + len > it->first + it->second.bytes) return lease;
  ++it->second.leases;
  lease.reg_ = this;
  lease.base_ = it->first;
  return lease;
}

MemoryRegistry::Lease::~Lease() {
  if (reg_ == nullptr) return;
  std::lock_guard<std::mutex> l(reg_->mu_);
  auto it = reg_->ranges_.find(base_);
  if (it != reg_->ranges_.end() && --it->second.leases == 0) reg_->cv_.notify_all();
}

size_t MemoryRegistry::ranges() const {
  std::lock_guard<std::mutex> l(mu_);
  return ranges_.size();
}

uint64_t MemoryRegistry::bytes() const {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t n = 0;
  for (const auto& [base, r] : ranges_) n += r.bytes;
  return n;
}

bool MemoryRegistry::mlocked_all() const {
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [base, r] : ranges_)
    if (!r.locked) return false;
  return true;
}

}  // namespace kvt
