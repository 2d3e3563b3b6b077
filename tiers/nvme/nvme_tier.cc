// NvmeTier: the data path (write, lookup, read, remove, flush), I/O contexts and stats.
#include "tiers/nvme/nvme_tier.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "base/log.h"
#include "tiers/nvme/nvme_internal.h"
#include "tiers/nvme/segment_format.h"

namespace kvt {

// ---------------------------------------------------------------------------------------------
// I/O contexts

NvmeTier::IoLease::IoLease(NvmeTier* t) : t_(t) {
  {
    std::lock_guard<std::mutex> l(t->pool_mu_);
    if (!t->idle_.empty()) {
      ctx_ = std::move(t->idle_.back());
      t->idle_.pop_back();
    }
  }
  if (ctx_ == nullptr) {
    ctx_ = std::make_unique<IoContext>();
    ctx_->io = t->opts_.io_factory ? t->opts_.io_factory() : MakeDefaultFileIo(t->opts_.io_depth);
  }
  t->PrepareContext(*ctx_);
}

NvmeTier::IoLease::~IoLease() {
  std::lock_guard<std::mutex> l(t_->pool_mu_);
  t_->idle_.push_back(std::move(ctx_));
}

void NvmeTier::PrepareContext(IoContext& ctx) {
  std::vector<iovec> want;
  uint64_t version;
  {
    std::lock_guard<std::mutex> l(pool_mu_);
    if (io_engine_.empty()) io_engine_ = ctx.io->Name();
    version = registered_version_;
    if (ctx.registered_version == version) return;
    want = registered_;
  }
  ctx.registered_version = version;
  ctx.regs.clear();
  Status s = ctx.io->RegisterBuffers(want);
  if (s.ok()) {
    ctx.regs = std::move(want);
    registered_ok_ = !ctx.regs.empty();
    return;
  }
  registered_ok_ = false;
  Add(c_->register_fallbacks);
  if (!register_logged_.exchange(true)) {
    KVT_LOG(kWarn,
            "NVMe tier: registered buffers refused, using plain reads/writes: " + s.ToString());
  }
}

void NvmeTier::RegisterBuffers(std::span<const iovec> bufs) {
  {
    std::lock_guard<std::mutex> l(pool_mu_);
    host_regions_.assign(bufs.begin(), bufs.end());
    RebuildRegistrationLocked();
  }
  IoLease lease(this);  // registers one context now, so the outcome is in the log and stats
}

StatusOr<uint64_t> NvmeTier::RegisterRegion(void* base, size_t bytes) {
  if (base == nullptr || bytes == 0) {
    return Status::InvalidArgument("NVMe register region: null or empty region");
  }
  uint64_t handle;
  {
    std::lock_guard<std::mutex> l(pool_mu_);
    handle = next_region_++;
    caller_regions_[handle] = iovec{base, bytes};
    RebuildRegistrationLocked();
  }
  IoLease lease(this);
  return handle;
}

void NvmeTier::UnregisterRegion(uint64_t handle) {
  std::lock_guard<std::mutex> l(pool_mu_);
  if (caller_regions_.erase(handle) > 0) RebuildRegistrationLocked();
  // Idle contexts keep the old registration (pages stay pinned, never used for I/O) until their
  // next lease re-registers; a context only does fixed I/O into regions of its current set.
}

void NvmeTier::RebuildRegistrationLocked() {
  // io_uring takes at most 1 GiB per registered buffer: larger regions go in pieces.
  constexpr size_t kMaxPiece = size_t{1} << 30;
  registered_.clear();
  auto add = [&](const iovec& v) {
    auto* p = static_cast<uint8_t*>(v.iov_base);
    for (size_t off = 0; off < v.iov_len; off += kMaxPiece) {
      registered_.push_back(iovec{p + off, std::min(kMaxPiece, v.iov_len - off)});
    }
  };
  for (const iovec& v : host_regions_) add(v);
  for (const auto& [h, v] : caller_regions_) add(v);
  std::sort(registered_.begin(), registered_.end(),
            [](const iovec& a, const iovec& b) { return a.iov_base < b.iov_base; });
  ++registered_version_;
}

int NvmeTier::FixedIndex(const IoContext& ctx, const void* p, size_t len) const {
  if (ctx.regs.empty()) return -1;
  auto it = std::upper_bound(ctx.regs.begin(), ctx.regs.end(), p,
                             [](const void* v, const iovec& r) { return v < r.iov_base; });
  if (it == ctx.regs.begin()) return -1;
  --it;
  auto* base = static_cast<const uint8_t*>(it->iov_base);
  auto* q = static_cast<const uint8_t*>(p);
  if (q + len > base + it->iov_len) return -1;
  return static_cast<int>(it - ctx.regs.begin());
}

// ---------------------------------------------------------------------------------------------
// Write

struct NvmeTier::Prepared {
  const NvmeWriteItem* item = nullptr;
  Status status;
  const void* src = nullptr;  // what goes to disk: the slot, or the bounce buffer
  uint32_t stored = 0;
  Codec codec = Codec::kNone;
  uint64_t checksum = 0;
  uint64_t stored_checksum = 0;
  Reservation where;
  bool reserved = false;
};

Status NvmeTier::Write(const BlockMeta& meta, const void* payload) {
  NvmeWriteItem item{meta, payload};
  return WriteBatch({&item, 1});
}

Status NvmeTier::WriteBatch(std::span<const NvmeWriteItem> items, std::vector<Status>* results) {
  if (results != nullptr) results->assign(items.size(), Status::Ok());
  if (items.empty()) return Status::Ok();
  if (opts_.read_only) return Status::PermissionDenied("NVMe tier opened read-only");
  IoLease ctx(this);
  const uint64_t max_stored = opts_.segment_bytes - kSegmentHeaderBytes - kRecordHeaderBytes;

  // Staging bytes: compression output, or a copy of an unaligned payload.
  std::vector<size_t> stage_off(items.size(), SIZE_MAX);
  size_t stage_bytes = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    size_t n = items[i].meta.payload_bytes;
    size_t need = 0;
    if (opts_.codec == Codec::kZstd)
      need = AlignUp(std::max(ZstdBound(n), n), kNvmeAlign);
    else if (!IsAligned(items[i].payload))
      need = AlignUp(n, kNvmeAlign);
    if (need > 0) {
      stage_off[i] = stage_bytes;
      stage_bytes += need;
    }
  }
  uint8_t* stage = stage_bytes > 0 ? ctx->Bounce(stage_bytes) : nullptr;
  if (stage_bytes > 0 && stage == nullptr) return Status::Internal("out of staging memory");

