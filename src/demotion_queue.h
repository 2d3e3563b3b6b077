// DemotionQueue: the mover's bounded, asynchronous host -> NVMe write path. An eviction from the
// host tier copies its victim into a page-aligned buffer of the queue (one memcpy, so the host
// slot is free at once: a queued victim that kept its slot pinned would make the evicting call
// evict again and again until the queue filled); a background writer drains the queue in
// batches of up to io_depth blocks with NvmeTier::WriteBatch. So a put, get or prefetch that
// evicts never waits for an NVMe write.
//
// Memory, beside the host budget: one region of capacity_bytes on transparent huge pages, reserved at construction and
// faulted in as used, carved into slots by size (a bump pointer, then a free list per size); a
// block that finds no slot (a size the region has no room left for) gets a buffer of its own.
// Measured on these machines (docs/bench_results.md, "Write-back demotion"): a buffer mapped per
// eviction cost 0.3 ms of mmap, page faults and munmap per 256 KiB block under the queue's lock
// (write-back puts at 0.2 GB/s), and O_DIRECT writes from 4 KiB pages run at a fraction of those
// from huge pages (1.4 against 3.6 GB/s). The copy into the slot runs outside the lock.
//
// Bounds: at most `capacity_blocks` blocks and `capacity_bytes` bytes (but always one block) wait
// or are being written. A full queue (docs/decisions.md): an eviction made by a put waits for room
// (backpressure: a put can go no faster than NVMe writes in write-back mode; counted put_waits);
// an eviction made by anything else (a get's promotion, a prefetch, an HBM demotion) never waits:
// the block is dropped, as an eviction without an NVMe tier would drop it (counted drops).
//
// Blocks on their way stay readable: the queue implements the tier contract (kind kNvme: where
// they are going) for lookups, reads, removal and namespace drops, so a block is never missing
// between leaving the host tier and being indexed on NVMe. A block removed (or dropped with its
// namespace) while its write is in flight is removed from NVMe once the write lands, and Remove /
// DropNamespace wait for that: the write indexes the block before its batch returns, so without
// the wait a get right after a remove could still find it on NVMe.
//
// Failures: a failed background write loses that block (counted). The first failure since the
// last Flush is kept and TakeError() hands it to the next kvt_flush (a sticky error), so a caller
// learns that acknowledged data did not become durable.
//
// Thread safety: every method may be called from any thread. The destructor drains the queue.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "io/aligned_buffer.h"
#include "tiers/nvme/nvme_tier.h"
#include "tiers/tier.h"

namespace kvt {

struct DemotionQueueOptions {
  size_t capacity_blocks = 256;
  uint64_t capacity_bytes = 64ull << 20;
  size_t batch_blocks = 64;  // io_depth
};

class DemotionQueue final : public StorageTier {
 public:
  // Decides whether a block goes to NVMe at all (admission, already there); counts its reasons.
  using Filter = std::function<bool(const BlockMeta& meta)>;
  // The result of each block written (OK or the write's failure).
  using OnWritten = std::function<void(const BlockMeta& meta, const Status& st)>;
  // A block that left the queue without landing on NVMe (its write failed, or admission said
  // no), after it left the queue's map. Not called for removed or superseded blocks.
  using OnLeft = std::function<void(const BlockMeta& meta)>;
  DemotionQueue(const DemotionQueueOptions& o, NvmeTier* nvme, Filter filter,
                OnWritten on_written, OnLeft on_left = nullptr);
  ~DemotionQueue() override;

  // Queues a copy of the victim's bytes: true when queued, false when dropped (full, and may_wait
  // false or the wait timed out; or out of memory; counted).
  bool Enqueue(const SlotPin& victim, bool may_wait);
  // Whether a block of `bytes` would be queued now without waiting (a hint: it may change).
  bool HasRoom(uint64_t bytes) const;
  // Waits until every block queued before the call has been written (or failed).
  void Drain();
  // The first background write failure since the last call, with how many failed; OK if none.
  Status TakeError();

