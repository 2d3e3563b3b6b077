// FileIo: the file I/O interface under the NVMe tier. Implementations: UringFileIo (io_uring),
// PosixFileIo (pread/pwrite, for kernels or sandboxes that refuse io_uring) and
// FaultInjectionFileIo (wraps another FileIo for tests).
//
// The unit of work is a batch: Execute() runs every request of a span to completion (or failure)
// before it returns, so a caller's buffers are never touched by the kernel after Execute returns.
// Short transfers and EINTR/EAGAIN are handled below this interface: a request that reports OK
// moved exactly `len` bytes.
//
// Thread safety: none. One instance per I/O thread (an io_uring ring is single-issuer); callers
// that share files across threads use one FileIo each.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "base/status.h"

namespace kvt {

enum class IoOp : uint8_t { kRead = 0, kWrite = 1 };

const char* IoOpName(IoOp op);

struct IoRequest {
  // --- in ---
  IoOp op = IoOp::kRead;
  int fd = -1;
  void* buf = nullptr;  // for kWrite the bytes are only read
  size_t len = 0;
  uint64_t offset = 0;
  // Index into the buffers given to RegisterBuffers() when `buf` lies inside one of them (the
  // kernel then skips pinning pages per I/O); -1 when not registered. Ignored by implementations
  // without registered buffers.
  int fixed_index = -1;
  // A vectored transfer (preadv/pwritev): `iovcnt` buffers, in order, to or from the file range
  // [offset, offset + len); `buf` and `fixed_index` are then unused. The caller keeps the array
  // alive until Execute returns. For writes of adjacent pieces (a record's header and payload,
  // records that follow each other): on these disks a liburing probe at QD 64 moved 64 KiB
  // records at 4.62 GB/s as one writev each against 3.65 as two writes (256 KiB: 6.62 against
  // 6.11), and 5.3 GB/s with eight 64 KiB records per writev (docs/bench_results.md).
  const iovec* iov = nullptr;
  uint32_t iovcnt = 0;
  // --- out ---
  Status result;          // OK when exactly `len` bytes moved
  size_t bytes_done = 0;  // bytes moved, also on failure (a torn write's prefix)
  bool hit_eof = false;   // a read stopped at end of file (the file is shorter than asked)

  static IoRequest Read(int fd, void* buf, size_t len, uint64_t offset, int fixed_index = -1) {
    return Make(IoOp::kRead, fd, buf, len, offset, fixed_index);
  }
  static IoRequest Write(int fd, const void* buf, size_t len, uint64_t offset,
                         int fixed_index = -1) {
    return Make(IoOp::kWrite, fd, const_cast<void*>(buf), len, offset, fixed_index);
  }
  // A gathered write of iov[0..iovcnt) at `offset`; len is their total.
  static IoRequest WriteV(int fd, const iovec* iov, uint32_t iovcnt, uint64_t offset) {
    IoRequest r = Make(IoOp::kWrite, fd, nullptr, 0, offset, -1);
    r.iov = iov;
    r.iovcnt = iovcnt;
    for (uint32_t i = 0; i < iovcnt; ++i) r.len += iov[i].iov_len;
    return r;
  }
  static IoRequest Make(IoOp op, int fd, void* buf, size_t len, uint64_t offset, int fixed_index) {
    IoRequest r;
    r.op = op;
    r.fd = fd;
    r.buf = buf;
    r.len = len;
    r.offset = offset;
    r.fixed_index = fixed_index;
    return r;
  }
};

// Largest iovcnt a request may have (the kernel's UIO_MAXIOV).
inline constexpr uint32_t kMaxIoVecs = 1024;

// Where a request resumes after r.bytes_done bytes. A plain request, or a vectored one stopped
// inside a buffer: `one` is the rest of that buffer (moved alone; the next resumption goes on from
// the buffer after it). A vectored request stopped on a buffer boundary: `vec`/`vec_count` are
// the buffers left, moved together. Exactly one of the two is set.
struct IoResume {
  iovec one{nullptr, 0};
  const iovec* vec = nullptr;
  uint32_t vec_count = 0;
};
IoResume ResumePoint(const IoRequest& r);
// Whether a request's buffers are well-formed (non-null, count within kMaxIoVecs).
bool RequestBuffersValid(const IoRequest& r);

class FileIo {
 public:
  virtual ~FileIo() = default;

  // Runs every request. Returns OK when all succeeded, else the first failed request's status;
  // each request's own outcome is in its `result`.
  virtual Status Execute(std::span<IoRequest> reqs) = 0;
  // The same, calling `done(i)` once for each request i as soon as its outcome is final, on the
  // calling thread, from inside Execute: work on a finished request (verifying a checksum)
  // overlaps the transfers still in flight. The default calls it after the batch (for
  // implementations that run requests one at a time anyway).
  using Completion = std::function<void(size_t index)>;
  virtual Status Execute(std::span<IoRequest> reqs, const Completion& done) {
    Status s = Execute(reqs);
    if (done) {
      for (size_t i = 0; i < reqs.size(); ++i) done(i);
    }
    return s;
  }

  virtual Status Fsync(int fd) = 0;
  virtual Status Fdatasync(int fd) = 0;
  // Allocates [offset, offset + len) (mode 0: the file grows when needed).
  virtual Status Fallocate(int fd, uint64_t offset, uint64_t len) = 0;

  // Registers buffers for fixed I/O. Unavailable (with the kernel's reason) when refused, e.g.
  // ENOMEM under a small RLIMIT_MEMLOCK: the caller logs once and keeps using plain I/O. Replaces
  // any earlier registration. An empty span unregisters.
  virtual Status RegisterBuffers(std::span<const iovec> bufs) = 0;
  virtual bool BuffersRegistered() const = 0;

  // "io_uring", "posix", ... for stats and logs.
  virtual const char* Name() const = 0;
};

// io_uring with queue depth `depth`, or PosixFileIo when the kernel refuses io_uring (logged once
// per process). Never fails.
std::unique_ptr<FileIo> MakeDefaultFileIo(unsigned depth);

// "/path/of/fd" from /proc/self/fd, or "fd N" when that is unreadable. Only for error messages.
std::string DescribeFd(int fd);

// The Status of a failed request: "<op> <file> at offset N (len M): strerror (errno E)".
Status IoErrorStatus(IoOp op, int fd, uint64_t offset, size_t len, int err);

// fsync/fdatasync and fallocate(mode 0) as plain syscalls, EINTR retried, errors named. Shared by
// the implementations: these are rare, blocking-is-fine calls, not worth a ring round trip.
Status SyncFd(int fd, bool data_only);
Status FallocateFd(int fd, uint64_t offset, uint64_t len);

}  // namespace kvt
