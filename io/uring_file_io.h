// UringFileIo: FileIo on one io_uring ring.
//
// Lifecycle of a batch (Execute):
//   prepare  - requests wait in a FIFO; as many as there are free ring slots (queue depth minus
//              in-flight) get an SQE each, user_data = the request's index in the batch;
//   submit   - one io_uring_submit() per round for everything prepared;
//   reap     - wait for one CQE, then peek the rest without blocking; every CQE is marked seen.
//              -EAGAIN/-EINTR: the request goes back to the FIFO (bounded retries). A short
//              transfer advances the request (buffer, offset, remaining) and goes back to the FIFO.
//              A read returning 0 is end of file. Any other error becomes the request's Status.
//   repeat   - until the FIFO is empty and nothing is in flight.
// A request whose outcome is final is reported to the Completion at once (while others fly).
// Execute never returns while the kernel may still touch a caller's buffer. If the ring itself
// fails (a submit or wait error other than EINTR/EAGAIN/EBUSY), the instance is marked broken,
// in-flight requests are drained, and every later call fails with Internal.
//
// Thread safety: none (one ring per I/O thread).
#pragma once

#include <liburing.h>

#include <memory>
#include <vector>

#include "io/file_io.h"

namespace kvt {

class UringFileIo final : public FileIo {
 public:
  // Unavailable with the kernel's reason when io_uring_queue_init is refused (old kernel,
  // seccomp, io_uring_disabled sysctl). `depth` is clamped to [1, 4096].
  static StatusOr<std::unique_ptr<UringFileIo>> Create(unsigned depth);
  ~UringFileIo() override;
  UringFileIo(const UringFileIo&) = delete;
  UringFileIo& operator=(const UringFileIo&) = delete;

  Status Execute(std::span<IoRequest> reqs) override { return Execute(reqs, nullptr); }
  Status Execute(std::span<IoRequest> reqs, const Completion& done) override;
  Status Fsync(int fd) override;
  Status Fdatasync(int fd) override;
  Status Fallocate(int fd, uint64_t offset, uint64_t len) override;
  Status RegisterBuffers(std::span<const iovec> bufs) override;
  bool BuffersRegistered() const override { return registered_; }
  const char* Name() const override { return "io_uring"; }

 private:
  explicit UringFileIo(unsigned depth) : depth_(depth) {}
  // Fills free ring slots from the FIFO and submits. Returns false when the ring broke.
  bool SubmitPending(std::span<IoRequest> reqs);
  // Returns true when the request's outcome is final (not resubmitted).
  bool Complete(std::span<IoRequest> reqs, const io_uring_cqe* cqe);
  // Waits for everything submitted; used on the broken path and at teardown.
  void Drain();

  io_uring ring_{};
  unsigned depth_;
  unsigned inflight_ = 0;  // submitted, completion not yet reaped
  bool initialized_ = false;
  bool registered_ = false;
  bool broken_ = false;
  // Per-batch scratch, kept to avoid allocating on every Execute.
  std::vector<uint32_t> fifo_;
  size_t fifo_head_ = 0;
  std::vector<uint16_t> retries_;
  std::vector<uint8_t> finished_;  // reported to the Completion
};

}  // namespace kvt
