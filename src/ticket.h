// Ticket: one asynchronous prefetch. It completes layer by layer; waiting on layer i returns as
// soon as layer i of every block in the ticket is resident in the target tier. While the ticket
// lives, the blocks it brought in are pinned there (not evictable, bytes stable).
//
// The completion state (TicketState) is shared between the caller's Ticket and the pipeline that
// fills it, so a ticket released while its transfers are in flight leaves the pipeline a valid
// state to write to; on_release (run by ~Ticket) cancels the rest of the work.
//
// Producers (the prefetch pipeline) call MarkLayerDone / Fail; consumers call Wait / WaitLayer.
// Thread safety: all methods may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "base/status.h"

namespace kvt {

class TicketState {
 public:
  explicit TicketState(uint32_t layers)
      : layers_(layers), done_(layers, false), events_(layers, nullptr) {}

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
  // The prefetch failed: every wait returns `s` (NotFound when a key was missing). The first
  // failure wins.
  void Fail(Status s) {
    std::lock_guard<std::mutex> l(mu_);
    if (!failed_) failure_ = std::move(s);
    failed_ = true;
    cv_.notify_all();
  }
  // Where each block sits in the target tier: its HBM slot index (kernels read it in place
  // through a block table), or -1 for the host tier. Set before layer 0 completes.
  void SetSlots(std::vector<int64_t> slots) {
    std::lock_guard<std::mutex> l(mu_);
    slots_ = std::move(slots);
  }
  std::vector<int64_t> Slots() const {
    std::lock_guard<std::mutex> l(mu_);
    return slots_;
  }

  // The pipeline has enqueued layer `layer`'s copies on the device, followed by `event` (a
  // cudaEvent_t that outlives the ticket's users: the job owning it lives until release).
  void SetLayerEvent(uint32_t layer, void* event) {
    std::lock_guard<std::mutex> l(mu_);
    if (layer < layers_) events_[layer] = event;
    cv_.notify_all();
  }

  // timeout_us < 0: forever; 0: poll. InvalidArgument for a layer out of range.
  Status WaitLayer(uint32_t layer, int64_t timeout_us) {
    KVT_RETURN_IF_ERROR(CheckLayer(layer));
    return WaitUntil([&] { return done_[layer]; }, timeout_us);
  }
  // Returns as soon as there is a device event for the layer (*event, to wait on in a stream), or
  // the layer is resident (*event = nullptr: nothing left to wait for).
  Status WaitLayerEvent(uint32_t layer, int64_t timeout_us, void** event) {
    KVT_RETURN_IF_ERROR(CheckLayer(layer));
    KVT_RETURN_IF_ERROR(
        WaitUntil([&] { return done_[layer] || events_[layer] != nullptr; }, timeout_us));
    std::lock_guard<std::mutex> g(mu_);
    *event = done_[layer] ? nullptr : events_[layer];
    return Status::Ok();
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
  Status CheckLayer(uint32_t layer) const {
    if (layer < layers_) return Status::Ok();
    return Status::InvalidArgument("layer " + std::to_string(layer) + " out of range (ticket has " +
                                   std::to_string(layers_) + " layers)");
  }
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
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<bool> done_;       // GUARDED_BY(mu_)
  bool failed_ = false;          // GUARDED_BY(mu_)
  Status failure_;               // GUARDED_BY(mu_)
  std::vector<int64_t> slots_;   // GUARDED_BY(mu_)
  std::vector<void*> events_;    // GUARDED_BY(mu_)
};

class Ticket {
 public:
  // on_release runs once when the ticket is destroyed (drops the pins it holds).
  Ticket(uint32_t layers, std::function<void()> on_release)
      : Ticket(std::make_shared<TicketState>(layers), std::move(on_release)) {}
  Ticket(std::shared_ptr<TicketState> state, std::function<void()> on_release)
      : state_(std::move(state)), on_release_(std::move(on_release)) {}
  ~Ticket() {
    if (on_release_) on_release_();
  }
  Ticket(const Ticket&) = delete;
  Ticket& operator=(const Ticket&) = delete;

  uint32_t layers() const { return state_->layers(); }
  void MarkLayerDone(uint32_t layer) { state_->MarkLayerDone(layer); }
  void MarkAllDone() { state_->MarkAllDone(); }
  void Fail(Status s) { state_->Fail(std::move(s)); }
  Status WaitLayer(uint32_t layer, int64_t timeout_us) { return state_->WaitLayer(layer, timeout_us); }
  Status Wait(int64_t timeout_us) { return state_->Wait(timeout_us); }
  Status WaitLayerEvent(uint32_t layer, int64_t timeout_us, void** event) {
    return state_->WaitLayerEvent(layer, timeout_us, event);
  }
  // See TicketState::SetSlots; meaningful once a wait returned OK.
  std::vector<int64_t> Slots() const { return state_->Slots(); }
  const std::shared_ptr<TicketState>& state() const { return state_; }

 private:
  std::shared_ptr<TicketState> state_;
  std::function<void()> on_release_;
};

}  // namespace kvt
