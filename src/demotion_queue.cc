#include "src/demotion_queue.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "base/log.h"

namespace kvt {

DemotionQueue::DemotionQueue(const DemotionQueueOptions& o, NvmeTier* nvme, Filter filter,
                             OnWritten on_written, OnLeft on_left)
    : StorageTier(/*holds_slots=*/false),
      opts_(o),
      nvme_(nvme),
      filter_(std::move(filter)),
      on_written_(std::move(on_written)),
      on_left_(std::move(on_left)) {
  // Reserved, not touched: pages are faulted in as slots are first used. Without it every block
  // gets a buffer of its own (slower, same results).
  auto r = AlignedBuffer::Allocate(std::max<uint64_t>(opts_.capacity_bytes, AlignedBuffer::kPage),
                                   /*lock=*/false);
  if (r.ok()) {
    region_ = std::move(r).value();
  } else {
    KVT_LOG(kWarn, "demotion queue: no region of " + std::to_string(opts_.capacity_bytes) +
                       " bytes (" + r.status().ToString() + "); buffers are mapped per block");
  }
  writer_ = std::thread([this] { WriterLoop(); });
}

DemotionQueue::~DemotionQueue() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;  // the writer finishes what is queued first
  }
  work_cv_.notify_all();
  writer_.join();
}

bool DemotionQueue::Enqueue(const SlotPin& victim, bool may_wait) {
  const BlockId id{victim.meta.ns, victim.meta.key};
  const uint64_t n = victim.meta.payload_bytes;
  const size_t size = AlignUp(n, AlignedBuffer::kPage);
  uint8_t* slot = nullptr;
  AlignedBuffer own;
  {
    std::unique_lock<std::mutex> l(mu_);
    auto room = [&] { return RoomLocked(n); };
    if (!stop_ && !room() && may_wait) {
      // A put's eviction: backpressure. The bound only keeps a wedged device from hanging puts.
      ++put_waits_;
      idle_cv_.wait_for(l, std::chrono::seconds(30), [&] { return stop_ || room(); });
    }
    if (stop_ || !room()) {
      ++drops_;
      return false;  // the host tier drops it, as an eviction without NVMe would
    }
    // The room is this block's from here on (counted before the copy, which runs unlocked).
    ++depth_;
    bytes_ += n;
    if (depth_ > high_water_) high_water_ = depth_;
    slot = TakeSlotLocked(size);
  }
  if (slot == nullptr) {
    auto b = AlignedBuffer::Allocate(size, /*lock=*/false);
    if (b.ok()) {
      own = std::move(b).value();
      slot = own.data();
    }
  }
  if (slot != nullptr) std::memcpy(slot, victim.data, n);
  std::lock_guard<std::mutex> l(mu_);
  if (slot == nullptr || stop_) {  // out of memory, or the writer is gone
    if (slot != nullptr && own.data() == nullptr) free_slots_[size].push_back(slot);
    --depth_;
    bytes_ -= n;
    ++drops_;
    idle_cv_.notify_all();  // the room it held is free again
    return false;
  }
  if (own.data() != nullptr) ++own_buffers_;
  if (auto old = pending_.find(id); old != pending_.end()) {
    // An older version of this block is still on its way: the newer one supersedes it (FIFO
    // order makes the newer write land last even when the older one is being written).
    old->second->removed = true;
    pending_.erase(old);
  }
  auto it = std::make_shared<Item>();
  it->meta = victim.meta;
  it->data = slot;
  it->own = std::move(own);
  pending_[id] = it;
  fifo_.push_back(std::move(it));
  ++enqueued_;
  work_cv_.notify_one();
  return true;
}

uint8_t* DemotionQueue::TakeSlotLocked(size_t size) {
  auto p = free_slots_.find(size);
  if (p != free_slots_.end() && !p->second.empty()) {
    uint8_t* slot = p->second.back();
    p->second.pop_back();
    return slot;
  }
  if (region_.data() == nullptr || region_next_ + size > region_.size()) return nullptr;
  uint8_t* slot = region_.data() + region_next_;
  region_next_ += size;
  return slot;
}