  std::vector<Prepared> prep(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    Prepared& p = prep[i];
    const NvmeWriteItem& it = items[i];
    p.item = &it;
    uint32_t n = it.meta.payload_bytes;
    if (it.payload == nullptr || n == 0 || n > max_stored) {
      p.status = Status::InvalidArgument("NVMe write: payload of " + std::to_string(n) +
                                         " bytes (must be 1.." + std::to_string(max_stored) +
                                         " for segment_bytes " +
                                         std::to_string(opts_.segment_bytes) + ")");
      continue;
    }
    // The checksum is end to end: computed once where the bytes entered the engine (the host
    // tier's put, fused with its copy) and carried here, not recomputed, which cost a third of a
    // write's CPU. A wrong one cannot serve wrong bytes: every read verifies the payload against
    // it and drops the record (a miss, counted in checksum_failures).
    p.checksum = it.meta.checksum != 0 ? it.meta.checksum : Checksum64(it.payload, n);
    p.src = it.payload;
    p.stored = n;
    p.stored_checksum = p.checksum;
    if (opts_.codec == Codec::kZstd) {
      uint8_t* out = stage + stage_off[i];
      size_t cap = AlignUp(std::max(ZstdBound(n), size_t{n}), kNvmeAlign);
      auto z = ZstdShuffleCompress(it.payload, n, out, cap, opts_.zstd_level);
      Add(c_->compress_in, n);
      // Compression pays only if it saves at least one 4 KiB block on disk.
      if (z.ok() && AlignUp(*z, kNvmeAlign) < AlignUp(n, kNvmeAlign)) {
        p.src = out;
        p.stored = static_cast<uint32_t>(*z);
        p.codec = Codec::kZstd;
        p.stored_checksum = Checksum64(out, p.stored);
      } else if (!IsAligned(it.payload)) {
        std::memcpy(out, it.payload, n);
        p.src = out;
        Add(c_->unaligned_copies);
      }
      Add(c_->compress_out, p.stored);
    } else if (!IsAligned(it.payload)) {
      std::memcpy(stage + stage_off[i], it.payload, n);
      p.src = stage + stage_off[i];
      Add(c_->unaligned_copies);
    }
  }

