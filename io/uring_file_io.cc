#include "io/uring_file_io.h"

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kvt {
namespace {

// EAGAIN/EINTR on one request are transient; a request that keeps failing this way is an error
// rather than a livelock.
constexpr uint16_t kMaxRetries = 1000;

}  // namespace

StatusOr<std::unique_ptr<UringFileIo>> UringFileIo::Create(unsigned depth) {
  depth = std::clamp(depth, 1u, 4096u);
  std::unique_ptr<UringFileIo> io(new UringFileIo(depth));
  int ret = io_uring_queue_init(depth, &io->ring_, 0);
  if (ret < 0) {
    return Status::Unavailable(std::string("io_uring_queue_init(") + std::to_string(depth) +
                               ") refused: " + std::strerror(-ret) + " (errno " +
                               std::to_string(-ret) + ")");
  }
  io->initialized_ = true;
  return io;
}

UringFileIo::~UringFileIo() {
  if (!initialized_) return;
  Drain();
  io_uring_queue_exit(&ring_);
}

void UringFileIo::Drain() {
  while (inflight_ > 0) {
    io_uring_cqe* cqe = nullptr;
    int ret = io_uring_wait_cqe(&ring_, &cqe);
    if (ret == -EINTR || ret == -EAGAIN) continue;
    if (ret < 0) break;  // ring unusable; io_uring_queue_exit cancels what is left
    io_uring_cqe_seen(&ring_, cqe);
    --inflight_;
  }
}

bool UringFileIo::SubmitPending(std::span<IoRequest> reqs) {
  unsigned prepared = 0;
  while (fifo_head_ < fifo_.size() && inflight_ + prepared < depth_) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) break;
    uint32_t idx = fifo_[fifo_head_++];
    IoRequest& r = reqs[idx];
    const IoResume at = ResumePoint(r);
    auto* p = static_cast<uint8_t*>(at.one.iov_base);
    auto n = static_cast<unsigned>(at.one.iov_len);
    uint64_t off = r.offset + r.bytes_done;
    bool fixed = registered_ && r.fixed_index >= 0 && r.iov == nullptr;
    if (at.vec != nullptr) {
      if (r.op == IoOp::kRead) {
        io_uring_prep_readv(sqe, r.fd, at.vec, at.vec_count, off);
      } else {
        io_uring_prep_writev(sqe, r.fd, at.vec, at.vec_count, off);
      }
    } else if (r.op == IoOp::kRead) {
      if (fixed) {
        io_uring_prep_read_fixed(sqe, r.fd, p, n, off, r.fixed_index);
      } else {
        io_uring_prep_read(sqe, r.fd, p, n, off);
      }
    } else {
      if (fixed) {
        io_uring_prep_write_fixed(sqe, r.fd, p, n, off, r.fixed_index);
      } else {
        io_uring_prep_write(sqe, r.fd, p, n, off);
      }
    }
    io_uring_sqe_set_data64(sqe, idx);
    ++prepared;
  }
  // io_uring_submit returns how many SQEs the kernel consumed; EINTR/EAGAIN/EBUSY (completion
  // queue full) leave them queued for the next round, after the caller reaps.
  while (prepared > 0) {
    int ret = io_uring_submit(&ring_);
    if (ret >= 0) {
      inflight_ += static_cast<unsigned>(ret);
      prepared -= std::min<unsigned>(prepared, static_cast<unsigned>(ret));
      if (ret == 0) break;
      continue;
    }
    if (ret == -EINTR) continue;
    if (ret == -EAGAIN || ret == -EBUSY) {
      if (inflight_ > 0) return true;  // reap first, then the queued SQEs go out next round
      sched_yield();
      continue;
    }
    broken_ = true;
    return false;
  }
  return true;
}

bool UringFileIo::Complete(std::span<IoRequest> reqs, const io_uring_cqe* cqe) {
  auto idx = static_cast<uint32_t>(io_uring_cqe_get_data64(cqe));
  IoRequest& r = reqs[idx];
  int res = cqe->res;
  if (res == -EAGAIN || res == -EINTR) {
    if (++retries_[idx] <= kMaxRetries) {
      fifo_.push_back(idx);
      return false;
    }
  }
  if (res < 0) {
    r.result = IoErrorStatus(r.op, r.fd, r.offset + r.bytes_done, r.len - r.bytes_done, -res);
    return true;
  }
  if (res == 0) {
    if (r.op == IoOp::kRead) {
      r.hit_eof = true;
      r.result =
          Status::IoError(std::string("read ") + DescribeFd(r.fd) + " at offset " +
                          std::to_string(r.offset) + ": end of file after " +
                          std::to_string(r.bytes_done) + " of " + std::to_string(r.len) + " bytes");
    } else if (++retries_[idx] <= kMaxRetries) {
      fifo_.push_back(idx);  // a write that made no progress: try again, bounded
      return false;
    } else {
      r.result = IoErrorStatus(r.op, r.fd, r.offset + r.bytes_done, r.len - r.bytes_done, EIO);
    }
    return true;
  }
  r.bytes_done += static_cast<size_t>(res);
  if (r.bytes_done < r.len) {
    fifo_.push_back(idx);  // short transfer: advance and resubmit
    return false;
  }
  return true;
}