void DemotionQueue::ReleaseLocked(Item& it, std::vector<AlignedBuffer>* to_free) {
  if (it.own.data() != nullptr) {
    to_free->push_back(std::move(it.own));
  } else if (it.data != nullptr) {
    free_slots_[AlignUp(it.meta.payload_bytes, AlignedBuffer::kPage)].push_back(it.data);
  }
  it.data = nullptr;
}

bool DemotionQueue::RoomLocked(uint64_t bytes) const {
  return depth_ == 0 || (depth_ < opts_.capacity_blocks && bytes_ + bytes <= opts_.capacity_bytes);
}

bool DemotionQueue::HasRoom(uint64_t bytes) const {
  std::lock_guard<std::mutex> l(mu_);
  return RoomLocked(bytes);
}

void DemotionQueue::EraseLocked(const std::shared_ptr<Item>& it) {
  auto p = pending_.find(BlockId{it->meta.ns, it->meta.key});
  if (p != pending_.end() && p->second == it) pending_.erase(p);
}

void DemotionQueue::WriterLoop() {
  std::vector<std::shared_ptr<Item>> batch;
  for (;;) {
    {
      std::unique_lock<std::mutex> l(mu_);
      work_cv_.wait(l, [&] { return stop_ || !fifo_.empty(); });
      if (fifo_.empty()) return;  // stopping, and drained
      while (!fifo_.empty() && batch.size() < opts_.batch_blocks) {
        batch.push_back(std::move(fifo_.front()));
        fifo_.pop_front();
        batch.back()->writing = !batch.back()->removed;
      }
    }
    WriteBatch(batch);
    batch.clear();
  }
}

void DemotionQueue::WriteBatch(std::vector<std::shared_ptr<Item>>& batch) {
  std::vector<NvmeWriteItem> items;
  std::vector<size_t> which;
  std::vector<bool> admitted(batch.size(), false);
  items.reserve(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    const Item& it = *batch[i];
    if (!it.writing || !filter_(it.meta)) continue;  // superseded, removed, not admitted
    admitted[i] = true;
    items.push_back(NvmeWriteItem{it.meta, it.data});
    which.push_back(i);
  }
  std::vector<Status> results;
  if (!items.empty()) (void)nvme_->WriteBatch(items, &results);
  results.resize(items.size(), Status::Internal("no result"));
  std::vector<bool> failed(batch.size(), false);
  for (size_t k = 0; k < items.size(); ++k) failed[which[k]] = !results[k].ok();
  std::vector<Hash128> remove_after;
  std::vector<uint64_t> remove_ns;
  std::vector<BlockMeta> left;  // neither on NVMe nor here any more: lost (or not admitted)
  {
    // First out of the map (a written block is found on NVMe from now on, a lost one nowhere);
    // the callbacks below run before Drain can see these blocks done.
    std::lock_guard<std::mutex> l(mu_);
    for (size_t i = 0; i < batch.size(); ++i) {
      Item& it = *batch[i];
      EraseLocked(batch[i]);
      if (it.writing && it.removed && !failed[i]) {
        remove_after.push_back(it.meta.key);
        remove_ns.push_back(it.meta.ns);
      }
      if (it.writing && !it.removed && (!admitted[i] || failed[i])) left.push_back(it.meta);
    }
  }
  for (size_t k = 0; k < items.size(); ++k) on_written_(items[k].meta, results[k]);
  if (on_left_) {
    for (const BlockMeta& m : left) on_left_(m);
  }
  // Removed (or dropped) while their write was in flight: their NVMe copy must not outlive that.
  for (size_t k = 0; k < remove_after.size(); ++k) (void)nvme_->Remove(remove_ns[k], remove_after[k]);
  std::vector<AlignedBuffer> to_free;
  {
    std::lock_guard<std::mutex> l(mu_);
    ++batches_;
    removed_in_flight_ += remove_after.size();
    for (const std::shared_ptr<Item>& it : batch) {
      --depth_;
      ++done_;
      bytes_ -= it->meta.payload_bytes;
      it->finished = true;
      // Out of the map since the first locked step above: nothing reads its bytes any more.
      ReleaseLocked(*it, &to_free);
    }
    for (size_t k = 0; k < items.size(); ++k) {
      if (results[k].ok()) {
        ++written_;
        continue;
      }
      ++failures_;
      if (failures_since_take_++ == 0) first_failure_ = results[k];
    }
  }
  idle_cv_.notify_all();
}

