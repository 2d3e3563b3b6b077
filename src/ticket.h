// Ticket: one asynchronous prefetch. It completes layer by layer; waiting on layer i returns as
// soon as layer i of every block in the ticket is resident in the target tier. While the ticket
// lives, the blocks it brought in are pinned there (not evictable, bytes stable).
//
// Producers (the prefetch pipeline) call MarkLayerDone / Fail; consumers call Wait / WaitLayer.
// Thread safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "base/status.h"

namespace kvt {

class Ticket {
 public:
  // on_release runs once when the ticket is destroyed (drops the pins it holds).
  Ticket(uint32_t layers, std::function<void()> on_release)
      : layers_(layers), done_(layers, false), on_release_(std::move(on_release)) {}
  ~Ticket() {
    if (on_release_) on_release_();
  }
  Ticket(const Ticket&) = delete;
  Ticket& operator=(const Ticket&) = delete;

  uint32_t layers() const { return layers_; }

  void MarkLayerDone(uint32_t layer) {
    std::lock_guard<std::mutex> l(mu_);
    if (layer < layers_) done_[layer] = true;
    cv_.notify_all();
  }
  void MarkAllDone() {
    std::lock_guard<std::mutex> l(mu_);
    done_.assign(layers_, true);
    cv_.notify_all();
  }
  // The prefetch failed: every wait returns `s` (NotFound when a key was missing).
  void Fail(Status s) {
    std::lock_guard<std::mutex> l(mu_);
    failure_ = std::move(s);
    failed_ = true;
    cv_.notify_all();
  }

  // timeout_us < 0: forever; 0: poll. InvalidArgument for a layer out of range.
  Status WaitLayer(uint32_t layer, int64_t timeout_us) {
    if (layer >= layers_) {
      return Status::InvalidArgument("layer " + std::to_string(layer) + " out of range (ticket has " +
                                     std::to_string(layers_) + " layers)");
    }
    return WaitUntil([&] { return done_[layer]; }, timeout_us);
  }
  Status Wait(int64_t timeout_us) {
    return WaitUntil(
        [&] {
          for (bool d : done_)
            if (!d) return false;
          return true;
        },
        timeout_us);
  }

 private:
  template <typename Pred>
  Status WaitUntil(Pred ready, int64_t timeout_us) {
    std::unique_lock<std::mutex> l(mu_);
    auto finished = [&] { return failed_ || ready(); };
    if (timeout_us < 0) {
      cv_.wait(l, finished);
    } else if (!cv_.wait_for(l, std::chrono::microseconds(timeout_us), finished)) {
      return Status::Timeout("prefetch not complete after " + std::to_string(timeout_us) + " us");
    }
    return failed_ ? failure_ : Status::Ok();
  }

  const uint32_t layers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<bool> done_;  // GUARDED_BY(mu_)
  bool failed_ = false;     // GUARDED_BY(mu_)
  Status failure_;          // GUARDED_BY(mu_)
  std::function<void()> on_release_;
};

}  // namespace kvt
