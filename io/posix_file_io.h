// PosixFileIo: FileIo on pread/pwrite, one request at a time. The fallback when the kernel or a
// sandbox (seccomp) refuses io_uring: slower (no batching, one syscall per request), same
// semantics: EINTR/EAGAIN retried, short transfers advanced, EOF reported.
//
// Thread safety: none (same contract as every FileIo).
#pragma once

#include "io/file_io.h"

namespace kvt {

class PosixFileIo final : public FileIo {
 public:
  using FileIo::Execute;
  Status Execute(std::span<IoRequest> reqs) override;
  Status Fsync(int fd) override;
  Status Fdatasync(int fd) override;
  Status Fallocate(int fd, uint64_t offset, uint64_t len) override;
  // Registered buffers are an io_uring feature: always Unavailable here.
  Status RegisterBuffers(std::span<const iovec> bufs) override;
  bool BuffersRegistered() const override { return false; }
  const char* Name() const override { return "posix"; }

 private:
  static void RunOne(IoRequest& r);
};

}  // namespace kvt
