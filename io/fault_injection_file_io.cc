#include "io/fault_injection_file_io.h"

#include <algorithm>
#include <cerrno>

namespace kvt {
namespace {

constexpr size_t kShortAlign = 4096;

size_t Idx(FaultOp op) { return static_cast<size_t>(op); }

int ErrnoOf(FaultKind k) { return k == FaultKind::kEnospc ? ENOSPC : EIO; }

}  // namespace

void FaultController::AddRule(const FaultRule& rule) {
  std::lock_guard<std::mutex> l(mu_);
  rules_.push_back(ActiveRule{rule});
}

void FaultController::Clear() {
  std::lock_guard<std::mutex> l(mu_);
  rules_.clear();
}

std::optional<FaultKind> FaultController::Decide(FaultOp op) {
  std::lock_guard<std::mutex> l(mu_);
  ++ops_[Idx(op)];
  std::optional<FaultKind> out;
  for (ActiveRule& r : rules_) {
    if (r.rule.op != op) continue;
    ++r.seen;
    if (out || r.fired >= r.rule.max_faults) continue;
    bool fire = r.rule.nth != 0
                    ? r.seen == r.rule.nth
                    : std::uniform_real_distribution<double>(0.0, 1.0)(rng_) < r.rule.probability;
    if (fire) {
      ++r.fired;
      out = r.rule.kind;
    }
  }
  if (out) ++injected_[Idx(op)];
  return out;
}

uint64_t FaultController::ops(FaultOp op) const {
  std::lock_guard<std::mutex> l(mu_);
  return ops_[Idx(op)];
}

uint64_t FaultController::injected(FaultOp op) const {
  std::lock_guard<std::mutex> l(mu_);
  return injected_[Idx(op)];
}

uint64_t FaultController::injected_total() const {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t t = 0;
  for (uint64_t v : injected_) t += v;
  return t;
}

Status FaultInjectionFileIo::Execute(std::span<IoRequest> reqs) {
  pass_.clear();
  origin_.clear();
  trimmed_.clear();
  faults_.assign(reqs.size(), std::nullopt);
  for (size_t i = 0; i < reqs.size(); ++i) {
    IoRequest& r = reqs[i];
    r.result = Status::Ok();
    r.bytes_done = 0;
    r.hit_eof = false;
    faults_[i] = ctl_->Decide(r.op == IoOp::kRead ? FaultOp::kRead : FaultOp::kWrite);
    if (!faults_[i]) {
      pass_.push_back(r);
      origin_.push_back(i);
    } else if (*faults_[i] == FaultKind::kShort) {
      size_t part = r.len / 2 / kShortAlign * kShortAlign;
      if (part > 0) {
        IoRequest p = r;
        p.len = part;
        if (r.iov != nullptr) {
          // The first `part` bytes of the buffers (their arrays live until Execute returns).
          std::vector<iovec>& v = trimmed_.emplace_back();
          size_t left = 0;
          for (uint32_t k = 0; k < r.iovcnt && left < part; ++k) {
            v.push_back(r.iov[k]);
            v.back().iov_len = std::min(v.back().iov_len, part - left);
            left += v.back().iov_len;
          }
          p.iov = v.data();
          p.iovcnt = static_cast<uint32_t>(v.size());
        }
        pass_.push_back(p);
        origin_.push_back(i);
      }
    }
  }
  if (!pass_.empty()) {
    Status ignored = base_->Execute(pass_);  // per-request results are copied back below
    (void)ignored;
  }
  for (size_t j = 0; j < pass_.size(); ++j) {
    IoRequest& r = reqs[origin_[j]];
    r.result = pass_[j].result;
    r.bytes_done = pass_[j].bytes_done;
    r.hit_eof = pass_[j].hit_eof;
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (!faults_[i]) continue;
    IoRequest& r = reqs[i];
    if (!r.result.ok()) continue;  // the real I/O of a short fault already failed
    Status injected = IoErrorStatus(r.op, r.fd, r.offset + r.bytes_done, r.len - r.bytes_done,
                                    ErrnoOf(*faults_[i]));
    r.result = injected.WithContext(*faults_[i] == FaultKind::kShort ? "injected short transfer"
                                                                     : "injected fault");
  }
  for (IoRequest& r : reqs) {
    if (!r.result.ok()) return r.result;
  }
  return Status::Ok();
}

Status FaultInjectionFileIo::Fsync(int fd) {
  if (auto f = ctl_->Decide(FaultOp::kSync)) {
    return Status::FromErrno(ErrnoOf(*f), "fsync " + DescribeFd(fd)).WithContext("injected fault");
  }
  return base_->Fsync(fd);
}

Status FaultInjectionFileIo::Fdatasync(int fd) {
  if (auto f = ctl_->Decide(FaultOp::kSync)) {
    return Status::FromErrno(ErrnoOf(*f), "fdatasync " + DescribeFd(fd))
        .WithContext("injected fault");
  }
  return base_->Fdatasync(fd);
}

Status FaultInjectionFileIo::Fallocate(int fd, uint64_t offset, uint64_t len) {
  if (auto f = ctl_->Decide(FaultOp::kFallocate)) {
    return Status::FromErrno(ErrnoOf(*f),
                             "fallocate " + DescribeFd(fd) + " at offset " + std::to_string(offset))
        .WithContext("injected fault");
  }
  return base_->Fallocate(fd, offset, len);
}

Status FaultInjectionFileIo::RegisterBuffers(std::span<const iovec> bufs) {
  if (!bufs.empty() && ctl_->refuse_register_buffers()) {
    return Status::Unavailable(
        "io_uring_register_buffers refused: Cannot allocate memory (errno 12) (injected)");
  }
  return base_->RegisterBuffers(bufs);
}

}  // namespace kvt
