#include "io/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdio>

#include "base/log.h"
#include "io/posix_file_io.h"
#include "io/uring_file_io.h"

namespace kvt {

const char* IoOpName(IoOp op) { return op == IoOp::kRead ? "read" : "write"; }

IoResume ResumePoint(const IoRequest& r) {
  IoResume out;
  if (r.iov == nullptr) {
    out.one = iovec{static_cast<uint8_t*>(r.buf) + r.bytes_done, r.len - r.bytes_done};
    return out;
  }
  size_t skip = r.bytes_done;
  uint32_t k = 0;
  while (k < r.iovcnt && skip >= r.iov[k].iov_len) skip -= r.iov[k++].iov_len;
  if (k == r.iovcnt) return out;  // nothing left (callers do not ask then)
  if (skip == 0) {
    out.vec = r.iov + k;
    out.vec_count = r.iovcnt - k;
  } else {
    out.one = iovec{static_cast<uint8_t*>(r.iov[k].iov_base) + skip, r.iov[k].iov_len - skip};
  }
  return out;
}

bool RequestBuffersValid(const IoRequest& r) {
  if (r.iov == nullptr) return r.buf != nullptr;
  if (r.iovcnt == 0 || r.iovcnt > kMaxIoVecs) return false;
  for (uint32_t i = 0; i < r.iovcnt; ++i) {
    if (r.iov[i].iov_base == nullptr && r.iov[i].iov_len > 0) return false;
  }
  return true;
}

std::string DescribeFd(int fd) {
  char link[64];
  std::snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
  char path[PATH_MAX];
  ssize_t n = ::readlink(link, path, sizeof(path) - 1);
  if (n <= 0) return "fd " + std::to_string(fd);
  return std::string(path, static_cast<size_t>(n));
}

Status IoErrorStatus(IoOp op, int fd, uint64_t offset, size_t len, int err) {
  return Status::FromErrno(err, std::string(IoOpName(op)) + " " + DescribeFd(fd) + " at offset " +
                                    std::to_string(offset) + " (len " + std::to_string(len) + ")");
}

Status SyncFd(int fd, bool data_only) {
  while ((data_only ? ::fdatasync(fd) : ::fsync(fd)) != 0) {
    if (errno != EINTR) {
      return Status::FromErrno(errno,
                               std::string(data_only ? "fdatasync " : "fsync ") + DescribeFd(fd));
    }
  }
  return Status::Ok();
}

Status FallocateFd(int fd, uint64_t offset, uint64_t len) {
  while (::fallocate(fd, 0, static_cast<off_t>(offset), static_cast<off_t>(len)) != 0) {
    if (errno != EINTR) {
      return Status::FromErrno(errno, "fallocate " + DescribeFd(fd) + " at offset " +
                                          std::to_string(offset) + " (len " + std::to_string(len) +
                                          ")");
    }
  }
  return Status::Ok();
}

std::unique_ptr<FileIo> MakeDefaultFileIo(unsigned depth) {
  auto uring = UringFileIo::Create(depth);
  if (uring.ok()) return std::move(uring).value();
  // Logged once per process: every I/O thread would otherwise repeat it.
  static std::atomic<bool> logged{false};
  if (!logged.exchange(true)) {
    KVT_LOG(kWarn, "io_uring unavailable, using pread/pwrite: " + uring.status().ToString());
  }
  return std::make_unique<PosixFileIo>();
}

}  // namespace kvt
