// HostPool: the host tier's slab allocator. One pinned region of the tier's byte budget, cut into
// slabs (host_slab_bytes, 16 MiB by default); each slab serves slots of one size (a block's payload
// rounded up to 4 KiB), so every slot is 4 KiB-aligned and is a valid O_DIRECT and io_uring fixed
// buffer. A block larger than a slab takes a run of contiguous slabs. A slab whose slots are all
// free goes back to the free set and can serve another size.
//
// The budget is hard: the region is allocated once at open and never grows. Pins protect slots
// being read: releasing a pinned slot defers the free to the last Unpin.
//
// Thread safety: none; the host tier serializes calls under its mutex.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "base/status.h"
#include "tiers/host/pinned_buffer.h"

namespace kvt {

// A slot: (slab index << 32) | slot index within the slab.
using SlotRef = uint64_t;

struct HostPoolStats {
  uint64_t capacity_bytes = 0;
  uint64_t slab_bytes = 0;
  uint64_t slabs_total = 0;
  uint64_t slabs_free = 0;
  uint64_t slots_used = 0;
  uint64_t bytes_used = 0;  // slot bytes handed out (including 4 KiB round-up)
  uint64_t alloc_failures = 0;
  uint64_t deferred_frees = 0;
};

class HostPool {
 public:
  static StatusOr<std::unique_ptr<HostPool>> Create(uint64_t budget_bytes, uint64_t slab_bytes,
                                                    bool try_lock);

  // A slot of at least `bytes`, or nullopt when none is free (the caller evicts and retries).
  std::optional<SlotRef> Allocate(uint64_t bytes);
  // Frees the slot now, or at its last Unpin when pinned.
  void Release(SlotRef s);
  void Pin(SlotRef s) { ++Slab(s).pins[Index(s)]; }
  void Unpin(SlotRef s);
  bool IsPinned(SlotRef s) const { return Slab(s).pins[Index(s)] != 0; }
  uint8_t* Data(SlotRef s) const;
  // Whether Allocate(bytes) can ever succeed in this pool.
  bool Fits(uint64_t bytes) const;

  // The slabs as iovecs, for registering with io_uring.
  std::vector<iovec> Regions() const;
  HostPoolStats Stats() const;
  const PinnedBuffer& memory() const { return mem_; }

 private:
  struct SlabState {
    uint64_t slot_bytes = 0;  // 0: free slab
    uint32_t run = 1;         // slabs spanned (large slots); continuation slabs have run = 0
    uint32_t used = 0;
    std::vector<uint32_t> free_slots;
    std::vector<uint16_t> pins;
    std::vector<bool> release_pending;
  };
  HostPool() = default;
  static uint32_t SlabOf(SlotRef s) { return static_cast<uint32_t>(s >> 32); }
  static uint32_t Index(SlotRef s) { return static_cast<uint32_t>(s); }
  SlabState& Slab(SlotRef s) { return slabs_[SlabOf(s)]; }
  const SlabState& Slab(SlotRef s) const { return slabs_[SlabOf(s)]; }
  bool InitSlabs(uint32_t first, uint32_t run, uint64_t slot_bytes);
  void FreeNow(SlotRef s);

  PinnedBuffer mem_;
  uint64_t slab_bytes_ = 0;
  std::vector<SlabState> slabs_;
  std::set<uint32_t> free_slabs_;
  std::map<uint64_t, std::set<uint32_t>> partial_;  // slot size -> slabs with a free slot
  HostPoolStats stats_;
};

}  // namespace kvt