  // Reserve in order, across segment rotations, so one batch is one set of writes in flight.
  // The group is written first only when a rotation would wait for a segment this thread still
  // holds reservations in (see Reserve).
  std::vector<Prepared*> group;
  std::vector<uint32_t> held;  // segments the group has reservations in
  for (Prepared& p : prep) {
    if (!p.status.ok()) continue;
    for (;;) {
      bool would_rotate = false;
      auto r = Reserve(*ctx, RecordBytes(p.stored), p.item->meta.ns, p.item->meta.key, held,
                       &would_rotate);
      if (r.ok()) {
        p.where = *r;
        p.reserved = true;
        group.push_back(&p);
        if (held.empty() || held.back() != r->segment) held.push_back(r->segment);
        break;
      }
      if (would_rotate) {
        CommitGroup(*ctx, group);
        group.clear();
        held.clear();
        continue;
      }
      p.status = r.status();
      break;
    }
  }
  CommitGroup(*ctx, group);

  Status first;
  for (size_t i = 0; i < prep.size(); ++i) {
    const Prepared& p = prep[i];
    if (p.status.ok()) {
      Add(c_->writes);
      Add(c_->bytes_in, items[i].meta.payload_bytes);
    } else {
      Add(c_->write_failures);
      if (p.status.code() == Code::kNoSpace) Add(c_->no_space);
      if (p.status.code() == Code::kIoError) Add(c_->io_errors);
      if (first.ok()) first = p.status;
    }
    if (results != nullptr) (*results)[i] = p.status;
  }
  return first;
}

void NvmeTier::CommitGroup(IoContext& ctx, std::span<Prepared*> group) {
  if (group.empty()) return;
  uint8_t* hdrs = ctx.Headers(group.size());
  if (hdrs == nullptr) {
    for (Prepared* p : group) {
      p->status = Status::Internal("out of memory for record headers");
      EndWrite(p->where.segment, p->where.offset);
    }
    return;
  }
  ctx.reqs.clear();
  // Adjacent records (reservations that follow each other in one segment) go out as one gathered
  // write of their headers and payloads, up to kMaxRunBytes: fewer, larger requests, and no
  // 4 KiB header writes of their own (see IoRequest::iov). Request r writes the records
  // group[run_begin[r] .. run_begin[r + 1]).
  constexpr uint64_t kMaxRunBytes = 4u << 20;
  std::vector<iovec> iov;
  iov.reserve(2 * group.size());  // requests point into it: no reallocation below
  std::vector<size_t> run_begin;
  for (size_t i = 0; i < group.size(); ++i) {
    Prepared& p = *group[i];
    const BlockMeta& m = p.item->meta;
    RecordHeader h;
    h.codec = static_cast<uint8_t>(p.codec);
    h.flags = m.has_tokens ? kRecordHasTokens : 0;
    h.generation = p.where.generation;
    h.ns = m.ns;
    h.key = m.key;
    h.parent = m.parent;
    h.tokens_digest = m.tokens_digest;
    h.payload_bytes = m.payload_bytes;
    h.stored_bytes = p.stored;
    h.payload_checksum = p.checksum;
    h.stored_checksum = p.stored_checksum;
    uint8_t* hb = hdrs + i * kRecordHeaderBytes;
    EncodeRecordHeader(h, hb);
    const size_t len = AlignUp(p.stored, kNvmeAlign);
    iov.push_back(iovec{hb, kRecordHeaderBytes});
    iov.push_back(iovec{const_cast<void*>(p.src), len});
    IoRequest* run = ctx.reqs.empty() ? nullptr : &ctx.reqs.back();
    if (run != nullptr && run->fd == p.where.fd && run->offset + run->len == p.where.offset &&
        run->len + kRecordHeaderBytes + len <= kMaxRunBytes && run->iovcnt + 2 <= kMaxIoVecs) {
      run->iovcnt += 2;
      run->len += kRecordHeaderBytes + len;
    } else {
      ctx.reqs.push_back(IoRequest::WriteV(p.where.fd, &iov[iov.size() - 2], 2, p.where.offset));
      run_begin.push_back(i);
    }
  }
  run_begin.push_back(group.size());
  // Each run is indexed as soon as its write completed, while the others are still in flight:
  // the index work overlaps the device's instead of following it.
  Status ignored = ctx.io->Execute(ctx.reqs, [&](size_t r) {
    IndexRun(ctx.reqs[r], group.subspan(run_begin[r], run_begin[r + 1] - run_begin[r]));
  });
  (void)ignored;  // per-request results, in each run
}

