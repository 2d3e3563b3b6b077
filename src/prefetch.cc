#include "src/prefetch.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "base/counter.h"
#include "io/aligned_buffer.h"

namespace kvt {
// One prefetch. Shared by the ticket (which only sets `cancelled`) and the worker; the pins are
// dropped when the last of them lets go.
struct PrefetchPipeline::Job {
  enum HbmState : uint8_t { kNone, kReserved, kPublished };

  Mover* mover = nullptr;
  uint64_t ns = 0;
  std::vector<Hash128> keys;
  BlockLayout geo;
  bool to_hbm = false;
  std::shared_ptr<TicketState> state;
  std::atomic<bool> cancelled{false};
  // Touched only by the worker, then by the destructor.
  std::vector<PinnedBlock> host;
  std::vector<uint8_t> has_host;
  std::vector<HbmBlock> hbm;
  std::vector<HbmState> hbm_state;
  // One per layer enqueued. Kept until the job goes (after the ticket's release), because the
  // ticket hands the CUDA events out to streams.
  std::vector<std::unique_ptr<DeviceEvent>> events;

  ~Job() {
    ReleaseHost();
    for (size_t i = 0; i < hbm.size(); ++i) {
      if (hbm_state[i] == kReserved) mover->hbm()->Abort(hbm[i]);
      if (hbm_state[i] == kPublished) mover->hbm()->Unpin(hbm[i]);
    }
  }
  void ReleaseHost() {
    for (size_t i = 0; i < host.size(); ++i) {
      if (has_host[i]) mover->host()->Unpin(host[i]);
      has_host[i] = 0;
    }
  }
  bool Cancelled() const { return cancelled.load(std::memory_order_relaxed); }
};

PrefetchPipeline::PrefetchPipeline(Mover* mover) : mover_(mover) {
  worker_ = std::thread([this] { WorkerLoop(); });
}

PrefetchPipeline::~PrefetchPipeline() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
    for (auto& job : queue_) {
      job->state->Fail(Status::Unavailable("prefetch abandoned: the store is closing"));
    }
    queue_.clear();
    c_.queued.store(0, std::memory_order_relaxed);
  }
  cv_.notify_all();
  worker_.join();
}

StatusOr<std::unique_ptr<Ticket>> PrefetchPipeline::Start(uint64_t ns,
                                                          std::span<const Hash128> keys,
                                                          const BlockLayout& geo, bool to_hbm) {
  if (to_hbm && mover_->hbm() == nullptr) {
    return Status::Unavailable("prefetch to HBM: this store has no HBM tier (set hbm_bytes > 0)");
  }
  auto job = std::make_shared<Job>();
  job->mover = mover_;
  job->ns = ns;
  job->keys.assign(keys.begin(), keys.end());
  job->geo = geo;
  job->to_hbm = to_hbm;
  job->state = std::make_shared<TicketState>(static_cast<uint32_t>(geo.layers));
  job->host.resize(keys.size());
  job->has_host.assign(keys.size(), 0);
  job->hbm.resize(to_hbm ? keys.size() : 0);
  job->hbm_state.assign(job->hbm.size(), Job::kNone);
  auto ticket = std::make_unique<Ticket>(job->state, [job] { job->cancelled = true; });
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return Status::Unavailable("prefetch: the store is closing");
    queue_.push_back(std::move(job));
    const uint64_t q = c_.queued.fetch_add(1, std::memory_order_relaxed) + 1;
    if (q > c_.queued_high_water.load(std::memory_order_relaxed)) {
      c_.queued_high_water.store(q, std::memory_order_relaxed);
    }
  }
  cv_.notify_one();
  return ticket;
}

void PrefetchPipeline::WorkerLoop() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping
      job = std::move(queue_.front());
      queue_.pop_front();
      c_.queued.fetch_sub(1, std::memory_order_relaxed);
    }
    Run(*job);
  }
}

