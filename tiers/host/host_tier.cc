#include "tiers/host/host_tier.h"

#include <cstring>

#include <nlohmann/json.hpp>

namespace kvt {

StatusOr<std::unique_ptr<HostTier>> HostTier::Create(const HostTierOptions& o) {
  std::unique_ptr<HostTier> t(new HostTier());
  t->opts_ = o;
  KVT_ASSIGN_OR_RETURN(auto policy, MakeEvictionPolicy(o.policy));
  t->index_ = std::make_unique<TierIndex>(std::move(policy));
  KVT_ASSIGN_OR_RETURN(t->pool_, HostPool::Create(o.budget_bytes, o.slab_bytes, o.try_lock));
  return t;
}

bool HostTier::SameIdentity(const BlockMeta& a, const BlockMeta& b) {
  return a.parent == b.parent && a.has_tokens == b.has_tokens &&
         (!a.has_tokens || a.tokens_digest == b.tokens_digest) &&
         a.payload_bytes == b.payload_bytes;
}

bool HostTier::Lookup(uint64_t ns, const Hash128& key, BlockMeta* out, bool touch) {
  std::lock_guard<std::mutex> l(mu_);
  EntryId id = index_->Find(ns, key);
  if (id == kNoEntry) return false;
  if (touch) index_->Touch(id);
  if (out != nullptr) *out = index_->Get(id).meta;
  return true;
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

Status HostTier::Put(BlockMeta meta, const void* data, bool checksum_known, PinnedBlock* pin) {
  bool filled = false;
  return PutFilled(
      meta,
      [&](uint8_t* dst, BlockMeta* m) {
        std::memcpy(dst, data, m->payload_bytes);
        if (!checksum_known) m->checksum = Checksum64(dst, m->payload_bytes);
        return Status::Ok();
      },
      &filled, pin);
}

Status HostTier::PutFilled(BlockMeta meta, const Filler& fill, bool* filled, PinnedBlock* pin) {
  *filled = false;
  const uint64_t bytes = meta.payload_bytes;
  SlotRef slot;
  {
    std::unique_lock<std::mutex> l(mu_);
    EntryId existing = index_->Find(meta.ns, meta.key);
    if (existing != kNoEntry && SameIdentity(index_->Get(existing).meta, meta)) {
      index_->Touch(existing);
      if (pin != nullptr) PinLocked(existing, pin);
      Add(counters_.duplicate_puts);
      return Status::Ok();
    }
    if (!pool_->Fits(bytes)) {
      Add(counters_.rejections);
      return Status::NoSpace("a block of " + std::to_string(bytes) +
                             " bytes does not fit in the host tier at all");
    }
    for (;;) {
      auto got = pool_->Allocate(bytes);
      if (got) {
        slot = *got;
        break;
      }
      EntryId victim =
          index_->PickVictim([&](const TierIndex::Entry& e) { return !pool_->IsPinned(e.slot); });
      if (victim == kNoEntry) {
        Add(counters_.rejections);
        return Status::Busy("host tier full (" + std::to_string(index_->size()) +
                            " blocks) and every block is pinned (reads, prefetches or puts in "
                            "flight)");
      }
      Add(counters_.evictions);
      if (!sink_) {
        DropEntryLocked(victim, true);
        continue;
      }
      // Demote: keep the victim's bytes pinned while the sink writes them, without our lock.
      BlockMeta vmeta = index_->Get(victim).meta;
      SlotRef vslot = index_->Get(victim).slot;
      pool_->Pin(vslot);
      DropEntryLocked(victim, true);
      const uint8_t* vdata = pool_->Data(vslot);
      l.unlock();
      sink_(vmeta, vdata);
      l.lock();
      pool_->Unpin(vslot);
    }
  }
  // The slot is in no index yet: nobody else can see or evict it while we fill it.
  *filled = true;
  Status fs = fill(pool_->Data(slot), &meta);
  std::lock_guard<std::mutex> l(mu_);
  if (!fs.ok()) {
    pool_->Release(slot);
    return fs;
  }
  EntryId existing = index_->Find(meta.ns, meta.key);
  if (existing != kNoEntry) {
    if (SameIdentity(index_->Get(existing).meta, meta)) {
      // Another thread stored the same block meanwhile.
      pool_->Release(slot);
      if (pin != nullptr) PinLocked(existing, pin);
      Add(counters_.duplicate_puts);
      return Status::Ok();
    }
    DropEntryLocked(existing, false);  // a different block under this key: replace it
  }
  EntryId id = index_->Insert(meta, slot, AlignUp(bytes, AlignedBuffer::kPage));
  if (pin != nullptr) PinLocked(id, pin);
  Add(counters_.inserts);
  Add(counters_.bytes_in, bytes);
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

size_t HostTier::DropNamespace(uint64_t ns) {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<EntryId> ids = index_->EntriesOf(ns);
  for (EntryId id : ids) DropEntryLocked(id, false);
  Add(counters_.removals, ids.size());
  return ids.size();
}

void HostTier::StatsJson(nlohmann::json* out) const {
  counters_.ToJson(out);
  std::lock_guard<std::mutex> l(mu_);
  HostPoolStats ps = pool_->Stats();
  auto& j = *out;
  j["policy"] = std::string(index_->policy_name());
  j["blocks"] = index_->size();
  j["capacity_bytes"] = ps.capacity_bytes;
  j["used_bytes"] = ps.bytes_used;
  j["slab_bytes"] = ps.slab_bytes;
  j["slabs_total"] = ps.slabs_total;
  j["slabs_free"] = ps.slabs_free;
  j["alloc_failures"] = ps.alloc_failures;
  j["deferred_frees"] = ps.deferred_frees;
  j["memory"] = pool_->memory().KindName();
  j["memory_note"] = pool_->memory().note();
}

}  // namespace kvt
