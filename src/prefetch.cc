#include "src/prefetch.h"

#include <algorithm>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/counter.h"
#include "io/aligned_buffer.h"

namespace kvt {
namespace {

// NVMe reads one prefetch job keeps in flight (threads, each with its own ring).
constexpr size_t kNvmeReaders = 4;

}  // namespace

Status FetchToHost(HostTier* host, NvmeTier* nvme, HbmTier* hbm, uint64_t ns, const Hash128& key,
                   PinnedBlock* out, bool* from_nvme) {
  *from_nvme = false;
  if (host->Pin(ns, key, out)) return Status::Ok();
  BlockMeta m;
  const bool in_hbm = hbm != nullptr && hbm->Lookup(ns, key, &m, /*touch=*/false);
  if (!in_hbm && (nvme == nullptr || !nvme->Lookup(ns, key, &m))) {
    return Status::NotFound("block not stored");
  }
  // NVMe reads want a 4 KiB-aligned buffer of whole pages; one per thread, grown on demand.
  thread_local AlignedBuffer scratch;
  const size_t need = AlignUp(m.payload_bytes, AlignedBuffer::kPage);
  if (scratch.size() < need) {
    KVT_ASSIGN_OR_RETURN(scratch, AlignedBuffer::Allocate(need, /*lock=*/false));
  }
  if (in_hbm) {
    // Only HBM holds it (the host copy was evicted): copy it back down.
    KVT_RETURN_IF_ERROR(hbm->Read(ns, key, scratch.data(), m.payload_bytes, &m));
  } else {
    KVT_RETURN_IF_ERROR(nvme->Read(ns, key, scratch.data(), need, &m));
    *from_nvme = true;
  }
  return host->Put(m, scratch.data(), /*checksum_known=*/true, out);
}

// One prefetch. Shared by the ticket (which only sets `cancelled`) and the worker; the pins are
// dropped when the last of them lets go.
struct PrefetchPipeline::Job {
  enum HbmState : uint8_t { kNone, kReserved, kPublished };

  Tiers tiers;
  uint64_t ns = 0;
  std::vector<Hash128> keys;
  BlockLayout geo;
  bool to_hbm = false;
  std::shared_ptr<TicketState> state;
  std::atomic<bool> cancelled{false};
  // Touched only by the worker, then by the destructor.
  std::vector<PinnedBlock> host;
  std::vector<uint8_t> has_host;  // not vector<bool>: NVMe readers set entries concurrently
  std::vector<HbmBlock> hbm;
  std::vector<HbmState> hbm_state;
  // One per layer enqueued. Kept until the job goes (after the ticket's release), because the
  // ticket hands the CUDA events out to streams.
  std::vector<std::unique_ptr<DeviceEvent>> events;

  ~Job() {
    ReleaseHost();
    for (size_t i = 0; i < hbm.size(); ++i) {
      if (hbm_state[i] == kReserved) tiers.hbm->Abandon(hbm[i]);
      if (hbm_state[i] == kPublished) tiers.hbm->Unpin(hbm[i]);
    }
  }
  void ReleaseHost() {
    for (size_t i = 0; i < host.size(); ++i) {
      if (has_host[i]) tiers.host->Unpin(host[i]);
      has_host[i] = 0;
    }
  }
  bool Cancelled() const { return cancelled.load(std::memory_order_relaxed); }
};

PrefetchPipeline::PrefetchPipeline(Tiers tiers) : tiers_(tiers) {
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
  if (to_hbm && tiers_.hbm == nullptr) {
    return Status::Unavailable("prefetch to HBM: this store has no HBM tier (set hbm_bytes > 0)");
  }
  auto job = std::make_shared<Job>();
  job->tiers = tiers_;
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
    Add(c_.queued);
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
  std::vector<Status> status(n);
  std::vector<size_t> on_nvme;
  // Blocks in HBM or host are pinned in place, in order.
  for (size_t i = 0; i < n && !job.Cancelled(); ++i) {
    if (job.to_hbm && tiers_.hbm->Pin(job.ns, job.keys[i], &job.hbm[i])) {
      job.hbm_state[i] = Job::kPublished;
      Add(c_.blocks_in_hbm);
    } else if (tiers_.host->Pin(job.ns, job.keys[i], &job.host[i])) {
      job.has_host[i] = 1;
      Add(c_.blocks_in_host);
    } else {
      on_nvme.push_back(i);
    }
  }
  // The rest are read from NVMe by up to kNvmeReaders threads at once: one synchronous read at a
  // time leaves the device idle between reads. Each thread borrows its own io_uring context.
  auto read = [&](size_t i) {
    bool from_nvme = false;
    status[i] = FetchToHost(tiers_.host, tiers_.nvme, job.to_hbm ? nullptr : tiers_.hbm, job.ns,
                            job.keys[i], &job.host[i], &from_nvme);
    if (!status[i].ok()) return;
    job.has_host[i] = 1;
    Add(from_nvme ? c_.blocks_from_nvme : c_.blocks_in_host);
    if (from_nvme) Add(c_.bytes_nvme_to_host, block_bytes);
  };
  std::atomic<size_t> next{0};
  auto reader = [&] {
    for (size_t k; (k = next.fetch_add(1)) < on_nvme.size() && !job.Cancelled();) read(on_nvme[k]);
  };
  const size_t threads = std::min(on_nvme.size(), kNvmeReaders);
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(reader);
  reader();
  for (auto& t : pool) t.join();

  size_t missing = 0;
  for (size_t i = 0; i < n; ++i) {
    if (status[i].IsNotFound()) {
      ++missing;
    } else if (!status[i].ok()) {
      return status[i].WithContext("prefetch of block " + std::to_string(i));
    } else if (job.has_host[i] && job.host[i].meta.payload_bytes != block_bytes) {
      return Status::Internal("prefetch: stored block of " +
                              std::to_string(job.host[i].meta.payload_bytes) +
                              " bytes in a namespace of " + std::to_string(block_bytes) +
                              "-byte blocks");
    }
  }
  if (missing > 0) {
    return Status::NotFound(std::to_string(missing) + " of " + std::to_string(n) +
                            " blocks are not stored");
  }
  return Status::Ok();
}

Status PrefetchPipeline::CopyLayersToHbm(Job& job) {
  HbmTier* hbm = tiers_.hbm;
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

void PrefetchPipeline::StatsJson(nlohmann::json* out) const {
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  auto& j = *out;
  j["jobs"] = get(c_.jobs);
  j["jobs_failed"] = get(c_.jobs_failed);
  j["jobs_cancelled"] = get(c_.jobs_cancelled);
  j["blocks"] = get(c_.blocks);
  j["blocks_in_hbm"] = get(c_.blocks_in_hbm);
  j["blocks_in_host"] = get(c_.blocks_in_host);
  j["blocks_from_nvme"] = get(c_.blocks_from_nvme);
  j["bytes_nvme_to_host"] = get(c_.bytes_nvme_to_host);
  j["bytes_host_to_hbm"] = get(c_.bytes_host_to_hbm);
  j["layers_completed"] = get(c_.layers_completed);
  j["queued"] = get(c_.queued);
}

}  // namespace kvt
