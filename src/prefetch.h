// PrefetchPipeline: moves blocks up the tiers in the background, layer by layer, and completes a
// Ticket as each layer lands.
//
//   * -> host      Mover::FetchToHost: blocks already in the host tier are pinned in place; the
//                  rest are brought there in one batch (NVMe reads io_depth at a time straight
//                  into reserved host slots, verified; remote blocks in one streamed request; HBM
//                  blocks copied down for a host target). A block is verified as a whole, so this
//                  hop completes per block, not per layer.
//   host -> HBM    for layer 0, 1, ...: one copy per block of that layer's bytes (a payload is
//                  layer-major, so a layer of a block is contiguous) from its pinned host slot into
//                  a reserved HBM slot on the device's copy stream (cudaMemcpyAsync), then a
//                  DeviceEvent for the layer. The worker marks layer l done in the ticket when
//                  event l completes, so a decode step computing layer l overlaps the copies of
//                  layers l+1.. Emulated (no GPU): the copies are memcpy and each layer completes
//                  as soon as it is copied; the order is the same.
//
// Pinning: every block a job touches is pinned from the moment it is found until it is no longer
// needed: host copies until the HBM copies from them have completed (for a host-target ticket,
// until the ticket is released), HBM slots until the ticket is released. Reserved HBM slots are
// invisible to lookups until all layers have landed, and are published then (so a lookup never
// reports a half-copied block). A block in flight therefore survives any eviction pressure; a
// tier whose blocks are all pinned refuses new blocks with Busy, which fails the ticket.
//
// One worker thread runs jobs in FIFO order. A released ticket cancels its job: the worker stops
// issuing copies, waits for those in flight, and drops the pins.
//
// Thread safety: Start and StatsJson may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <thread>

#include <nlohmann/json_fwd.hpp>

#include "kernels/kv_layout.h"
#include "src/block_key.h"
#include "src/ticket.h"
#include "src/mover.h"

namespace kvt {

struct PrefetchCounters {
  std::atomic<uint64_t> jobs{0}, jobs_failed{0}, jobs_cancelled{0};
  std::atomic<uint64_t> blocks{0};
  std::atomic<uint64_t> blocks_in_hbm{0};   // already resident in HBM: pinned, nothing moved
  std::atomic<uint64_t> blocks_in_host{0};  // found in the host tier
  std::atomic<uint64_t> blocks_from_nvme{0};
  std::atomic<uint64_t> bytes_nvme_to_host{0}, bytes_host_to_hbm{0};
  std::atomic<uint64_t> layers_completed{0};
  std::atomic<uint64_t> blocks_from_remote{0};
  std::atomic<uint64_t> queued{0};  // jobs waiting for the worker now (a gauge)
  std::atomic<uint64_t> queued_high_water{0};
};

class PrefetchPipeline {
 public:
  // The mover (and its tiers) is not owned and must outlive the pipeline and every ticket it
  // returned.
  explicit PrefetchPipeline(Mover* mover);
  // Fails queued jobs with Unavailable and joins the worker (after the job it is running).
  ~PrefetchPipeline();
  PrefetchPipeline(const PrefetchPipeline&) = delete;
  PrefetchPipeline& operator=(const PrefetchPipeline&) = delete;

  // Queues a job bringing `keys` of namespace ns (blocks of geometry geo) into HBM (to_hbm) or
  // the host tier, and returns its ticket at once. A key stored nowhere fails the ticket with
  // NotFound; HBM target without an HBM tier: Unavailable (returned here).
  StatusOr<std::unique_ptr<Ticket>> Start(uint64_t ns, std::span<const Hash128> keys,
                                          const BlockLayout& geo, bool to_hbm);

  // Tests only: runs on the worker right after each layer is marked done (a sync point to hold a
  // job in flight). Set it before starting the jobs it should see.
  void SetLayerHookForTest(std::function<void(uint32_t layer)> hook) { hook_ = std::move(hook); }

  const PrefetchCounters& counters() const { return c_; }
  void VisitCounters(const CounterVisitor& visit) const;
  void StatsJson(nlohmann::json* out) const;

 private:
  struct Job;
  void WorkerLoop();
  void Run(Job& job);
  Status BringToHost(Job& job);
  Status CopyLayersToHbm(Job& job);

  Mover* const mover_;
  std::function<void(uint32_t)> hook_;
  PrefetchCounters c_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;  // GUARDED_BY(mu_)
  bool stop_ = false;                        // GUARDED_BY(mu_)
  std::thread worker_;
};

}  // namespace kvt
