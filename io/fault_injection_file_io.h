// Fault injection for FileIo, for tests: FaultInjectionFileIo wraps any FileIo and, as told by a
// shared FaultController, fails operations with EIO or ENOSPC or turns them into short transfers.
//
// A "short" fault models a torn transfer: the first half of the request (rounded down to 4 KiB,
// so O_DIRECT alignment holds) really moves, then the request fails with EIO and reports the
// bytes it moved. (Benign short transfers never reach callers: the real implementations resume
// them.) On Fsync/Fdatasync a short fault is plain EIO.
//
// Rules select an operation type and fire with a probability per matching op, or at the Nth
// matching op after the rule was added, optionally at most max_faults times. The random stream is
// seeded: the same single-threaded sequence of operations gets the same faults.
//
// Thread safety: FaultController is thread-safe and may be shared by the wrappers of many I/O
// threads (a tier creates one FileIo per thread through a factory); FaultInjectionFileIo has the
// FileIo contract (one thread).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <vector>

#include "io/file_io.h"

namespace kvt {

enum class FaultOp : uint8_t { kRead = 0, kWrite, kSync, kFallocate, kCount };
enum class FaultKind : uint8_t { kEio = 0, kEnospc, kShort };

struct FaultRule {
  FaultOp op = FaultOp::kRead;
  FaultKind kind = FaultKind::kEio;
  double probability = 0.0;  // per matching op; used when nth == 0
  uint64_t nth = 0;          // 1-based: the Nth matching op after AddRule fails
  uint64_t max_faults = UINT64_MAX;
};

class FaultController {
 public:
  explicit FaultController(uint64_t seed = 1) : rng_(seed) {}

  void AddRule(const FaultRule& rule);
  void Clear();
  // Makes RegisterBuffers fail as a kernel would under a small memlock limit.
  void set_refuse_register_buffers(bool v) { refuse_register_.store(v); }
  bool refuse_register_buffers() const { return refuse_register_.load(); }

  // Counts one operation of type `op` and says which fault, if any, it gets.
  std::optional<FaultKind> Decide(FaultOp op);

  uint64_t ops(FaultOp op) const;
  uint64_t injected(FaultOp op) const;
  uint64_t injected_total() const;

 private:
  struct ActiveRule {
    FaultRule rule;
    uint64_t seen = 0;
    uint64_t fired = 0;
  };
  mutable std::mutex mu_;
  std::mt19937_64 rng_;                 // GUARDED_BY(mu_)
  std::vector<ActiveRule> rules_;       // GUARDED_BY(mu_)
  std::array<uint64_t, 4> ops_{};       // GUARDED_BY(mu_)
  std::array<uint64_t, 4> injected_{};  // GUARDED_BY(mu_)
  std::atomic<bool> refuse_register_{false};
};

class FaultInjectionFileIo final : public FileIo {
 public:
  FaultInjectionFileIo(std::unique_ptr<FileIo> base, std::shared_ptr<FaultController> ctl)
      : base_(std::move(base)), ctl_(std::move(ctl)) {}

  using FileIo::Execute;
  Status Execute(std::span<IoRequest> reqs) override;
  Status Fsync(int fd) override;
  Status Fdatasync(int fd) override;
  Status Fallocate(int fd, uint64_t offset, uint64_t len) override;
  Status RegisterBuffers(std::span<const iovec> bufs) override;
  bool BuffersRegistered() const override { return base_->BuffersRegistered(); }
  const char* Name() const override { return base_->Name(); }

 private:
  std::unique_ptr<FileIo> base_;
  std::shared_ptr<FaultController> ctl_;
  // Per-batch scratch: the requests that go to the base FileIo and where they came from.
  std::vector<IoRequest> pass_;
  std::vector<size_t> origin_;
  std::vector<std::optional<FaultKind>> faults_;
  std::vector<std::vector<iovec>> trimmed_;  // the buffers of shortened vectored requests
};

}  // namespace kvt
