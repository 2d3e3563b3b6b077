#include "tiers/host/host_tier.h"

#include <cstring>

#include <nlohmann/json.hpp>

#include "base/copy_checksum.h"

namespace kvt {

StatusOr<std::unique_ptr<HostTier>> HostTier::Create(const HostTierOptions& o) {
  std::unique_ptr<HostTier> t(new HostTier());
  t->opts_ = o;
  KVT_ASSIGN_OR_RETURN(auto policy, MakeEvictionPolicy(o.policy));
  t->index_ = std::make_unique<TierIndex>(std::move(policy));
  KVT_ASSIGN_OR_RETURN(t->pool_, HostPool::Create(o.budget_bytes, o.slab_bytes, o.try_lock));
  return t;
}

bool HostTier::Lookup(uint64_t ns, const Hash128& key, BlockMeta* out, bool touch) {
  std::lock_guard<std::mutex> l(mu_);
  EntryId id = index_->Find(ns, key);
  if (id == kNoEntry) return false;
  if (touch) index_->Touch(id);
  if (out != nullptr) *out = index_->Get(id).meta;
  return true;
}

Status HostTier::LookupBatch(uint64_t ns, std::span<const Hash128> keys, std::span<uint8_t> todo,
                             std::span<BlockMeta> metas) {
  std::lock_guard<std::mutex> l(mu_);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!todo[i]) continue;
    const EntryId id = index_->Find(ns, keys[i]);
    if (id == kNoEntry) continue;
    metas[i] = index_->Get(id).meta;
    todo[i] = 0;
  }
  return Status::Ok();
}

void HostTier::DropEntryLocked(EntryId id, bool evicted) {
  SlotRef slot = index_->Get(id).slot;
  index_->Erase(id, evicted);
  pool_->Release(slot);
}

void HostTier::PinLocked(EntryId id, PinnedBlock* out) {
  const TierIndex::Entry& e = index_->Get(id);
  pool_->Pin(e.slot);
  out->slot = e.slot;
  out->meta = e.meta;
  out->data = pool_->Data(e.slot);
}

StatusOr<SlotPin> HostTier::Reserve(const BlockMeta& meta) {
  const uint64_t bytes = meta.payload_bytes;
  std::unique_lock<std::mutex> l(mu_);
  if (!pool_->Fits(bytes)) {
    Add(counters_.rejections);
    return Status::NoSpace("a block of " + std::to_string(bytes) +
                           " bytes does not fit in the host tier at all");
  }
  for (;;) {
    if (auto got = pool_->Allocate(bytes)) {
      // Pinned and in no index: nobody else can see, evict or reuse it while it is filled.
      pool_->Pin(*got);
      return SlotPin{*got, pool_->Data(*got), meta};
    }
    EntryId victim =
        index_->PickVictim([&](const TierIndex::Entry& e) { return !pool_->IsPinned(e.slot); });
    if (victim == kNoEntry) {
      Add(counters_.rejections);
      return Status::Busy("host tier full (" + std::to_string(index_->size()) +
                          " blocks) and every block is pinned (reads, prefetches, puts or "
                          "demotions in flight)");
    }
    Add(counters_.evictions);
    if (!sink_) {
      DropEntryLocked(victim, true);
      continue;
    }
    // Demote: the victim leaves the index with its bytes pinned; the sink may keep that pin
    // (an asynchronous demotion), else it is dropped when the sink returns.
    SlotPin v{index_->Get(victim).slot, nullptr, index_->Get(victim).meta};
    v.data = pool_->Data(v.slot);
    pool_->Pin(v.slot);
    DropEntryLocked(victim, true);
    l.unlock();
    const bool kept = sink_(v);
    l.lock();
    if (!kept) pool_->Unpin(v.slot);
  }
}

void HostTier::Publish(const SlotPin& b) {
  std::lock_guard<std::mutex> l(mu_);
  EntryId existing = index_->Find(b.meta.ns, b.meta.key);
  if (existing != kNoEntry) {
    // Replace even an identical block: the caller holds (and may read) its own slot.
    if (SameBlockIdentity(index_->Get(existing).meta, b.meta)) Add(counters_.duplicate_puts);
    DropEntryLocked(existing, false);
  }
  index_->Insert(b.meta, b.slot, AlignUp(b.meta.payload_bytes, AlignedBuffer::kPage));
  Add(counters_.inserts);
  Add(counters_.bytes_in, b.meta.payload_bytes);
}

void HostTier::Abort(const SlotPin& b) {
  std::lock_guard<std::mutex> l(mu_);
  pool_->Release(b.slot);  // deferred to the Unpin below
  pool_->Unpin(b.slot);
}