  // --- the tier contract (blocks on their way to NVMe) ---
  TierKind kind() const override { return TierKind::kNvme; }
  bool Lookup(uint64_t ns, const Hash128& key, BlockMeta* out, bool touch) override;
  Status Read(uint64_t ns, const Hash128& key, void* dst, size_t dst_bytes,
              BlockMeta* meta) override;
  Status Remove(uint64_t ns, const Hash128& key) override;
  Status DropNamespace(uint64_t ns, size_t* dropped = nullptr) override;
  std::vector<BlockId> Snapshot() const override;
  // depth, high_water, capacity_blocks, capacity_bytes, queued_bytes, enqueued, drops, put_waits,
  // batches, written, write_failures, removed_in_flight, remove_waits, region_bytes,
  // own_buffers (evictions that found no slot in the region and got a buffer of their own).
  void VisitCounters(const CounterVisitor& visit) const override;

 private:
  struct Item {
    BlockMeta meta;
    uint8_t* data = nullptr;  // the copy: a slot of the region (payload rounded up to 4 KiB),
                              // or own.data()
    AlignedBuffer own;        // only when the region had no slot
    bool writing = false;
    bool removed = false;  // removed while being written: remove from NVMe once it lands
    bool finished = false;  // its batch is done (written and, if removed, removed again)
  };
  struct IdHash {
    size_t operator()(const BlockId& b) const { return b.key.lo ^ (b.key.hi * 31) ^ b.ns; }
  };
  void WriterLoop();
  void WriteBatch(std::vector<std::shared_ptr<Item>>& batch);
  // Takes an item out of the map (if it is still the one there). REQUIRES: mu_ held.
  void EraseLocked(const std::shared_ptr<Item>& it);
  // Waits until the batch writing `it` (if any) is done. REQUIRES: l holds mu_.
  void WaitFinished(std::unique_lock<std::mutex>& l, const std::shared_ptr<Item>& it);
  // Whether a block of `bytes` fits the bounds now (always, when the queue is empty).
  // REQUIRES: mu_ held.
  bool RoomLocked(uint64_t bytes) const;
  // A slot of the region of `size` bytes, or nullptr when it has none. REQUIRES: mu_ held.
  uint8_t* TakeSlotLocked(size_t size);
  // Gives a finished item's memory back: its slot to the free list, or its own buffer to
  // `to_free` (unmapped by the caller, after the lock). REQUIRES: mu_ held.
  void ReleaseLocked(Item& it, std::vector<AlignedBuffer>* to_free);

  const DemotionQueueOptions opts_;
  NvmeTier* const nvme_;
  const Filter filter_;
  const OnWritten on_written_;
  const OnLeft on_left_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_, idle_cv_;  // idle_cv_: a batch finished (room, progress)
  std::deque<std::shared_ptr<Item>> fifo_;                              // GUARDED_BY(mu_)
  std::unordered_map<BlockId, std::shared_ptr<Item>, IdHash> pending_;  // GUARDED_BY(mu_)
  size_t depth_ = 0;          // GUARDED_BY(mu_): queued + being written
  uint64_t bytes_ = 0;        // GUARDED_BY(mu_)
  uint64_t enqueued_ = 0;     // GUARDED_BY(mu_): total ever queued (Drain's ticket)
  uint64_t done_ = 0;         // GUARDED_BY(mu_): total finished (written, failed or skipped)
  size_t high_water_ = 0;     // GUARDED_BY(mu_)
  uint64_t drops_ = 0, batches_ = 0, written_ = 0, failures_ = 0, removed_in_flight_ = 0;
  uint64_t put_waits_ = 0;
  uint64_t remove_waits_ = 0;  // GUARDED_BY(mu_): removes and drops that waited for a write
  AlignedBuffer region_;     // the queue's memory (empty when it could not be mapped)
  uint64_t region_next_ = 0;  // GUARDED_BY(mu_): bytes of the region carved so far
  std::unordered_map<size_t, std::vector<uint8_t*>> free_slots_;  // GUARDED_BY(mu_): by size
  uint64_t own_buffers_ = 0;                                       // GUARDED_BY(mu_)
  uint64_t failures_since_take_ = 0;  // GUARDED_BY(mu_)
  Status first_failure_;              // GUARDED_BY(mu_)
  bool stop_ = false;                 // GUARDED_BY(mu_)
  std::thread writer_;
};

}  // namespace kvt