void NvmeTier::IndexRun(const IoRequest& r, std::span<Prepared*> run) {
  Add(c_->bytes_written, r.bytes_done);
  if (!r.result.ok()) {
    // A torn run may have written some of its records whole; none is indexed (a hole in the
    // log, see Flush).
    index_sync_needed_ = true;
    for (Prepared* p : run) {
      p->status = r.result;
      EndWrite(p->where.segment, p->where.offset);
    }
    return;
  }
  std::vector<NvmeEntry> entries;
  std::vector<uint64_t> own;
  for (Prepared* p : run) {
    segs_[p->where.segment]->writes_done.fetch_add(1);
    const BlockMeta& m = p->item->meta;
    NvmeEntry e;
    e.ns = m.ns;
    e.key = m.key;
    e.loc.segment = p->where.segment;
    e.loc.generation = p->where.generation;
    e.loc.offset = p->where.offset;
    e.loc.stored_bytes = p->stored;
    e.loc.payload_bytes = m.payload_bytes;
    e.loc.checksum = p->checksum;
    e.loc.codec = p->codec;
    e.loc.has_tokens = m.has_tokens;
    e.loc.parent = m.parent;
    e.loc.tokens_digest = m.tokens_digest;
    entries.push_back(e);
    own.push_back(p->where.offset);
  }
  // The payloads are on the device: only now may the index point at them. The same RocksDB
  // write carries the segment's replay mark (see NvmeIndex::Mark); a run lies in one segment.
  const Reservation& w = run.front()->where;
  const NvmeIndex::Mark mark = MarkFor(w.segment, w.generation, own);
  Status put = index_->Put(entries, {&mark, 1});
  for (Prepared* p : run) {
    if (!put.ok()) {
      p->status = put;
      // The index can no longer be trusted to hold what was acknowledged: the next Flush syncs
      // it, and reports the index's failure instead of claiming durability.
      index_sync_needed_ = true;
    }
    EndWrite(p->where.segment, p->where.offset);
  }
}

// ---------------------------------------------------------------------------------------------
// Lookup and read

bool NvmeTier::Lookup(uint64_t ns, const Hash128& key, BlockMeta* out) const {
  Add(c_->lookups);
  NvmeLocation loc;
  if (!index_->Find(ns, key, &loc)) return false;
  if (segs_[loc.segment]->generation.load() != loc.generation) return false;
  if (out != nullptr) {
    out->ns = ns;
    out->key = key;
    out->parent = loc.parent;
    out->tokens_digest = loc.tokens_digest;
    out->has_tokens = loc.has_tokens;
    out->payload_bytes = loc.payload_bytes;
    out->checksum = loc.checksum;
  }
  return true;
}

void NvmeTier::DropCorrupt(const NvmeEntry& e, const Status& why) {
  Add(c_->checksum_failures);
  KVT_LOG(kInfo, "NVMe tier: dropping corrupt record in " + SegmentFileName(e.loc.segment) +
                     " at offset " + std::to_string(e.loc.offset) + ": " + why.ToString());
  if (opts_.read_only) return;
  auto n = index_->EraseIfAt({&e, 1});
  if (n.ok() && *n > 0 && drop_sink_) drop_sink_(e.ns, e.key);
}

