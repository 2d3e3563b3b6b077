#include "tiers/hbm/hbm_tier.h"

#include <nlohmann/json.hpp>

#include "base/units.h"
#include "io/aligned_buffer.h"

namespace kvt {

namespace {
constexpr uint64_t kSlotAlign = 256;  // cudaMalloc alignment; keeps every K/V row 16-byte aligned
}

StatusOr<std::unique_ptr<HbmTier>> HbmTier::Create(const HbmTierOptions& o, DeviceMemory* device) {
  if (o.budget_bytes < kSlotAlign) {
    return Status::InvalidArgument("hbm_bytes (" + FormatBytes(o.budget_bytes) +
                                   ") is too small for an HBM tier");
  }
  std::unique_ptr<HbmTier> t(new HbmTier());
  t->opts_ = o;
  t->device_ = device;
  KVT_ASSIGN_OR_RETURN(auto policy, MakeEvictionPolicy(o.policy));
  t->index_ = std::make_unique<TierIndex>(std::move(policy));
  auto region = DeviceRegion::Allocate(device, o.budget_bytes);
  if (!region.ok()) {
    return region.status().WithContext("HBM tier of " + FormatBytes(o.budget_bytes) + " on " +
                                       device->description());
  }
  t->region_ = std::move(region).value();
  return t;
}

HbmTier::~HbmTier() = default;

bool HbmTier::SameIdentity(const BlockMeta& a, const BlockMeta& b) {
  return a.parent == b.parent && a.has_tokens == b.has_tokens &&
         (!a.has_tokens || a.tokens_digest == b.tokens_digest) &&
         a.payload_bytes == b.payload_bytes && a.checksum == b.checksum;
}

uint64_t HbmTier::slot_bytes() const {
  std::lock_guard<std::mutex> l(mu_);
  return slot_bytes_;
}

Status HbmTier::ConfigureLocked(uint64_t payload_bytes) {
  if (slot_bytes_ != 0) {
    if (payload_bytes > slot_bytes_) {
      return Status::InvalidArgument("a block of " + std::to_string(payload_bytes) +
                                     " bytes does not fit the HBM tier's " +
                                     std::to_string(slot_bytes_) +
                                     "-byte slots (fixed by the first block placed there)");
    }
    return Status::Ok();
  }
  const uint64_t slot = AlignUp(payload_bytes, kSlotAlign);
  const uint64_t n = region_.size() / slot;
  if (n == 0) {
    return Status::NoSpace("a block of " + std::to_string(payload_bytes) +
                           " bytes does not fit in the HBM tier (hbm_bytes = " +
                           FormatBytes(region_.size()) + ")");
  }
  slot_bytes_ = slot;
  pins_.assign(n, 0);
  release_pending_.assign(n, false);
  free_.clear();
  for (uint64_t i = n; i-- > 0;) free_.push_back(static_cast<uint32_t>(i));  // low slots first
  return Status::Ok();
}

void HbmTier::ReleaseLocked(uint32_t slot) {
  if (pins_[slot] != 0) {
    release_pending_[slot] = true;
    ++deferred_frees_;
    return;
  }
  free_.push_back(slot);
}

void HbmTier::UnpinLocked(uint32_t slot) {
  if (--pins_[slot] == 0 && release_pending_[slot]) {
    release_pending_[slot] = false;
    free_.push_back(slot);
  }
}

void HbmTier::DropEntryLocked(EntryId id, bool evicted) {
  const uint32_t slot = static_cast<uint32_t>(index_->Get(id).slot);
  index_->Erase(id, evicted);
  ReleaseLocked(slot);
}

bool HbmTier::Lookup(uint64_t ns, const Hash128& key, BlockMeta* out, bool touch) {
  std::lock_guard<std::mutex> l(mu_);
  EntryId id = index_->Find(ns, key);
  if (id == kNoEntry) return false;
  if (touch) index_->Touch(id);
  if (out != nullptr) *out = index_->Get(id).meta;
  return true;
}

StatusOr<HbmBlock> HbmTier::Reserve(const BlockMeta& meta) {
  std::unique_lock<std::mutex> l(mu_);
  if (Status s = ConfigureLocked(meta.payload_bytes); !s.ok()) {
    Add(counters_.rejections);
    return s;
  }
  while (free_.empty()) {
    EntryId victim = index_->PickVictim([&](const TierIndex::Entry& e) {
      return pins_[static_cast<uint32_t>(e.slot)] == 0;
    });
    if (victim == kNoEntry) {
      Add(counters_.rejections);
      return Status::Busy("HBM tier full (" + std::to_string(index_->size()) +
                          " blocks) and every slot is pinned by a transfer or reader in flight");
    }
    Add(counters_.evictions);
    const BlockMeta vmeta = index_->Get(victim).meta;
    const uint32_t vslot = static_cast<uint32_t>(index_->Get(victim).slot);
    if (!sink_) {
      DropEntryLocked(victim, true);
      continue;
    }
    // Demote: keep the victim's slot pinned while the sink copies it out, without our lock.
    ++pins_[vslot];
    DropEntryLocked(victim, true);
    l.unlock();
    sink_(vmeta, Data(vslot));
    l.lock();
    UnpinLocked(vslot);
  }
  HbmBlock b;
  b.slot = free_.back();
  free_.pop_back();
  pins_[b.slot] = 1;
  b.data = Data(b.slot);
  b.meta = meta;
  return b;
}

void HbmTier::Publish(const HbmBlock& b) {
  std::lock_guard<std::mutex> l(mu_);
  EntryId existing = index_->Find(b.meta.ns, b.meta.key);
  if (existing != kNoEntry) {
    // Replace even an identical block: the caller may already be reading its own slot.
    if (SameIdentity(index_->Get(existing).meta, b.meta)) {
      Add(counters_.duplicate_puts);
    }
    DropEntryLocked(existing, false);
  }
  index_->Insert(b.meta, b.slot, slot_bytes_);
  Add(counters_.inserts);
  Add(counters_.bytes_in, b.meta.payload_bytes);
}

void HbmTier::Abandon(const HbmBlock& b) {
  std::lock_guard<std::mutex> l(mu_);
  ReleaseLocked(b.slot);
  UnpinLocked(b.slot);
}

bool HbmTier::Pin(uint64_t ns, const Hash128& key, HbmBlock* out) {
  std::lock_guard<std::mutex> l(mu_);
  EntryId id = index_->Find(ns, key);
  if (id == kNoEntry) return false;
  const TierIndex::Entry& e = index_->Get(id);
  index_->Touch(id);
  out->slot = static_cast<uint32_t>(e.slot);
  out->meta = e.meta;
  out->data = Data(out->slot);
  ++pins_[out->slot];
  return true;
}

void HbmTier::Unpin(const HbmBlock& b) {
  std::lock_guard<std::mutex> l(mu_);
  UnpinLocked(b.slot);
}

Status HbmTier::Put(const BlockMeta& meta, const void* host_data) {
  KVT_ASSIGN_OR_RETURN(HbmBlock b, Reserve(meta));
  GpuStream s = device_->copy_stream();
  Status st = device_->CopyAsync(b.data, host_data, meta.payload_bytes, s);
  if (st.ok()) {
    auto ev = device_->Record(s);
    st = ev.ok() ? (*ev)->Wait() : ev.status();
  }
  if (!st.ok()) {
    Abandon(b);
    return st;
  }
  Publish(b);
  Unpin(b);
  return Status::Ok();
}

Status HbmTier::Read(uint64_t ns, const Hash128& key, void* dst, size_t dst_bytes,
                     BlockMeta* meta) {
  HbmBlock b;
  if (!Pin(ns, key, &b)) {
    Add(counters_.misses);
    return Status::NotFound("block not in HBM tier");
  }
  Status st;
  if (b.meta.payload_bytes != dst_bytes) {
    st = Status::InvalidArgument("buffer of " + std::to_string(dst_bytes) +
                                 " bytes for a block of " + std::to_string(b.meta.payload_bytes));
  } else {
    GpuStream s = device_->copy_stream();
    st = device_->CopyAsync(dst, b.data, dst_bytes, s);
    if (st.ok()) {
      auto ev = device_->Record(s);
      st = ev.ok() ? (*ev)->Wait() : ev.status();
    }
  }
  Unpin(b);
  if (!st.ok()) return st;
  Add(counters_.hits);
  Add(counters_.bytes_out, dst_bytes);
  if (meta != nullptr) *meta = b.meta;
  return Status::Ok();
}

Status HbmTier::Remove(uint64_t ns, const Hash128& key) {
  std::lock_guard<std::mutex> l(mu_);
  EntryId id = index_->Find(ns, key);
  if (id == kNoEntry) return Status::NotFound("block not in HBM tier");
  DropEntryLocked(id, false);
  Add(counters_.removals);
  return Status::Ok();
}

size_t HbmTier::DropNamespace(uint64_t ns) {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<EntryId> ids = index_->EntriesOf(ns);
  for (EntryId id : ids) DropEntryLocked(id, false);
  Add(counters_.removals, ids.size());
  return ids.size();
}

std::vector<BlockId> HbmTier::Snapshot() const {
  std::lock_guard<std::mutex> l(mu_);
  return index_->Ids();
}

void HbmTier::StatsJson(nlohmann::json* out) const {
  counters_.ToJson(out);
  std::lock_guard<std::mutex> l(mu_);
  auto& j = *out;
  j["policy"] = std::string(index_->policy_name());
  j["blocks"] = index_->size();
  j["capacity_bytes"] = region_.size();
  j["slot_bytes"] = slot_bytes_;
  j["slots_total"] = pins_.size();
  j["slots_free"] = free_.size();
  j["used_bytes"] = index_->charged();
  j["deferred_frees"] = deferred_frees_;
  j["memory"] = device_->emulated() ? "emulated" : "cuda";
  j["memory_note"] = device_->description();
}

}  // namespace kvt