void PrefetchPipeline::Run(Job& job) {
  Add(c_.jobs);
  Add(c_.blocks, job.keys.size());
  Status st = BringToHost(job);
  if (st.ok() && !job.Cancelled()) {
    if (job.to_hbm) {
      st = CopyLayersToHbm(job);
    } else {
      // Every layer of a block in the host tier is resident at once.
      job.state->SetSlots(std::vector<int64_t>(job.keys.size(), -1));
      job.state->MarkAllDone();
      Add(c_.layers_completed, job.geo.layers);
      if (hook_) hook_(static_cast<uint32_t>(job.geo.layers - 1));
    }
  }
  if (job.Cancelled()) {
    Add(c_.jobs_cancelled);
  } else if (!st.ok()) {
    Add(c_.jobs_failed);
    job.state->Fail(st);
  }
}

Status PrefetchPipeline::BringToHost(Job& job) {
  const uint64_t block_bytes = static_cast<uint64_t>(job.geo.block_bytes());
  const size_t n = job.keys.size();
  // Blocks already in HBM (HBM target) are pinned in place; the rest come to the host tier in one
  // batch through the mover.
  std::vector<Hash128> keys;
  std::vector<size_t> pos;
  for (size_t i = 0; i < n && !job.Cancelled(); ++i) {
    if (job.to_hbm && mover_->hbm()->Pin(job.ns, job.keys[i], &job.hbm[i])) {
      job.hbm_state[i] = Job::kPublished;
      Add(c_.blocks_in_hbm);
      continue;
    }
    keys.push_back(job.keys[i]);
    pos.push_back(i);
  }
  std::vector<SlotPin> pins(keys.size());
  std::vector<FetchResult> got(keys.size());
  FetchOptions fo;
  fo.skip_hbm = job.to_hbm;
  fo.block_bytes = block_bytes;
  fo.cancelled = [&job] { return job.Cancelled(); };
  mover_->FetchToHost(job.ns, keys, pins, got, fo);
  size_t missing = 0;
  Status first;
  for (size_t k = 0; k < keys.size(); ++k) {
    const size_t i = pos[k];
    if (!got[k].status.ok()) {
      if (got[k].status.IsNotFound()) {
        ++missing;
      } else if (first.ok()) {
        first = got[k].status.WithContext("prefetch of block " + std::to_string(i));
      }
      continue;
    }
    job.host[i] = pins[k];
    job.has_host[i] = 1;
    switch (got[k].from) {
      case TierKind::kNvme:
        Add(c_.blocks_from_nvme);
        Add(c_.bytes_nvme_to_host, block_bytes);
        break;
      case TierKind::kRemote:
        Add(c_.blocks_from_remote);
        break;
      default:
        Add(c_.blocks_in_host);
    }
    if (first.ok() && pins[k].meta.payload_bytes != block_bytes) {
      first = Status::Internal("prefetch: stored block of " +
                               std::to_string(pins[k].meta.payload_bytes) +
                               " bytes in a namespace of " + std::to_string(block_bytes) +
                               "-byte blocks");
    }
  }
  if (job.Cancelled()) return Status::Ok();
  KVT_RETURN_IF_ERROR(first);
  if (missing > 0) {
    return Status::NotFound(std::to_string(missing) + " of " + std::to_string(n) +
                            " blocks are not stored");
  }
  return Status::Ok();
}

