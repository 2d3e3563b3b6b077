// The Store's engine-facing half: batched gets and puts (blocking and on a ticket), caller keys,
// registered caller memory and block events. Kept apart from store.cc so the single-block data
// path reads on its own.
//
// A batch is checked whole before anything moves (InvalidArgument, no entry touched); after that
// every entry gets its own status. Gets serve the fast tiers first (host, HBM: memcpy) and then
// read the NVMe misses in one pass (NvmeGet), so the disk part of a prefix is one run of I/O.
#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "base/counter.h"
#include "base/units.h"
#include "io/aligned_buffer.h"
#include "src/store.h"

namespace kvt {
namespace {

// Entries per unit of work of an async batch: cancellation takes effect between units.
constexpr size_t kMinAsyncChunk = 8;

// An asynchronous batch: the entries, how far the worker got, and who publishes what.
struct BatchJob {
  bool put = false;
  NamespaceRef ns;  // held: the batch runs after its caller returned
  std::vector<BatchEntry> v;
  size_t chunk = 64;
  Store::BatchPublish publish;
  std::shared_ptr<TicketState> state;

  std::mutex mu;
  std::condition_variable cv;
  size_t next = 0;       // GUARDED_BY(mu): first entry not yet started
  bool running = false;  // GUARDED_BY(mu): the worker is moving a chunk
  bool finished = false; // GUARDED_BY(mu)

  void FinishLocked() {
    if (finished) return;
    finished = true;
    state->MarkAllDone();
  }
};

}  // namespace

Status Store::StartEngineFacing() {
  if (opts_.event_queue > 0) {
    events_ = std::make_unique<EventQueue>(opts_.event_queue);
    Store* self = this;
    // Every block that leaves a tier (host or HBM eviction, a demotion dropped, failed or not
    // admitted) reaches the mover's gone hook; REMOVED only if no tier took it. Installed only
    // with events on, so a store without them pays nothing.
    mover_->SetGoneHook([self](uint64_t ns, const Hash128& k) { self->NoteGone(ns, k); });
    if (nvme_) nvme_->SetDropSink([self](uint64_t ns, const Hash128& k) { self->NoteGone(ns, k); });
  }
  NvmeTier* nvme = nvme_.get();
  MemoryRegistry::AddRegion add;
  MemoryRegistry::RemoveRegion remove;
  if (nvme != nullptr) {
    add = [nvme](void* base, size_t bytes) -> uint64_t {
      auto h = nvme->RegisterRegion(base, bytes);
      return h.ok() ? *h : 0;  // refused: reads into it work unregistered
    };
    remove = [nvme](uint64_t handle) { nvme->UnregisterRegion(handle); };
  }
  memory_ = std::make_unique<MemoryRegistry>(std::move(add), std::move(remove));
  return Status::Ok();
}

bool Store::HeldLocally(uint64_t ns, const Hash128& key) {
  // Every local tier, blocks on their way to NVMe included.
  for (StorageTier* t : mover_->tiers()) {
    if (t->kind() != TierKind::kRemote && t->Lookup(ns, key, nullptr, /*touch=*/false)) return true;
  }
  return false;
}

void Store::NoteStored(uint64_t ns, const Hash128& key) {
  if (events_) events_->Push(EventKind::kStored, ns, key);
}

void Store::NoteGone(uint64_t ns, const Hash128& key) {
  if (events_ && !HeldLocally(ns, key)) events_->Push(EventKind::kRemoved, ns, key);
}

StatusOr<size_t> Store::PollEvents(BlockEvent* out, size_t cap, uint64_t* lost) {
  if (!events_) {
    return Status::Unavailable("events are off: set the option event_queue to a size > 0");
  }
  return events_->Poll(out, cap, lost);
}

StatusOr<Hash128> Store::KeyFromBytes(uint64_t ns, const void* id, size_t len) const {
  KVT_ASSIGN_OR_RETURN(NamespaceRef info, Namespace(ns));
  if (id == nullptr || len == 0 || len > 4096) {
    return Status::InvalidArgument("key from bytes: id must be 1..4096 bytes (got " +
                                   std::to_string(id == nullptr ? 0 : len) + ")");
  }
  return hasher_.ExternalKey(info->root, id, len);
}

Status Store::RegisterMemory(void* addr, size_t bytes) {
  KVT_RETURN_IF_ERROR(memory_->Register(addr, bytes));
  Add(engine_counters_.memory_registrations);
  return Status::Ok();
}

Status Store::UnregisterMemory(void* addr) { return memory_->Unregister(addr); }

Status Store::CheckBatch(const NamespaceInfo& ns, std::span<const BatchEntry> v,
                         const char* what) const {
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i].buf == nullptr) {
      return Status::InvalidArgument(std::string(what) + ": entry " + std::to_string(i) +
                                     " has a NULL buf");
    }
    if (v[i].bytes != ns.block_bytes) {
      return Status::InvalidArgument(std::string(what) + ": entry " + std::to_string(i) +
                                     " has bytes = " + std::to_string(v[i].bytes) +
                                     "; a block of this namespace is " +
                                     std::to_string(ns.block_bytes) + " bytes");
    }
  }
  return Status::Ok();
}

