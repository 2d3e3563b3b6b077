#include "tiers/host/host_pool.h"

#include "base/log.h"
#include "base/units.h"

namespace kvt {

StatusOr<std::unique_ptr<HostPool>> HostPool::Create(uint64_t budget_bytes, uint64_t slab_bytes,
                                                     bool try_lock) {
  if (slab_bytes == 0 || slab_bytes % AlignedBuffer::kPage != 0) {
    return Status::InvalidArgument("host_slab_bytes must be a positive multiple of 4 KiB, got " +
                                   std::to_string(slab_bytes));
  }
  if (budget_bytes < slab_bytes) {
    return Status::InvalidArgument("host_bytes (" + FormatBytes(budget_bytes) +
                                   ") is smaller than one slab (host_slab_bytes = " +
                                   FormatBytes(slab_bytes) + ")");
  }
  std::unique_ptr<HostPool> p(new HostPool());
  p->slab_bytes_ = slab_bytes;
  const uint64_t n = budget_bytes / slab_bytes;  // the budget is hard: round down
  KVT_ASSIGN_OR_RETURN(p->mem_, PinnedBuffer::Allocate(n * slab_bytes, try_lock));
  if (!p->mem_.note().empty()) {
    const std::string msg =
        "host tier memory is " + std::string(p->mem_.KindName()) + ": " + p->mem_.note();
    // Asked for (host_mlock=false): worth a note, not a warning.
    if (try_lock) {
      KVT_LOG(kWarn, msg);
    } else {
      KVT_LOG(kInfo, msg);
    }
  }
  p->slabs_.resize(n);
  for (uint32_t i = 0; i < n; ++i) p->free_slabs_.insert(i);
  p->stats_.capacity_bytes = n * slab_bytes;
  p->stats_.slab_bytes = slab_bytes;
  p->stats_.slabs_total = n;
  return p;
}

bool HostPool::Fits(uint64_t bytes) const {
  return AlignUp(bytes, AlignedBuffer::kPage) <= slabs_.size() * slab_bytes_;
}

bool HostPool::InitSlabs(uint32_t first, uint32_t run, uint64_t slot_bytes) {
  for (uint32_t i = first; i < first + run; ++i) free_slabs_.erase(i);
  SlabState& s = slabs_[first];
  s.slot_bytes = slot_bytes;
  s.run = run;
  s.used = 0;
  const uint32_t slots = run > 1 ? 1 : static_cast<uint32_t>(slab_bytes_ / slot_bytes);
  s.free_slots.clear();
  for (uint32_t k = slots; k-- > 0;) s.free_slots.push_back(k);  // hand out low slots first
  s.pins.assign(slots, 0);
  s.release_pending.assign(slots, false);
  for (uint32_t i = first + 1; i < first + run; ++i) {
    slabs_[i].slot_bytes = slot_bytes;
    slabs_[i].run = 0;  // continuation
  }
  partial_[slot_bytes].insert(first);
  return true;
}

std::optional<SlotRef> HostPool::Allocate(uint64_t bytes) {
  const uint64_t sb = AlignUp(bytes == 0 ? 1 : bytes, AlignedBuffer::kPage);
  auto& partial = partial_[sb];
  if (partial.empty()) {
    const uint32_t run = static_cast<uint32_t>((sb + slab_bytes_ - 1) / slab_bytes_);
    // Lowest free run of `run` contiguous slabs.
    uint32_t start = 0, len = 0;
    bool found = false;
    for (uint32_t i : free_slabs_) {
      if (len > 0 && i == start + len) {
        ++len;
      } else {
        start = i;
        len = 1;
      }
      if (len == run) {
        found = true;
        break;
      }
    }
    if (!found) {
      ++stats_.alloc_failures;
      return std::nullopt;
    }
    InitSlabs(start, run, sb);
  }
  const uint32_t slab = *partial.begin();
  SlabState& s = slabs_[slab];
  const uint32_t idx = s.free_slots.back();
  s.free_slots.pop_back();
  ++s.used;
  if (s.free_slots.empty()) partial.erase(slab);
  ++stats_.slots_used;
  stats_.bytes_used += sb;
  return (static_cast<uint64_t>(slab) << 32) | idx;
}

uint8_t* HostPool::Data(SlotRef r) const {
  const SlabState& s = Slab(r);
  return mem_.data() + static_cast<uint64_t>(SlabOf(r)) * slab_bytes_ + Index(r) * s.slot_bytes;
}

void HostPool::Release(SlotRef r) {
  SlabState& s = Slab(r);
  if (s.pins[Index(r)] != 0) {
    s.release_pending[Index(r)] = true;
    ++stats_.deferred_frees;
    return;
  }
  FreeNow(r);
}

void HostPool::Unpin(SlotRef r) {
  SlabState& s = Slab(r);
  if (--s.pins[Index(r)] == 0 && s.release_pending[Index(r)]) FreeNow(r);
}

void HostPool::FreeNow(SlotRef r) {
  const uint32_t slab = SlabOf(r);
  SlabState& s = slabs_[slab];
  s.release_pending[Index(r)] = false;
  s.free_slots.push_back(Index(r));
  --s.used;
  --stats_.slots_used;
  stats_.bytes_used -= s.slot_bytes;
  if (s.used == 0) {
    // The whole slab (or run) is free again: give it back so any size can use it.
    partial_[s.slot_bytes].erase(slab);
    const uint32_t run = s.run;  // the loop resets s.run
    for (uint32_t i = slab; i < slab + run; ++i) {
      slabs_[i].slot_bytes = 0;
      slabs_[i].run = 1;
      free_slabs_.insert(i);
    }
    s.free_slots.clear();
    s.pins.clear();
    s.release_pending.clear();
  } else {
    partial_[s.slot_bytes].insert(slab);
  }
}

std::vector<iovec> HostPool::Regions() const {
  std::vector<iovec> v;
  v.reserve(slabs_.size());
  for (size_t i = 0; i < slabs_.size(); ++i) {
    v.push_back(iovec{mem_.data() + i * slab_bytes_, slab_bytes_});
  }
  return v;
}

HostPoolStats HostPool::Stats() const {
  HostPoolStats st = stats_;
  st.slabs_free = free_slabs_.size();
  return st;
}

}  // namespace kvt
