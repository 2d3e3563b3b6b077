#include "io/posix_file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace kvt {
namespace {

constexpr int kMaxRetries = 1000;

}  // namespace

void PosixFileIo::RunOne(IoRequest& r) {
  r.result = Status::Ok();
  r.bytes_done = 0;
  r.hit_eof = false;
  if (r.len == 0) return;
  if (!RequestBuffersValid(r) || r.fd < 0) {
    r.result = Status::InvalidArgument(std::string(IoOpName(r.op)) + ": bad request (fd " +
                                       std::to_string(r.fd) + ")");
    return;
  }
  int retries = 0;
  while (r.bytes_done < r.len) {
    const IoResume at = ResumePoint(r);
    size_t n = r.len - r.bytes_done;
    auto off = static_cast<off_t>(r.offset + r.bytes_done);
    ssize_t got;
    if (at.vec != nullptr) {
      const int cnt = static_cast<int>(at.vec_count);
      got = r.op == IoOp::kRead ? ::preadv(r.fd, at.vec, cnt, off) : ::pwritev(r.fd, at.vec, cnt, off);
    } else {
      void* p = at.one.iov_base;
      got = r.op == IoOp::kRead ? ::pread(r.fd, p, at.one.iov_len, off)
                                : ::pwrite(r.fd, p, at.one.iov_len, off);
    }
    if (got < 0) {
      int err = errno;
      if ((err == EINTR || err == EAGAIN) && ++retries <= kMaxRetries) continue;
      r.result = IoErrorStatus(r.op, r.fd, r.offset + r.bytes_done, n, err);
      return;
    }
    if (got == 0) {
      if (r.op == IoOp::kWrite && ++retries <= kMaxRetries) continue;
      if (r.op == IoOp::kWrite) {
        r.result = IoErrorStatus(r.op, r.fd, r.offset + r.bytes_done, n, EIO);
        return;
      }
      r.hit_eof = true;
      r.result =
          Status::IoError(std::string("read ") + DescribeFd(r.fd) + " at offset " +
                          std::to_string(r.offset) + ": end of file after " +
                          std::to_string(r.bytes_done) + " of " + std::to_string(r.len) + " bytes");
      return;
    }
    r.bytes_done += static_cast<size_t>(got);
  }
}

Status PosixFileIo::Execute(std::span<IoRequest> reqs) {
  for (IoRequest& r : reqs) RunOne(r);
  for (IoRequest& r : reqs) {
    if (!r.result.ok()) return r.result;
  }
  return Status::Ok();
}

Status PosixFileIo::Fsync(int fd) { return SyncFd(fd, /*data_only=*/false); }

Status PosixFileIo::Fdatasync(int fd) { return SyncFd(fd, /*data_only=*/true); }

Status PosixFileIo::Fallocate(int fd, uint64_t offset, uint64_t len) {
  return FallocateFd(fd, offset, len);
}

Status PosixFileIo::RegisterBuffers(std::span<const iovec> bufs) {
  if (bufs.empty()) return Status::Ok();
  return Status::Unavailable("registered buffers need io_uring; this FileIo uses pread/pwrite");
}

}  // namespace kvt