Status UringFileIo::Execute(std::span<IoRequest> reqs, const Completion& done) {
  if (broken_) return Status::Internal("io_uring ring is broken after an earlier ring error");
  fifo_.clear();
  fifo_head_ = 0;
  retries_.assign(reqs.size(), 0);
  finished_.assign(reqs.size(), 0);
  auto finish = [&](size_t i) {
    finished_[i] = 1;
    if (done) done(i);
  };
  for (size_t i = 0; i < reqs.size(); ++i) {
    IoRequest& r = reqs[i];
    r.result = Status::Ok();
    r.bytes_done = 0;
    r.hit_eof = false;
    if (r.len == 0) {
      finish(i);
      continue;
    }
    if (!RequestBuffersValid(r) || r.fd < 0 || r.len > (1u << 30)) {
      r.result =
          Status::InvalidArgument(std::string(IoOpName(r.op)) + ": bad request (fd " +
                                  std::to_string(r.fd) + ", len " + std::to_string(r.len) + ")");
      finish(i);
      continue;
    }
    fifo_.push_back(static_cast<uint32_t>(i));
  }
  while (fifo_head_ < fifo_.size() || inflight_ > 0) {
    if (!SubmitPending(reqs)) break;
    if (inflight_ == 0) continue;
    io_uring_cqe* cqe = nullptr;
    int ret = io_uring_wait_cqe(&ring_, &cqe);
    if (ret == -EINTR || ret == -EAGAIN) continue;
    if (ret < 0) {
      broken_ = true;
      break;
    }
    do {
      auto idx = static_cast<size_t>(io_uring_cqe_get_data64(cqe));
      bool final = Complete(reqs, cqe);
      io_uring_cqe_seen(&ring_, cqe);
      --inflight_;
      if (final) {
        // Refill the ring before the caller's work on this request, so the device stays busy.
        if (done && !SubmitPending(reqs)) {
          finish(idx);
          break;
        }
        finish(idx);
      }
    } while (io_uring_peek_cqe(&ring_, &cqe) == 0);
  }
  if (broken_) {
    Drain();
    for (size_t i = 0; i < reqs.size(); ++i) {
      IoRequest& r = reqs[i];
      if (r.result.ok() && r.bytes_done < r.len) {
        r.result = Status::Internal(std::string(IoOpName(r.op)) + " " + DescribeFd(r.fd) +
                                    ": io_uring ring failed");
      }
      if (!finished_[i]) finish(i);
    }
  }
  for (IoRequest& r : reqs) {
    if (!r.result.ok()) return r.result;
  }
  return Status::Ok();
}

Status UringFileIo::Fsync(int fd) { return SyncFd(fd, /*data_only=*/false); }

Status UringFileIo::Fdatasync(int fd) { return SyncFd(fd, /*data_only=*/true); }

Status UringFileIo::Fallocate(int fd, uint64_t offset, uint64_t len) {
  return FallocateFd(fd, offset, len);
}

Status UringFileIo::RegisterBuffers(std::span<const iovec> bufs) {
  if (broken_) return Status::Internal("io_uring ring is broken");
  if (registered_) {
    io_uring_unregister_buffers(&ring_);
    registered_ = false;
  }
  if (bufs.empty()) return Status::Ok();
  int ret = io_uring_register_buffers(&ring_, bufs.data(), static_cast<unsigned>(bufs.size()));
  if (ret < 0) {
    uint64_t total = 0;
    for (const iovec& v : bufs) total += v.iov_len;
    std::string hint = (ret == -ENOMEM || ret == -EPERM)
                           ? " (pinned memory over RLIMIT_MEMLOCK: raise ulimit -l)"
                           : "";
    return Status::Unavailable("io_uring_register_buffers of " + std::to_string(bufs.size()) +
                               " buffers (" + std::to_string(total) +
                               " bytes) refused: " + std::strerror(-ret) + " (errno " +
                               std::to_string(-ret) + ")" + hint);
  }
  registered_ = true;
  return Status::Ok();
}

}  // namespace kvt