Status HostTier::Put(BlockMeta meta, const void* data, bool checksum_known, PinnedBlock* pin) {
  {
    std::lock_guard<std::mutex> l(mu_);
    EntryId existing = index_->Find(meta.ns, meta.key);
    if (existing != kNoEntry && SameBlockIdentity(index_->Get(existing).meta, meta)) {
      index_->Touch(existing);
      if (pin != nullptr) PinLocked(existing, pin);
      Add(counters_.duplicate_puts);
      return Status::Ok();
    }
  }
  KVT_ASSIGN_OR_RETURN(SlotPin b, Reserve(meta));
  if (checksum_known) {
    std::memcpy(b.data, data, meta.payload_bytes);
  } else {
    // One pass: each chunk is hashed while it is still in L1 (base/copy_checksum.h).
    b.meta.checksum = CopyWithChecksum64(b.data, data, meta.payload_bytes);
  }
  Publish(b);
  if (pin != nullptr) {
    *pin = b;  // the reservation's pin becomes the caller's
  } else {
    Unpin(b);
  }
  return Status::Ok();
}

Status HostTier::Read(uint64_t ns, const Hash128& key, void* dst, size_t dst_bytes,
                      BlockMeta* meta) {
  PinnedBlock b;
  {
    std::lock_guard<std::mutex> l(mu_);
    EntryId id = index_->Find(ns, key);
    if (id == kNoEntry) {
      Add(counters_.misses);
      return Status::NotFound("block not in host tier");
    }
    const TierIndex::Entry& e = index_->Get(id);
    if (e.meta.payload_bytes != dst_bytes) {
      return Status::InvalidArgument("buffer of " + std::to_string(dst_bytes) +
                                     " bytes for a block of " +
                                     std::to_string(e.meta.payload_bytes));
    }
    index_->Touch(id);
    b.slot = e.slot;
    b.meta = e.meta;
    pool_->Pin(b.slot);
  }
  const uint8_t* src = pool_->Data(b.slot);
  std::memcpy(dst, src, dst_bytes);
  bool bad = opts_.verify_reads && Checksum64(dst, dst_bytes) != b.meta.checksum;
  std::lock_guard<std::mutex> l(mu_);
  pool_->Unpin(b.slot);
  if (bad) {
    Add(counters_.checksum_failures);
    Add(counters_.misses);
    EntryId id = index_->Find(ns, key);
    if (id != kNoEntry && index_->Get(id).slot == b.slot) DropEntryLocked(id, false);
    return Status::NotFound("host tier block failed its checksum and was dropped");
  }
  Add(counters_.hits);
  Add(counters_.bytes_out, dst_bytes);
  if (meta != nullptr) *meta = b.meta;
  return Status::Ok();
}

bool HostTier::Pin(uint64_t ns, const Hash128& key, PinnedBlock* out, bool touch) {
  std::lock_guard<std::mutex> l(mu_);
  EntryId id = index_->Find(ns, key);
  if (id == kNoEntry) return false;
  const TierIndex::Entry& e = index_->Get(id);
  if (touch) index_->Touch(id);
  pool_->Pin(e.slot);
  out->slot = e.slot;
  out->meta = e.meta;
  out->data = pool_->Data(e.slot);
  return true;
}

void HostTier::Unpin(const PinnedBlock& b) {
  std::lock_guard<std::mutex> l(mu_);
  pool_->Unpin(b.slot);
}

std::vector<BlockId> HostTier::Snapshot() const {
  std::lock_guard<std::mutex> l(mu_);
  return index_->Ids();
}

Status HostTier::Remove(uint64_t ns, const Hash128& key) {
  std::lock_guard<std::mutex> l(mu_);
  EntryId id = index_->Find(ns, key);
  if (id == kNoEntry) return Status::NotFound("block not in host tier");
  DropEntryLocked(id, false);
  Add(counters_.removals);
  return Status::Ok();
}

Status HostTier::DropNamespace(uint64_t ns, size_t* dropped) {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<EntryId> ids = index_->EntriesOf(ns);
  for (EntryId id : ids) DropEntryLocked(id, false);
  Add(counters_.removals, ids.size());
  if (dropped != nullptr) *dropped = ids.size();
  return Status::Ok();
}

void HostTier::VisitCounters(const CounterVisitor& visit) const {
  counters_.Visit(visit);
  HostPoolStats ps;
  size_t blocks = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    ps = pool_->Stats();
    blocks = index_->size();
  }
  visit("blocks", blocks);
  visit("capacity_bytes", ps.capacity_bytes);
  visit("used_bytes", ps.bytes_used);
  visit("slab_bytes", ps.slab_bytes);
  visit("slabs_total", ps.slabs_total);
  visit("slabs_free", ps.slabs_free);
  visit("slots_used", ps.slots_used);
  visit("alloc_failures", ps.alloc_failures);
  visit("deferred_frees", ps.deferred_frees);
}

void HostTier::StatsJson(nlohmann::json* out) const {
  VisitCounters(JsonCounterVisitor(out));
  auto& j = *out;
  std::lock_guard<std::mutex> l(mu_);
  j["policy"] = std::string(index_->policy_name());
  j["memory"] = pool_->memory().KindName();
  j["memory_note"] = pool_->memory().note();
  j["huge_pages"] = pool_->memory().huge_pages();
}

}  // namespace kvt