Status Store::GetBatch(uint64_t ns, std::span<BatchEntry> v) {
  KVT_ASSIGN_OR_RETURN(NamespaceRef info, Namespace(ns));
  KVT_RETURN_IF_ERROR(CheckBatch(*info, v, "get batch"));
  Add(engine_counters_.get_batches);
  Add(engine_counters_.batch_entries, v.size());
  GetEntries(*info, v);
  return Status::Ok();
}

Status Store::PutBatch(uint64_t ns, std::span<BatchEntry> v) {
  KVT_ASSIGN_OR_RETURN(NamespaceRef info, Namespace(ns));
  KVT_RETURN_IF_ERROR(CheckBatch(*info, v, "put batch"));
  Add(engine_counters_.put_batches);
  Add(engine_counters_.batch_entries, v.size());
  PutEntries(*info, v);
  return Status::Ok();
}

void Store::GetEntries(const NamespaceInfo& info, std::span<BatchEntry> v) {
  std::vector<size_t> disk;  // entries the memory tiers (and the demotion queue) missed
  for (size_t i = 0; i < v.size(); ++i) {
    BatchEntry& e = v[i];
    Add(counters_.gets);
    TierKind from;
    e.status = mover_->ReadFromMemory(info.id, e.key, e.buf, e.bytes, &from);
    e.tier = static_cast<Tier>(from);
    // On its way to NVMe (the demotion queue's copy): an NVMe-tier block that lands straight in
    // registered memory, as a disk read would (no staging copy), so it counts as a direct read.
    if (e.status.ok() && from == TierKind::kNvme && memory_->Acquire(e.buf, e.bytes)) {
      Add(engine_counters_.direct_reads);
    }
    if (e.status.IsNotFound() && (nvme_ || remote_)) {
      disk.push_back(i);
      continue;
    }
    if (!e.status.ok()) e.tier = Tier::kNone;
    Add(e.status.ok() ? counters_.get_hits : counters_.get_misses);
  }
  if (disk.empty()) return;
  // The NVMe part of the batch: one ReadBatch keeps up to io_depth reads in flight, each block
  // straight into the caller's buffer (READ_FIXED when it lies in registered memory; the tier
  // copies through its scratch only for an unaligned buffer), then promoted from there by the
  // mover. Registered ranges are leased so that kvt_unregister_memory waits for these reads.
  std::vector<NvmeReadItem> items;
  std::vector<MemoryRegistry::Lease> leases;
  std::vector<bool> registered(disk.size(), false);
  if (nvme_) {
    items.resize(disk.size());
    for (size_t k = 0; k < disk.size(); ++k) {
      BatchEntry& e = v[disk[k]];
      items[k].ns = info.id;
      items[k].key = e.key;
      items[k].dst = e.buf;
      items[k].dst_bytes = e.bytes;
      auto lease = memory_->Acquire(e.buf, e.bytes);
      if (lease) {
        registered[k] = reinterpret_cast<uintptr_t>(e.buf) % AlignedBuffer::kPage == 0;
        leases.push_back(std::move(lease));
      }
    }
    mover_->ReadNvmeBatch(items);
    leases.clear();
  }
  for (size_t k = 0; k < disk.size(); ++k) {
    BatchEntry& e = v[disk[k]];
    e.status = nvme_ ? items[k].status : Status::NotFound("block not stored");
    e.tier = Tier::kNvme;
    if (e.status.ok() && registered[k]) Add(engine_counters_.direct_reads);
    if (e.status.IsNotFound() && remote_) {
      e.tier = Tier::kRemote;
      e.status = mover_->GetFromRemote(info.id, e.key, e.buf, e.bytes);
    }
    if (!e.status.ok()) e.tier = Tier::kNone;
    Add(e.status.ok() ? counters_.get_hits : counters_.get_misses);
  }
}