// ---------------------------------------------------------------------------------------------
// Remove, drop, flush, stats

Status NvmeTier::Remove(uint64_t ns, const Hash128& key) {
  if (opts_.read_only) return Status::PermissionDenied("NVMe tier opened read-only");
  KVT_RETURN_IF_ERROR(index_->Erase(ns, key));
  Add(c_->removes);
  return Status::Ok();
}

Status NvmeTier::DropNamespace(uint64_t ns) {
  if (opts_.read_only) return Status::PermissionDenied("NVMe tier opened read-only");
  KVT_ASSIGN_OR_RETURN(uint64_t n, index_->EraseNamespace(ns));
  (void)n;
  // Durable now: a replay at open must not bring the namespace's records back. (Rare, so one
  // index sync here is cheap.)
  Add(c_->index_syncs);
  KVT_RETURN_IF_ERROR(index_->Sync());
  Add(c_->namespaces_dropped);
  return Status::Ok();
}

// Each segment counts the writes completed in it and how many of those a finished fdatasync
// covers. A caller syncs every segment whose count is ahead of its coverage and skips the others,
// so no caller returns before a sync that started after its own writes has completed, and
// concurrent callers sync concurrently (the device overlaps their flushes; one sync at a time
// halved durable throughput here).
// The index is not synced: a crash loses at most index puts whose records a replay at open finds
// again (see "Durability" in nvme_tier.h). Before syncing, Flush waits for writes reserved before
// it in each segment: a replay stops at the first record that does not verify, so a record still
// in flight below an acknowledged one must not be left torn.
Status NvmeTier::Flush() {
  if (opts_.read_only) return Status::Ok();
  Add(c_->flushes);
  {
    std::unique_lock<std::mutex> lock(alloc_mu_);
    for (const auto& sp : segs_) {
      Segment* s = sp.get();
      if (s->pending.empty()) continue;
      const uint64_t end = s->write_offset;
      const uint64_t gen = s->generation.load();
      Add(c_->flush_waits);
      alloc_cv_.wait(lock, [&] {
        return s->pending.empty() || *s->pending.begin() >= end || s->generation.load() != gen;
      });
    }
  }
  Status first;
  {
    IoLease ctx(this);
    // Segment files created and not yet covered by a finished directory sync: their names must
    // survive a crash too. Counted like the segments' writes (below), so a Flush never relies on
    // another caller's sync that is still running.
    const uint64_t created = dirs_created_.load();
    if (dirs_synced_.load() < created) {
      Status st = ctx->io->Fsync(dir_fd_.get());
      if (st.ok()) {
        uint64_t covered = dirs_synced_.load();
        while (covered < created && !dirs_synced_.compare_exchange_weak(covered, created)) {
        }
      } else {
        Add(c_->io_errors);  // not covered: the next Flush syncs the directory again
        if (st.code() == Code::kNoSpace) Add(c_->no_space);
        first = st;
      }
    }
    for (const auto& s : segs_) {
      const uint64_t written = s->writes_done.load();
      if (s->writes_synced.load() >= written) continue;
      Add(c_->flush_syncs);
      Status st = ctx->io->Fdatasync(s->fd_raw.load());
      if (!st.ok()) {
        // Coverage is not advanced: the next Flush syncs this segment again.
        Add(c_->io_errors);
        if (st.code() == Code::kNoSpace) Add(c_->no_space);
        if (first.ok()) first = st;
        continue;
      }
      uint64_t covered = s->writes_synced.load();
      while (covered < written && !s->writes_synced.compare_exchange_weak(covered, written)) {
      }
    }
  }
  if (index_sync_needed_.exchange(false)) {
    Add(c_->index_syncs);
    Status idx = index_->Sync();
    if (!idx.ok()) {
      index_sync_needed_ = true;
      if (first.ok()) first = idx;
    }
  }
  return first;
}