Status PrefetchPipeline::CopyLayersToHbm(Job& job) {
  HbmTier* hbm = mover_->hbm();
  DeviceMemory* dev = hbm->device();
  const GpuStream stream = dev->copy_stream();
  const size_t n = job.keys.size();
  for (size_t i = 0; i < n; ++i) {
    if (!job.has_host[i]) continue;
    auto r = hbm->Reserve(job.host[i].meta);
    if (!r.ok()) return r.status().WithContext("prefetch to HBM");
    job.hbm[i] = *r;
    job.hbm_state[i] = Job::kReserved;
  }
  std::vector<int64_t> slots(n);
  for (size_t i = 0; i < n; ++i) slots[i] = job.hbm[i].slot;
  job.state->SetSlots(std::move(slots));

  const uint32_t layers = static_cast<uint32_t>(job.geo.layers);
  const uint64_t lb = static_cast<uint64_t>(job.geo.layer_bytes());
  std::vector<std::unique_ptr<DeviceEvent>>& events = job.events;
  uint32_t marked = 0;
  // The last layer is marked only after the blocks are published (below).
  auto mark = [&] {
    job.state->MarkLayerDone(marked);
    Add(c_.layers_completed);
    if (hook_) hook_(marked);
    ++marked;
  };
  // Each layer's copies go out as one batch followed by one event, and a layer is marked done as
  // soon as its event has fired, polled while the next layers are enqueued: host-side waiters
  // (WaitLayer) get layer 0 while the rest is still being queued. With real copies (a GPU) a layer
  // is marked only once the next layer's event exists, so a stream-side waiter (WaitLayerEvent)
  // woken by a mark always finds the following event. Emulated copies are synchronous, so there
  // each layer is marked as soon as it is copied.
  const uint32_t lookahead = dev->emulated() ? 0 : 1;
  std::vector<DeviceCopy> ops;
  ops.reserve(n);
  Status st;
  for (uint32_t l = 0; l < layers && st.ok() && !job.Cancelled(); ++l) {
    ops.clear();
    for (size_t i = 0; i < n; ++i) {
      if (job.hbm_state[i] != Job::kReserved) continue;
      ops.push_back({job.hbm[i].data + l * lb, job.host[i].data + l * lb, lb});
    }
    st = dev->CopyBatchAsync(ops.data(), ops.size(), stream);
    if (!st.ok()) break;
    auto ev = dev->Record(stream);
    if (!ev.ok()) {
      st = ev.status();
      break;
    }
    events.push_back(std::move(ev).value());
    job.state->SetLayerEvent(l, events.back()->native());
    Add(c_.bytes_host_to_hbm, lb * ops.size());
    while (marked + lookahead < events.size() && marked + 1 < layers &&
           events[marked]->Ready()) {
      mark();
    }
  }
  // Copies in flight must land before their slots can be given up or published: wait for all.
  for (uint32_t m = marked; m < events.size(); ++m) {
    Status w = events[m]->Wait();
    if (st.ok()) st = w;
    if (st.ok() && !job.Cancelled() && m + 1 < layers) mark();
  }
  if (!st.ok()) return st.WithContext("prefetch to HBM: copy host -> device");
  if (job.Cancelled()) return Status::Ok();
  for (size_t i = 0; i < n; ++i) {
    if (job.hbm_state[i] != Job::kReserved) continue;
    hbm->Publish(job.hbm[i]);
    job.hbm_state[i] = Job::kPublished;
  }
  job.ReleaseHost();  // the host copies are no longer needed by this ticket
  mark();
  return Status::Ok();
}

void PrefetchPipeline::VisitCounters(const CounterVisitor& visit) const {
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  visit("jobs", get(c_.jobs));
  visit("jobs_failed", get(c_.jobs_failed));
  visit("jobs_cancelled", get(c_.jobs_cancelled));
  visit("blocks", get(c_.blocks));
  visit("blocks_in_hbm", get(c_.blocks_in_hbm));
  visit("blocks_in_host", get(c_.blocks_in_host));
  visit("blocks_from_nvme", get(c_.blocks_from_nvme));
  visit("blocks_from_remote", get(c_.blocks_from_remote));
  visit("bytes_nvme_to_host", get(c_.bytes_nvme_to_host));
  visit("bytes_host_to_hbm", get(c_.bytes_host_to_hbm));
  visit("layers_completed", get(c_.layers_completed));
  visit("queued", get(c_.queued));
  visit("queued_high_water", get(c_.queued_high_water));
}

void PrefetchPipeline::StatsJson(nlohmann::json* out) const {
  VisitCounters(JsonCounterVisitor(out));
}

}  // namespace kvt
