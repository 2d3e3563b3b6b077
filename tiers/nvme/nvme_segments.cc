// NvmeTier: segment space. Reservation in the active segment, rotation to a free, new or
// reclaimed segment, reclamation (oldest generation first, with optional reinsertion).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "base/log.h"
#include "tiers/nvme/nvme_internal.h"
#include "tiers/nvme/segment_format.h"

namespace kvt {

StatusOr<NvmeTier::Reservation> NvmeTier::Reserve(IoContext& ctx, uint64_t bytes, uint64_t ns,
                                                  const Hash128& key,
                                                  std::span<const uint32_t> held,
                                                  bool* would_rotate) {
  std::unique_lock<std::mutex> lock(alloc_mu_);
  for (;;) {
    if (!rotating_ && active_ >= 0) {
      Segment& s = *segs_[active_];
      if (s.write_offset + bytes <= opts_.segment_bytes) {
        Reservation r{static_cast<uint32_t>(active_), s.generation.load(), s.write_offset,
                      s.fd_raw.load()};
        s.write_offset += bytes;
        ++s.inflight;
        s.pending.insert(r.offset);
        s.records.push_back({ns, key, r.offset});
        return r;
      }
    }
    if (!held.empty() && (rotating_ || RotationMayReclaim(held))) {
      *would_rotate = true;
      return Status::Busy("NVMe segment rotation needed");
    }
    if (rotating_) {
      alloc_cv_.wait(lock, [&] { return !rotating_; });
      continue;
    }
    rotating_ = true;
    if (active_ >= 0) {
      segs_[active_]->state = NvmeSegmentInfo::State::kSealed;
      sealed_.push_back(static_cast<uint32_t>(active_));
      active_ = -1;
    }
    Status st = OpenNextSegmentLocked(ctx, lock);
    rotating_ = false;
    alloc_cv_.notify_all();
    KVT_RETURN_IF_ERROR(st);
  }
}

bool NvmeTier::RotationMayReclaim(std::span<const uint32_t> held) const {
  if (!free_.empty()) return false;  // the next segment is a free one
  // Else a new file, or (none can be made) a reclaim of the oldest sealed segment, which is the
  // active one when none is sealed yet. Assume the reclaim.
  const int64_t target = !sealed_.empty() ? int64_t{sealed_.front()} : int64_t{active_};
  return target >= 0 && std::find(held.begin(), held.end(), target) != held.end();
}

void NvmeTier::EndWrite(uint32_t segment, uint64_t offset) {
  std::lock_guard<std::mutex> l(alloc_mu_);
  Segment& s = *segs_[segment];
  --s.inflight;
  s.pending.erase(offset);
  alloc_cv_.notify_all();  // reclaim waits for inflight == 0, Flush for the pending below it
}

NvmeIndex::Mark NvmeTier::MarkFor(uint32_t segment, uint64_t generation,
                                  std::span<const uint64_t> own) {
  std::lock_guard<std::mutex> l(alloc_mu_);
  Segment& s = *segs_[segment];
  NvmeIndex::Mark m{segment, generation, s.write_offset};
  for (uint64_t off : s.pending) {
    if (std::find(own.begin(), own.end(), off) == own.end()) {
      m.end = off;
      break;
    }
  }
  return m;
}

Status NvmeTier::OpenNextSegmentLocked(IoContext& ctx, std::unique_lock<std::mutex>& lock) {
  if (!free_.empty()) {
    uint32_t id = free_.back();
    free_.pop_back();
    return StartSegmentLocked(ctx, id);
  }
  if (!absent_.empty() && !disk_full_) {
    auto created = CreateSegmentLocked(ctx);
    if (created.ok()) return StartSegmentLocked(ctx, *created);
    if (created.status().code() != Code::kNoSpace) return created.status();
    // The file system is full below our budget: live within the segments we have.
    disk_full_ = true;
    Add(c_->no_space);
    KVT_LOG(kWarn, "NVMe tier: file system full; continuing within " +
                       std::to_string(num_segments_ - absent_.size()) +
                       " segments: " + created.status().ToString());
  }
  if (sealed_.empty()) {
    return Status::NoSpace("NVMe tier: no segment can be created (file system full) or reclaimed");
  }
  uint32_t id = sealed_.front();
  sealed_.pop_front();
  return ReclaimLocked(ctx, id, lock);
}

StatusOr<uint32_t> NvmeTier::CreateSegmentLocked(IoContext& ctx) {
  uint32_t id = absent_.back();
  KVT_ASSIGN_OR_RETURN(UniqueFd fd, OpenSegmentFile(id, /*create=*/true));
  Status st = ctx.io->Fallocate(fd.get(), 0, opts_.segment_bytes);
  if (!st.ok()) {
    // Leave nothing behind: a partial file would count against neither du nor the budget.
    ::unlink((opts_.dir + "/" + SegmentFileName(id)).c_str());
    return st;
  }
  // The new directory entry must be durable before anything in the file can be: the next Flush
  // syncs the directory before it returns (no sync here: see StartSegmentLocked).
  dirs_created_.fetch_add(1);
  absent_.pop_back();
  Segment& s = *segs_[id];
  s.fd = std::move(fd);
  s.fd_raw = s.fd.get();
  s.state = NvmeSegmentInfo::State::kFree;
  Add(c_->segments_created);
  return id;
}

Status NvmeTier::StartSegmentLocked(IoContext& ctx, uint32_t id) {
  Segment& s = *segs_[id];
  const uint64_t gen = next_generation_++;
  // New generation first: from here every entry of the previous one reads as stale.
  s.generation.store(gen);
  s.records.clear();
  s.write_offset = kSegmentHeaderBytes;
  SegmentHeader h;
  h.segment_id = id;
  h.generation = gen;
  h.segment_bytes = opts_.segment_bytes;
  uint8_t* block = ctx.Headers(1);
  if (block == nullptr) return Status::Internal("out of memory for a segment header");
  EncodeSegmentHeader(h, block);
  IoRequest r = IoRequest::Write(s.fd_raw.load(), block, kSegmentHeaderBytes, 0);
  Status st = ctx.io->Execute({&r, 1});
  Add(c_->bytes_written, r.bytes_done);
  // Not synced here. On this kind of disk an fdatasync flushes the device cache, i.e. everything
  // written since the last flush, and one per rotation cut sequential writes to 0.4x of the raw
  // loop (issue 11). The header write completes before any record of the generation is
  // reserved, so the Flush that makes such a record durable (an fdatasync of this file) makes the
  // header durable too. Until then a crash may leave the old header: entries of the new
  // generation are swept at open (not flushed, so not promised), and entries of the old one
  // whose deletion was lost read records of the new generation, which verification turns into
  // misses (kStale: a newer record there). See docs/decisions.md.
  if (!st.ok()) {
    s.generation.store(0);
    s.state = NvmeSegmentInfo::State::kFree;
    free_.push_back(id);
    if (st.code() == Code::kNoSpace)
      Add(c_->no_space);
    else
      Add(c_->io_errors);
    return st.WithContext("start " + SegmentFileName(id));
  }
  s.state = NvmeSegmentInfo::State::kActive;
  active_ = static_cast<int>(id);
  return Status::Ok();
}

Status NvmeTier::ReclaimLocked(IoContext& ctx, uint32_t id, std::unique_lock<std::mutex>& lock) {
  Segment& s = *segs_[id];
  alloc_cv_.wait(lock, [&] { return s.inflight == 0; });
  const uint64_t old_gen = s.generation.load();
  const int fd = s.fd_raw.load();

  // Live entries of this segment: the ones the index still places here.
  std::vector<NvmeEntry> drop, hot;
  uint64_t hot_bytes = 0;
  for (const Segment::Ref& ref : s.records) {
    NvmeEntry e;
    e.ns = ref.ns;
    e.key = ref.key;
    if (!index_->Find(ref.ns, ref.key, &e.loc)) continue;
    if (e.loc.segment != id || e.loc.generation != old_gen || e.loc.offset != ref.offset) continue;
    bool hit = false;
    index_->IsHitAt(e.ns, e.key, e.loc, &hit);
    uint64_t rb = RecordBytes(e.loc.stored_bytes);
    // Reinsertion keeps at most half a segment, so the reclaimed segment still takes new writes.
    if (opts_.reinsertion && hit && hot_bytes + rb <= opts_.segment_bytes / 2) {
      hot.push_back(e);
      hot_bytes += rb;
    } else {
      drop.push_back(e);
    }
  }

  // Read the hot records (header + payload, one request each) before the segment is reused.
  AlignedBuffer hold;
  std::vector<uint64_t> hold_off;
  if (!hot.empty()) {
    auto b = AlignedBuffer::Allocate(hot_bytes, false);
    if (b.ok()) hold = std::move(b).value();
    std::vector<IoRequest> reqs;
    uint64_t off = 0;
    for (const NvmeEntry& e : hot) {
      hold_off.push_back(off);
      if (hold.data() != nullptr) {
        reqs.push_back(
            IoRequest::Read(fd, hold.data() + off, RecordBytes(e.loc.stored_bytes), e.loc.offset));
      }
      off += RecordBytes(e.loc.stored_bytes);
    }
    if (hold.data() != nullptr) {
      Status ignored = ctx.io->Execute(reqs);
      (void)ignored;
    }
    std::vector<NvmeEntry> keep;
    std::vector<uint64_t> keep_off;
    for (size_t i = 0; i < hot.size(); ++i) {
      bool ok = hold.data() != nullptr && reqs[i].result.ok();
      if (ok) Add(c_->bytes_read, reqs[i].bytes_done);
      RecordHeader h;
      uint8_t* rec = ok ? hold.data() + hold_off[i] : nullptr;
      ok = ok && DecodeRecordHeader(rec, &h).ok() && h.generation == old_gen && h.ns == hot[i].ns &&
           h.key == hot[i].key && h.stored_bytes == hot[i].loc.stored_bytes &&
           Checksum64(rec + kRecordHeaderBytes, h.stored_bytes) == h.stored_checksum;
      if (ok) {
        keep.push_back(hot[i]);
        keep_off.push_back(hold_off[i]);
      } else {
        drop.push_back(hot[i]);  // unreadable or corrupt: not worth keeping
      }
    }
    hot.swap(keep);
    hold_off.swap(keep_off);
  }

  auto dropped = index_->EraseIfAt(drop);
  if (dropped.ok()) Add(c_->blocks_evicted, *dropped);
  if (drop_sink_) {
    for (const NvmeEntry& e : drop) drop_sink_(e.ns, e.key);
  }
  // A failed delete leaves entries of old_gen in RocksDB: stale after the bump, swept at open.

  KVT_RETURN_IF_ERROR(StartSegmentLocked(ctx, id));
  Add(c_->segments_reclaimed);
  if (hot.empty()) return Status::Ok();

  // Reinsert: the same bytes under the new generation, compacted at the start of the segment.
  const uint64_t gen = s.generation.load();
  std::vector<IoRequest> reqs;
  std::vector<NvmeEntry> moved, from;
  for (size_t i = 0; i < hot.size(); ++i) {
    uint8_t* rec = hold.data() + hold_off[i];
    RecordHeader h;
    if (!DecodeRecordHeader(rec, &h).ok()) continue;
    h.generation = gen;
    EncodeRecordHeader(h, rec);
    uint64_t rb = RecordBytes(h.stored_bytes);
    NvmeEntry e = hot[i];
    e.loc.generation = gen;
    e.loc.offset = s.write_offset;
    reqs.push_back(IoRequest::Write(fd, rec, rb, s.write_offset));
    s.records.push_back({e.ns, e.key, e.loc.offset});
    s.write_offset += rb;
    moved.push_back(e);
    from.push_back(hot[i]);
  }
  Status ignored = ctx.io->Execute(reqs);
  (void)ignored;
  s.writes_done.fetch_add(1);
  for (size_t i = 0; i < moved.size(); ++i) {
    Add(c_->bytes_written, reqs[i].bytes_done);
    if (!reqs[i].result.ok()) {
      index_sync_needed_ = true;  // a hole in the log (see Flush)
      continue;                   // the old entry is stale now: a miss, swept lazily
    }
    if (index_->PutIfAt(moved[i], from[i].loc).ok()) Add(c_->reinsertions);
  }
  return Status::Ok();
}

}  // namespace kvt