void Store::PutEntries(const NamespaceInfo& info, std::span<BatchEntry> v) {
  const size_t n = v.size();
  std::vector<BlockMeta> metas(n);
  std::vector<const void*> datas(n);
  std::vector<uint8_t> was_held(n, 0), stored(n, 0);
  std::vector<Status> out(n);
  for (size_t i = 0; i < n; ++i) {
    const BatchEntry& e = v[i];
    BlockMeta& m = metas[i];
    m.ns = info.id;
    m.key = e.key;
    m.parent = NormalizeParent(info, e.parent);
    m.payload_bytes = static_cast<uint32_t>(e.bytes);
    if (e.tokens != nullptr) {
      m.has_tokens = true;
      m.tokens_digest = hasher_.TokensDigest({e.tokens, info.geometry.block_tokens});
    }
    datas[i] = e.buf;
    was_held[i] = EventsOn() && HeldLocally(info.id, e.key);
  }
  // Host slots, then (write-through) one NVMe submission and the remote owners, from the pins.
  mover_->PutBatch(metas, datas.data(), RemoteWriteThrough(), out, stored);
  for (size_t i = 0; i < n; ++i) {
    BatchEntry& e = v[i];
    e.status = out[i];
    e.tier = stored[i] ? Tier::kHost : Tier::kNone;
    if (!stored[i]) continue;
    Add(counters_.puts);
    if (!was_held[i]) NoteStored(info.id, e.key);
  }
}

StatusOr<std::unique_ptr<Ticket>> Store::StartBatch(bool put, uint64_t ns,
                                                    std::vector<BatchEntry> v,
                                                    BatchPublish publish) {
  KVT_ASSIGN_OR_RETURN(NamespaceRef info, Namespace(ns));
  KVT_RETURN_IF_ERROR(CheckBatch(*info, v, put ? "put batch" : "get batch"));
  Add(put ? engine_counters_.put_batches : engine_counters_.get_batches);
  Add(engine_counters_.batch_entries, v.size());
  Add(engine_counters_.async_batches);
  auto job = std::make_shared<BatchJob>();
  job->put = put;
  job->ns = info;
  job->v = std::move(v);
  job->chunk = std::max<size_t>(kMinAsyncChunk, opts_.io_depth);
  job->publish = std::move(publish);
  job->state = std::make_shared<TicketState>(1);
  if (job->v.empty()) {
    std::lock_guard<std::mutex> l(job->mu);
    job->FinishLocked();
  } else {
    {
      std::lock_guard<std::mutex> l(batch_runner_mu_);
      if (!batch_runner_) batch_runner_ = std::make_unique<BatchRunner>(2);
    }
    Store* self = this;
    batch_runner_->Submit([self, job] {
      std::unique_lock<std::mutex> l(job->mu);
      while (job->next < job->v.size()) {
        const size_t first = job->next;
        const size_t n = std::min(job->chunk, job->v.size() - first);
        job->next += n;
        job->running = true;
        l.unlock();
        std::span<BatchEntry> part(job->v.data() + first, n);
        if (job->put) {
          self->PutEntries(*job->ns, part);
        } else {
          self->GetEntries(*job->ns, part);
        }
        job->publish(first, part);
        l.lock();
        job->running = false;
        job->cv.notify_all();
      }
      job->FinishLocked();
    });
  }
  // Release before completion: entries not started are cancelled (Unavailable) and published
  // now; the chunk in flight finishes first, so no buffer is touched after release returns.
  auto on_release = [job, this] {
    std::unique_lock<std::mutex> l(job->mu);
    const size_t first = job->next;
    const size_t n = job->v.size() - first;
    job->next = job->v.size();
    if (n > 0) {
      for (size_t i = first; i < job->v.size(); ++i) {
        job->v[i].status = Status::Unavailable("cancelled: the ticket was released first");
        job->v[i].tier = Tier::kNone;
      }
      Add(engine_counters_.async_cancelled_entries, n);
      job->publish(first, std::span<const BatchEntry>(job->v.data() + first, n));
    }
    job->cv.wait(l, [&] { return !job->running; });
    job->FinishLocked();
  };
  return std::make_unique<Ticket>(job->state, std::move(on_release));
}

void Store::EngineStatsJson(nlohmann::json* root) const {
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  auto& j = (*root)["engine"];
  const EngineCounters& c = engine_counters_;
  j["get_batches"] = get(c.get_batches);
  j["put_batches"] = get(c.put_batches);
  j["batch_entries"] = get(c.batch_entries);
  j["async_batches"] = get(c.async_batches);
  j["async_cancelled_entries"] = get(c.async_cancelled_entries);
  j["direct_reads"] = get(c.direct_reads);
  j["memory_registrations"] = get(c.memory_registrations);
  j["registered_ranges"] = memory_->ranges();
  j["registered_bytes"] = memory_->bytes();
  j["registered_mlocked"] = memory_->mlocked_all();
  j["registered_cuda"] = memory_->cuda_registered();
  auto& ev = (*root)["events"];
  ev["enabled"] = events_ != nullptr;
  ev["capacity"] = events_ ? events_->capacity() : 0;
  ev["pushed"] = events_ ? events_->pushed() : 0;
  ev["queued"] = events_ ? events_->queued() : 0;
  ev["lost"] = events_ ? events_->lost_total() : 0;
}

}  // namespace kvt