void DemotionQueue::Drain() {
  std::unique_lock<std::mutex> l(mu_);
  const uint64_t ticket = enqueued_;
  idle_cv_.wait(l, [&] { return done_ >= ticket; });
}

Status DemotionQueue::TakeError() {
  std::lock_guard<std::mutex> l(mu_);
  if (failures_since_take_ == 0) return Status::Ok();
  Status s = first_failure_.WithContext(
      std::to_string(failures_since_take_) +
      " evicted block(s) could not be written to NVMe since the last flush (background "
      "demotion); they are lost (first error)");
  failures_since_take_ = 0;
  first_failure_ = Status::Ok();
  return s;
}

bool DemotionQueue::Lookup(uint64_t ns, const Hash128& key, BlockMeta* out, bool) {
  std::lock_guard<std::mutex> l(mu_);
  auto p = pending_.find(BlockId{ns, key});
  if (p == pending_.end()) return false;
  if (out != nullptr) *out = p->second->meta;
  return true;
}

Status DemotionQueue::Read(uint64_t ns, const Hash128& key, void* dst, size_t dst_bytes,
                           BlockMeta* meta) {
  std::lock_guard<std::mutex> l(mu_);
  auto p = pending_.find(BlockId{ns, key});
  if (p == pending_.end()) return Status::NotFound("block not waiting for NVMe");
  const Item& b = *p->second;
  if (b.meta.payload_bytes != dst_bytes) {
    return Status::InvalidArgument("buffer of " + std::to_string(dst_bytes) +
                                   " bytes for a block of " + std::to_string(b.meta.payload_bytes));
  }
  // Under the lock: items leave the map (and may be freed) only under it.
  std::memcpy(dst, b.data, dst_bytes);
  if (meta != nullptr) *meta = b.meta;
  return Status::Ok();
}

void DemotionQueue::WaitFinished(std::unique_lock<std::mutex>& l,
                                 const std::shared_ptr<Item>& it) {
  if (!it->writing || it->finished) return;
  ++remove_waits_;
  idle_cv_.wait(l, [&] { return it->finished; });
}

Status DemotionQueue::Remove(uint64_t ns, const Hash128& key) {
  std::unique_lock<std::mutex> l(mu_);
  auto p = pending_.find(BlockId{ns, key});
  if (p == pending_.end()) return Status::NotFound("block not waiting for NVMe");
  std::shared_ptr<Item> it = p->second;
  it->removed = true;
  pending_.erase(p);
  WaitFinished(l, it);
  return Status::Ok();
}

Status DemotionQueue::DropNamespace(uint64_t ns, size_t* dropped) {
  std::unique_lock<std::mutex> l(mu_);
  std::vector<std::shared_ptr<Item>> gone;
  for (auto p = pending_.begin(); p != pending_.end();) {
    if (p->first.ns != ns) {
      ++p;
      continue;
    }
    p->second->removed = true;
    gone.push_back(p->second);
    p = pending_.erase(p);
  }
  for (const auto& it : gone) WaitFinished(l, it);
  if (dropped != nullptr) *dropped = gone.size();
  return Status::Ok();
}

std::vector<BlockId> DemotionQueue::Snapshot() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<BlockId> ids;
  ids.reserve(pending_.size());
  for (const auto& [id, it] : pending_) ids.push_back(id);
  return ids;
}

void DemotionQueue::VisitCounters(const CounterVisitor& visit) const {
  std::lock_guard<std::mutex> l(mu_);
  visit("depth", depth_);
  visit("high_water", high_water_);
  visit("capacity_blocks", opts_.capacity_blocks);
  visit("capacity_bytes", opts_.capacity_bytes);
  visit("queued_bytes", bytes_);
  visit("enqueued", enqueued_);
  visit("drops", drops_);
  visit("put_waits", put_waits_);
  visit("batches", batches_);
  visit("written", written_);
  visit("write_failures", failures_);
  visit("removed_in_flight", removed_in_flight_);
  visit("remove_waits", remove_waits_);
  visit("region_bytes", region_.size());
  visit("own_buffers", own_buffers_);
}

}  // namespace kvt
