#include "src/mover.h"

#include <chrono>
#include <cstring>

#include "base/counter.h"
#include "base/log.h"
#include "io/aligned_buffer.h"

namespace kvt {
namespace {
// Set while this thread runs a put: its evictions may wait for room in the demotion queue
// (backpressure); every other eviction (a get's promotion, a prefetch) never waits.
thread_local bool t_in_put = false;
struct InPut {
  InPut() { t_in_put = true; }
  ~InPut() { t_in_put = false; }
};
}  // namespace

Mover::Mover(const Options& o, Tiers t, std::unique_ptr<AdmissionPolicy> admission)
    : t_(t),
      write_through_(o.write_policy == "write_through"),
      io_depth_(o.io_depth),
      admission_(std::move(admission)) {
  if (t_.nvme != nullptr) {
    nvme_adapter_ = std::make_unique<NvmeTierAdapter>(t_.nvme);
    // Host slots are the I/O buffers: registered, reads and writes use fixed buffers.
    t_.nvme->RegisterBuffers(t_.host->Regions());
    if (!write_through_) {
      DemotionQueueOptions qo;
      qo.batch_blocks = io_depth_;
      // Copies of evicted blocks wait beside the host tier: at most a quarter of its size.
      qo.capacity_bytes = std::max<uint64_t>(o.host_bytes / 4, 1);
      qo.capacity_blocks = std::max<size_t>(16 * io_depth_, 64);
      queue_ = std::make_unique<DemotionQueue>(
          qo, t_.nvme, [this](const BlockMeta& m) { return ShouldDemote(m); },
          [this](const BlockMeta&, const Status& st) {
            Add(st.ok() ? c_.demotions : c_.demotion_failures);
          },
          [this](const BlockMeta& m) { Gone(m); });
    }
  }
  // Every host eviction comes here (also without a queue: the gone hook sees it).
  t_.host->SetEvictSink([this](const SlotPin& v) {
    if (queue_ != nullptr) {
      if (NvmeHolds(v.meta)) {
        // A clean victim (NVMe holds this very block) needs no write: it just leaves.
        Add(c_.demotions_skipped);
      } else {
        (void)queue_->Enqueue(v, t_in_put);  // a copy: the host slot is free at once
      }
    }
    Gone(v.meta);  // REMOVED only when no tier (the queue included) holds it now
    return false;
  });
  if (t_.hbm != nullptr) {
    t_.hbm->SetEvictSink([this](const SlotPin& v) {
      const bool kept = DemoteFromHbm(v);
      Gone(v.meta);  // REMOVED only when the host tier did not take it
      return kept;
    });
    tiers_.push_back(t_.hbm);
  }
  tiers_.push_back(t_.host);
  if (queue_) tiers_.push_back(queue_.get());
  if (nvme_adapter_) tiers_.push_back(nvme_adapter_.get());
  if (t_.remote != nullptr) tiers_.push_back(t_.remote);
}

Mover::~Mover() {
  // Evictions after this point (there are none: the store is closing) drop their blocks.
  if (t_.hbm != nullptr) t_.hbm->SetEvictSink(nullptr);
  if (queue_) queue_->Drain();
  t_.host->SetEvictSink(nullptr);
}

bool Mover::NvmeHolds(const BlockMeta& meta) const {
  BlockMeta on_disk;
  return t_.nvme->Lookup(meta.ns, meta.key, &on_disk) && on_disk.parent == meta.parent &&
         on_disk.checksum == meta.checksum;
}

bool Mover::ShouldDemote(const BlockMeta& meta) {
  if (NvmeHolds(meta)) {
    Add(c_.demotions_skipped);  // already there (promoted earlier, or flushed)
    return false;
  }
  std::lock_guard<std::mutex> l(admission_mu_);
  const double now_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  if (!admission_->Admit(meta.key.lo ^ meta.ns, meta.payload_bytes, now_s)) {
    Add(c_.admission_rejects);
    return false;
  }
  return true;
}

// --- put ---------------------------------------------------------------------------------------

Status Mover::Put(const BlockMeta& meta, const void* data, bool checksum_known,
                  bool remote_write) {
  const bool nvme_write = t_.nvme != nullptr && write_through_;
  const bool keep_pin = nvme_write || remote_write;
  SlotPin pin;
  {
    InPut in_put;
    KVT_RETURN_IF_ERROR(t_.host->Put(meta, data, checksum_known, keep_pin ? &pin : nullptr));
  }
  if (!keep_pin) return Status::Ok();
  Status st;
  if (nvme_write && !NvmeHolds(pin.meta)) {
    // The caller's thread is the write-through queue: the block is on NVMe (not yet durable;
    // see Flush) when put returns, written from the slot the put just filled (its own pin).
    st = t_.nvme->Write(pin.meta, pin.data);
    Add(st.ok() ? c_.write_throughs : c_.write_through_failures);
  } else if (nvme_write) {
    Add(c_.write_throughs);
  }
  if (st.ok() && remote_write) st = RemotePut(pin);
  t_.host->Unpin(pin);
  return st;
}

Status Mover::RemotePut(const SlotPin& b) {
  std::shared_ptr<const std::string> enc = t_.remote->EncodingOf(b.meta.ns);
  Status s = enc == nullptr ? Status::InvalidArgument("unknown namespace")
                            : t_.remote->tier()->Put(*enc, ToBlockInfo(b.meta), b.data);
  Add(s.ok() ? c_.remote_puts : c_.remote_put_failures);
  return s.WithContext("stored locally; remote write");
}

void Mover::PutBatch(std::span<const BlockMeta> metas, const void* const* datas,
                     bool remote_write, std::span<Status> out, std::span<uint8_t> stored) {
  const bool nvme_write = t_.nvme != nullptr && write_through_;
  const bool keep_pin = nvme_write || remote_write;
  std::vector<SlotPin> pins;
  std::vector<size_t> pinned;  // the entry of each pin
  {
    InPut in_put;
    for (size_t i = 0; i < metas.size(); ++i) {
      SlotPin pin;
      out[i] = t_.host->Put(metas[i], datas[i], /*checksum_known=*/false,
                            keep_pin ? &pin : nullptr);
      stored[i] = out[i].ok();
      if (out[i].ok() && keep_pin) {
        pins.push_back(pin);
        pinned.push_back(i);
      }
    }
  }
  if (pins.empty()) return;
  if (nvme_write) {
    // Write-through: every block the batch stored goes down in one NVMe submission.
    std::vector<NvmeWriteItem> items;
    std::vector<size_t> item_entry;
    for (size_t k = 0; k < pins.size(); ++k) {
      if (NvmeHolds(pins[k].meta)) {
        Add(c_.write_throughs);
        continue;
      }
      items.push_back(NvmeWriteItem{pins[k].meta, pins[k].data});
      item_entry.push_back(pinned[k]);
    }
    std::vector<Status> results;
    if (!items.empty()) (void)t_.nvme->WriteBatch(items, &results);
    for (size_t k = 0; k < items.size(); ++k) {
      const Status st = k < results.size() ? results[k] : Status::Internal("no write result");
      Add(st.ok() ? c_.write_throughs : c_.write_through_failures);
      if (!st.ok()) out[item_entry[k]] = st;  // stored in host, not written down: reported
    }
  }
  for (size_t k = 0; k < pins.size(); ++k) {
    if (remote_write && out[pinned[k]].ok()) out[pinned[k]] = RemotePut(pins[k]);
    t_.host->Unpin(pins[k]);
  }
}

// --- get and fetch -----------------------------------------------------------------------------

Status Mover::PromoteFromNvme(uint64_t ns, const Hash128& key, SlotPin* out) {
  BlockMeta m;
  if (!t_.nvme->Lookup(ns, key, &m)) return Status::NotFound("block not stored");
  KVT_ASSIGN_OR_RETURN(SlotPin b, t_.host->Reserve(m));
  // Straight into the slot: 4 KiB-aligned, a whole number of pages, registered with io_uring.
  Status st = t_.nvme->Read(ns, key, b.data, AlignUp(m.payload_bytes, AlignedBuffer::kPage),
                            &b.meta);
  if (!st.ok()) {
    t_.host->Abort(b);
    return st;
  }
  t_.host->Publish(b);
  *out = b;
  return Status::Ok();
}

Status Mover::CopyIntoHost(StorageTier* from, const BlockMeta& meta, SlotPin* out) {
  KVT_ASSIGN_OR_RETURN(SlotPin b, t_.host->Reserve(meta));
  Status st = from->Read(meta.ns, meta.key, b.data, meta.payload_bytes, &b.meta);
  if (!st.ok()) {
    t_.host->Abort(b);
    return st;
  }
  t_.host->Publish(b);
  *out = b;
  return Status::Ok();
}

Status Mover::ReadFromMemory(uint64_t ns, const Hash128& key, void* dst, size_t bytes,
                             TierKind* from) {
  // The host tier first: every transfer stages there, and a hit is one memcpy.
  Status s = t_.host->Read(ns, key, dst, bytes, nullptr);
  *from = TierKind::kHost;
  if (!s.IsNotFound()) return s;
  for (StorageTier* t : {static_cast<StorageTier*>(t_.hbm), static_cast<StorageTier*>(queue_.get())}) {
    if (t == nullptr) continue;
    s = t->Read(ns, key, dst, bytes, nullptr);
    *from = t->kind();
    if (!s.IsNotFound()) return s;
  }
  return s;
}

Status Mover::Get(uint64_t ns, const Hash128& key, void* dst, size_t bytes, TierKind* from) {
  Status s = ReadFromMemory(ns, key, dst, bytes, from);
  if (!s.IsNotFound()) return s;
  if (t_.nvme != nullptr) {
    *from = TierKind::kNvme;
    SlotPin pin;
    // Promoting evicts a host block; with the demotion queue full that victim would be dropped
    // (a get never waits for an NVMe write). Read around the host tier instead.
    const bool room = queue_ == nullptr || queue_->HasRoom(bytes);
    if (!room) Add(c_.promotions_skipped);
    s = room ? PromoteFromNvme(ns, key, &pin) : Status::Busy("demotion queue full");
    if (s.ok()) {
      Add(c_.promotions);
      Status r = pin.meta.payload_bytes == bytes
                     ? Status::Ok()
                     : Status::InvalidArgument("buffer of " + std::to_string(bytes) +
                                               " bytes for a block of " +
                                               std::to_string(pin.meta.payload_bytes));
      if (r.ok()) std::memcpy(dst, pin.data, bytes);  // the only copy
      t_.host->Unpin(pin);
      return r;
    }
    if (s.code() == Code::kBusy || s.code() == Code::kNoSpace) {
      // No host slot to promote into: read straight into the caller's buffer instead.
      if (room) Add(c_.promotion_failures);
      s = nvme_adapter_->Read(ns, key, dst, bytes, nullptr);
    }
    if (!s.IsNotFound()) return s;
  }
  if (t_.remote != nullptr) {
    *from = TierKind::kRemote;
    return GetFromRemote(ns, key, dst, bytes);
  }
  return s;
}

Status Mover::GetFromRemote(uint64_t ns, const Hash128& key, void* dst, size_t bytes) {
  if (t_.remote == nullptr) return Status::NotFound("block not stored");
  const size_t which = 0;
  SlotPin pin;
  FetchResult r;
  FetchRemote(ns, {&key, 1}, {&which, 1}, bytes, {&pin, 1}, {&r, 1});
  if (r.status.ok()) {
    std::memcpy(dst, pin.data, bytes);
    t_.host->Unpin(pin);
    return Status::Ok();
  }
  if (r.status.code() == Code::kBusy) return t_.remote->Read(ns, key, dst, bytes, nullptr);
  return r.status;
}

void Mover::PromoteCopy(const BlockMeta& meta, const void* data) {
  if (queue_ != nullptr && !queue_->HasRoom(meta.payload_bytes)) {
    Add(c_.promotions_skipped);  // its victim would be dropped: a get never waits for NVMe
    return;
  }
  Status hs = t_.host->Put(meta, data, /*checksum_known=*/true);
  Add(hs.ok() ? c_.promotions : c_.promotion_failures);
}

void Mover::ReadNvmeBatch(std::span<NvmeReadItem> items) {
  if (items.empty()) return;
  if (t_.nvme == nullptr) {
    for (NvmeReadItem& it : items) it.status = Status::NotFound("block not stored");
    return;
  }
  Add(c_.fetch_batches);
  Add(c_.fetch_nvme_reads, items.size());
  // Each block is promoted (copied into the host tier from the caller's verified bytes) as soon
  // as its read is verified, while the rest of the batch is still on the device: the copies
  // overlap the I/O instead of following it.
  t_.nvme->ReadBatch(items, [&](size_t i) {
    if (items[i].status.ok()) PromoteCopy(items[i].meta, items[i].dst);
  });
}

void Mover::FetchToHost(uint64_t ns, std::span<const Hash128> keys, std::span<SlotPin> out,
                        std::span<FetchResult> results, const FetchOptions& fo) {
  std::vector<size_t> remote;
  std::vector<NvmeReadItem> reads;
  std::vector<size_t> read_idx;
  std::vector<SlotPin> read_slots;
  for (size_t i = 0; i < keys.size(); ++i) {
    FetchResult& r = results[i];
    r = FetchResult{};
    if (fo.cancelled && fo.cancelled()) {
      r.status = Status::Unavailable("cancelled");
      continue;
    }
    if (t_.host->Pin(ns, keys[i], &out[i], /*touch=*/true)) continue;
    BlockMeta m;
    if (!fo.skip_hbm && t_.hbm != nullptr && t_.hbm->Lookup(ns, keys[i], &m, false)) {
      r.from = TierKind::kHbm;  // only HBM holds it (the host copy was evicted): copy it down
      r.status = CopyIntoHost(t_.hbm, m, &out[i]);
      if (!r.status.IsNotFound()) continue;
    }
    if (queue_ && queue_->Lookup(ns, keys[i], &m, false)) {
      r.from = TierKind::kNvme;  // on its way to NVMe: take it back from its pinned slot
      r.status = CopyIntoHost(queue_.get(), m, &out[i]);
      if (!r.status.IsNotFound()) continue;
    }
    if (t_.nvme != nullptr && t_.nvme->Lookup(ns, keys[i], &m)) {
      r.from = TierKind::kNvme;
      auto slot = t_.host->Reserve(m);
      if (!slot.ok()) {
        r.status = slot.status();
        continue;
      }
      NvmeReadItem item;
      item.ns = ns;
      item.key = keys[i];
      item.dst = slot->data;
      item.dst_bytes = AlignUp(m.payload_bytes, AlignedBuffer::kPage);
      reads.push_back(item);
      read_idx.push_back(i);
      read_slots.push_back(*slot);
      continue;
    }
    if (t_.remote != nullptr && !fo.local_only) {
      remote.push_back(i);
      continue;
    }
    r.status = Status::NotFound("block not stored");
  }
  if (!reads.empty()) {
    // Every NVMe block of the batch at once: up to io_depth reads in flight on one ring, each
    // landing in its reserved host slot.
    Add(c_.fetch_batches);
    Add(c_.fetch_nvme_reads, reads.size());
    t_.nvme->ReadBatch(reads);
    for (size_t k = 0; k < reads.size(); ++k) {
      const size_t i = read_idx[k];
      SlotPin& b = read_slots[k];
      results[i].status = reads[k].status;
      if (!reads[k].status.ok()) {
        t_.host->Abort(b);
        continue;
      }
      b.meta = reads[k].meta;
      t_.host->Publish(b);
      out[i] = b;
      Add(c_.promotions);
    }
  }
  if (!remote.empty()) FetchRemote(ns, keys, remote, fo.block_bytes, out, results);
}

void Mover::FetchRemote(uint64_t ns, std::span<const Hash128> keys, std::span<const size_t> which,
                        uint64_t block_bytes, std::span<SlotPin> out,
                        std::span<FetchResult> results) {
  for (size_t i : which) {
    results[i].from = TierKind::kRemote;
    results[i].status = Status::NotFound("block not stored locally nor at its owning node");
  }
  std::shared_ptr<const std::string> enc = t_.remote->EncodingOf(ns);
  if (enc == nullptr) return;
  std::vector<Hash128> ask;
  for (size_t i : which) ask.push_back(keys[i]);
  Status s = t_.remote->tier()->Get(*enc, ask, [&](size_t k, RemotePayload* p) {
    const size_t i = which[k];
    const BlockMeta m = ToBlockMeta(ns, p->info());
    if (block_bytes != 0 && m.payload_bytes != block_bytes) return;  // not this namespace's size
    // From the socket straight into a reserved slot; a checksum failure aborts it, so nothing
    // unverified is ever visible.
    auto slot = t_.host->Reserve(m);
    if (!slot.ok()) {
      results[i].status = slot.status();
      Add(c_.remote_fetch_failures);
      return;
    }
    Status ps = p->Read(slot->data);
    if (!ps.ok()) {
      t_.host->Abort(*slot);
      Add(c_.remote_fetch_failures);
      return;
    }
    t_.host->Publish(*slot);
    out[i] = *slot;
    results[i].status = Status::Ok();
    Add(c_.remote_fetches);
  });
  if (!s.ok()) {
    Add(c_.remote_fetch_failures);
    if (s.code() == Code::kPermissionDenied) {
      for (size_t i : which) {
        if (!results[i].status.ok()) results[i].status = s;
      }
    }
    KVT_LOG(kDebug, "remote fetch: " + s.ToString());
  }
}

// --- demotion and flush ------------------------------------------------------------------------

bool Mover::DemoteFromHbm(const SlotPin& victim) {
  const BlockMeta& meta = victim.meta;
  BlockMeta there;
  if (t_.host->Lookup(meta.ns, meta.key, &there, /*touch=*/false) &&
      there.parent == meta.parent && there.checksum == meta.checksum) {
    Add(c_.hbm_demotions_skipped);  // usually so: blocks reach HBM from the host tier
    return false;
  }
  // Device -> a reserved host slot directly (the victim's slot stays pinned until we return).
  // On eviction a failed demotion only loses a cached block (counted), as host -> NVMe does.
  auto slot = t_.host->Reserve(meta);
  if (!slot.ok()) {
    Add(c_.hbm_demotion_failures);
    return false;
  }
  DeviceMemory* dev = t_.hbm->device();
  Status st = dev->CopyAsync(slot->data, victim.data, meta.payload_bytes, dev->copy_stream());
  if (st.ok()) {
    auto ev = dev->Record(dev->copy_stream());
    st = ev.ok() ? (*ev)->Wait() : ev.status();
  }
  if (!st.ok()) {
    KVT_LOG(kWarn, "HBM demotion copy failed: " + st.ToString());
    t_.host->Abort(*slot);
    Add(c_.hbm_demotion_failures);
    return false;
  }
  t_.host->Publish(*slot);
  t_.host->Unpin(*slot);
  Add(c_.hbm_demotions);
  return false;
}

Status Mover::Flush() {
  if (t_.nvme == nullptr) return Status::Ok();  // only volatile tiers: nothing to make durable
  Status first;
  if (queue_) {
    // Evictions queued before this flush land first (so a host block written below is never
    // overwritten by an older queued version of itself).
    queue_->Drain();
    first = queue_->TakeError();
    // Write-back: blocks still only in host RAM go down now (through admission, as an eviction
    // would send them), io_depth at a time.
    std::vector<BlockId> ids = t_.host->Snapshot();
    std::vector<SlotPin> pins;
    std::vector<NvmeWriteItem> items;
    std::vector<Status> results;
    for (size_t start = 0; start < ids.size(); start += io_depth_) {
      pins.clear();
      items.clear();
      for (size_t i = start; i < ids.size() && i < start + io_depth_; ++i) {
        SlotPin b;
        // Evicted meanwhile: queued (the drain below writes it) or dropped.
        if (!t_.host->Pin(ids[i].ns, ids[i].key, &b, /*touch=*/false)) continue;
        if (!ShouldDemote(b.meta)) {
          t_.host->Unpin(b);
          continue;
        }
        pins.push_back(b);
        items.push_back(NvmeWriteItem{b.meta, b.data});
      }
      if (items.empty()) continue;
      results.clear();
      (void)t_.nvme->WriteBatch(items, &results);
      Add(c_.flush_batches);
      Add(c_.flush_blocks, items.size());
      for (size_t k = 0; k < items.size(); ++k) {
        const bool ok = k < results.size() && results[k].ok();
        Add(ok ? c_.demotions : c_.demotion_failures);
        if (!ok && first.ok()) first = k < results.size() ? results[k] : Status::Internal("no result");
        t_.host->Unpin(pins[k]);
      }
    }
    queue_->Drain();  // evicted while we flushed
    if (first.ok()) first = queue_->TakeError();
  }
  Status st = t_.nvme->Flush();
  return first.ok() ? st : first;
}

void Mover::VisitCounters(const CounterVisitor& visit) const {
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  visit("demotions", get(c_.demotions));
  visit("demotions_skipped", get(c_.demotions_skipped));
  visit("demotion_failures", get(c_.demotion_failures));
  visit("admission_rejects", get(c_.admission_rejects));
  visit("promotions", get(c_.promotions));
  visit("promotion_failures", get(c_.promotion_failures));
  visit("promotions_skipped", get(c_.promotions_skipped));
  visit("write_throughs", get(c_.write_throughs));
  visit("write_through_failures", get(c_.write_through_failures));
  visit("hbm_demotions", get(c_.hbm_demotions));
  visit("hbm_demotions_skipped", get(c_.hbm_demotions_skipped));
  visit("hbm_demotion_failures", get(c_.hbm_demotion_failures));
  visit("remote_fetches", get(c_.remote_fetches));
  visit("remote_fetch_failures", get(c_.remote_fetch_failures));
  visit("remote_puts", get(c_.remote_puts));
  visit("remote_put_failures", get(c_.remote_put_failures));
  visit("flush_blocks", get(c_.flush_blocks));
  visit("flush_batches", get(c_.flush_batches));
  visit("fetch_batches", get(c_.fetch_batches));
  visit("fetch_nvme_reads", get(c_.fetch_nvme_reads));
}

}  // namespace kvt