void NvmeTier::VisitCounters(const CounterVisitor& visit) const {
  auto v = [&](std::string_view name, const std::atomic<uint64_t>& a) {
    visit(name, a.load(std::memory_order_relaxed));
  };
  // Names are the keys of kvt_stats_json's tiers.nvme object (some predate this visitor).
  v("writes", c_->writes);
  v("write_failures", c_->write_failures);
  v("reads", c_->reads);
  v("hits", c_->hits);
  v("misses", c_->misses);
  v("lookups", c_->lookups);
  v("bytes_in", c_->bytes_in);
  v("bytes_out", c_->bytes_out);
  v("device_bytes_written", c_->bytes_written);
  v("device_bytes_read", c_->bytes_read);
  v("checksum_failures", c_->checksum_failures);
  v("io_errors", c_->io_errors);
  v("no_space", c_->no_space);
  v("flushes", c_->flushes);
  v("flush_syncs", c_->flush_syncs);
  v("flush_waits", c_->flush_waits);
  v("index_syncs", c_->index_syncs);
  v("records_replayed", c_->records_replayed);
  v("replay_bytes_read", c_->replay_bytes_read);
  v("segments_reclaimed", c_->segments_reclaimed);
  v("evictions", c_->blocks_evicted);
  v("stale_swept", c_->stale_swept);
  v("reinsertions", c_->reinsertions);
  v("removals", c_->removes);
  v("namespaces_dropped", c_->namespaces_dropped);
  v("unaligned_copies", c_->unaligned_copies);
  v("register_fallbacks", c_->register_fallbacks);
  v("compress_in", c_->compress_in);
  v("compress_out", c_->compress_out);
  v("segments_created", c_->segments_created);
  // Gauges.
  visit("entries", index_->size());
  visit("segments_total", num_segments_);
  visit("used_bytes", c_->segments_created.load(std::memory_order_relaxed) * opts_.segment_bytes);
  visit("capacity_bytes", opts_.budget_bytes);
  visit("index_bytes", index_->DiskBytes());
}

NvmeStats NvmeTier::Stats() const {
  auto g = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  NvmeStats s;
  s.writes = g(c_->writes);
  s.write_failures = g(c_->write_failures);
  s.reads = g(c_->reads);
  s.hits = g(c_->hits);
  s.misses = g(c_->misses);
  s.lookups = g(c_->lookups);
  s.bytes_in = g(c_->bytes_in);
  s.bytes_out = g(c_->bytes_out);
  s.bytes_written = g(c_->bytes_written);
  s.bytes_read = g(c_->bytes_read);
  s.checksum_failures = g(c_->checksum_failures);
  s.io_errors = g(c_->io_errors);
  s.no_space = g(c_->no_space);
  s.segments_reclaimed = g(c_->segments_reclaimed);
  s.blocks_evicted = g(c_->blocks_evicted);
  s.stale_swept = g(c_->stale_swept);
  s.reinsertions = g(c_->reinsertions);
  s.removes = g(c_->removes);
  s.namespaces_dropped = g(c_->namespaces_dropped);
  s.unaligned_copies = g(c_->unaligned_copies);
  s.flushes = g(c_->flushes);
  s.flush_syncs = g(c_->flush_syncs);
  s.register_fallbacks = g(c_->register_fallbacks);
  s.compress_in = g(c_->compress_in);
  s.compress_out = g(c_->compress_out);
  s.compression_ratio =
      s.compress_out == 0 ? 1.0 : static_cast<double>(s.compress_in) / s.compress_out;
  s.entries = index_->size();
  s.segments_total = num_segments_;
  s.segments_created = g(c_->segments_created);
  s.bytes_used = s.segments_created * opts_.segment_bytes;
  s.budget_bytes = opts_.budget_bytes;
  s.index_bytes = index_->DiskBytes();
  s.registered_buffers = registered_ok_.load();
  s.direct_io = direct_io_.load();
  {
    std::lock_guard<std::mutex> l(pool_mu_);
    s.io_engine = io_engine_.empty() ? "none" : (io_engine_ == "io_uring" ? "io_uring" : "posix");
  }
  return s;
}

void NvmeTier::ForEachEntry(const std::function<bool(const NvmeEntry&)>& fn) const {
  index_->ForEach(fn);
}

}  // namespace kvt
