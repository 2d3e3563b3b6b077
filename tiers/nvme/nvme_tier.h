// NvmeTier: the NVMe tier (tier 2). Blocks live in log-structured segment files (see
// segment_format.h) written and read through FileIo (io_uring, O_DIRECT, registered buffers,
// batched submissions); NvmeIndex maps (namespace, key) to a record.
//
// Write path: a record header (its own 4 KiB block) and the payload, straight from the caller's
// 4 KiB-aligned host slot, are submitted in one batch; only when both completed is the index
// entry put, so an entry never points at bytes that were not written.
// Read path: the header and the payload are read in one batch (payload straight into the
// caller's buffer when it is aligned and large enough); the header checksum, format version,
// generation, namespace, key, lengths and the payload checksum are verified. Any mismatch is a
// miss: the entry is dropped and counted as a checksum failure. Wrong bytes are never returned.
// ReadBatch keeps up to io_depth requests in flight and reads each block straight into its
// destination; when the destination lies in a registered region (RegisterRegion, or the host
// slabs given to RegisterBuffers) the payload is read with READ_FIXED.
// Space: the budget is a whole number of segments, each fallocate'd when first used. When none is
// free, the oldest segment is reclaimed: blocks read since they were written are reinserted (if
// enabled), the rest are dropped from the index, and the segment's generation is bumped, so any
// index entry still naming the old generation reads as a miss and is swept.
// Durability: Flush() waits until every record reserved before it was written, then runs one
// fdatasync per segment touched since the last Flush. It does not sync the index: the segment
// records describe themselves (record header: generation, namespace, key, lengths, checksums), and
// each index put also records, per segment, the offset below which every record is indexed (its
// "mark"). At open, records past each segment's mark are verified and indexed in log order,
// stopping at the first record that does not verify. So every write acknowledged before Flush()
// was called survives a crash, without a RocksDB WAL sync. A failed write leaves a hole that a
// replay would stop at, so after one the next Flush also syncs the index. Rotations sync nothing:
// a new segment's header becomes durable with the first Flush of its records, and a new segment
// file's directory entry with the next Flush (see docs/decisions.md). Remove() is not made
// durable by Flush (a crash may bring back a removed block, with its own verified bytes);
// DropNamespace() syncs the index before it returns.
//
// Return codes: OK; NotFound (absent, stale, corrupt; a miss); InvalidArgument (bad call);
// NoSpace (ENOSPC from the file system: writes fail, reads keep working); IoError (a device error;
// the entry is kept); PermissionDenied (read-only open); Corruption (at Open: another format).
//
// Thread safety: every public method is thread-safe. Each calling thread borrows an I/O context
// (one FileIo, i.e. one io_uring ring, plus aligned scratch) from a pool for the duration of a
// call, so there is no shared ring and no I/O thread to hop through.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "io/unique_fd.h"
#include "tiers/policy/block_meta.h"
#include "tiers/nvme/nvme_index.h"
#include "tiers/nvme/nvme_options.h"

namespace kvt {

struct IoContext;

// One block to write. `payload`: payload_bytes of data, 4 KiB-aligned (host slots are); the
// kernel reads it up to the next 4 KiB boundary (same page, so always mapped; those bytes are
// padding on disk). An unaligned payload works but is copied first (counted).
struct NvmeWriteItem {
  // meta.checksum: XXH3-64 of the payload as the caller has it (the host tier computes it at
  // put), trusted and stored, not recomputed; 0: the tier computes it. A wrong one is caught by
  // every read, which then misses: wrong bytes are never served.
  BlockMeta meta;
  const void* payload = nullptr;
};

// One block of a batched read (ReadBatch). The caller fills ns, key, dst, dst_bytes; the tier
// fills status and meta.
// Where the bytes land: with dst 4 KiB-aligned, the payload is read straight into dst: whole
// 4 KiB blocks directly, and when dst_bytes is less than payload_bytes rounded up to 4 KiB, the
// last partial block through a 4 KiB scratch (a tail copy of < 4 KiB). An unaligned dst (or a
// compressed record) is read into scratch and copied (counted as unaligned_copies).
struct NvmeReadItem {
  // --- in ---
  uint64_t ns = 0;
  Hash128 key;
  void* dst = nullptr;
  size_t dst_bytes = 0;  // >= the block's payload_bytes (see Lookup), else InvalidArgument
  // --- out ---
  // OK: dst holds the verified payload. NotFound: absent, stale, or failed verification (the
  // entry is dropped and counted). IoError: the device failed (the entry is kept).
  // InvalidArgument: dst too small or null. dst is unspecified unless OK.
  Status status;
  BlockMeta meta;  // on OK
};

// What inspect and fsck see of a segment.
struct NvmeSegmentInfo {
  uint32_t id = 0;
  enum class State : uint8_t { kAbsent, kFree, kActive, kSealed } state = State::kAbsent;
  uint64_t generation = 0;
  uint64_t write_offset = 0;  // bytes of log written (header included)
  uint64_t file_bytes = 0;    // size of the file (0 when absent)
  std::string header_error;   // why the segment header did not verify, when it did not
};
const char* SegmentStateName(NvmeSegmentInfo::State s);

struct NvmeFsckReport {
  uint64_t segments = 0;
  uint64_t segment_problems = 0;  // truncated files, bad headers under live entries
  uint64_t entries = 0;
  uint64_t entries_ok = 0;
  uint64_t entries_bad = 0;    // record missing, torn, or checksum mismatch
  uint64_t entries_stale = 0;  // older generation than their segment (normal; swept)
  uint64_t io_errors = 0;
  uint64_t dropped = 0;               // with repair: bad and stale entries deleted
  std::vector<std::string> problems;  // one line per problem (capped at 1000)
  bool clean() const { return segment_problems == 0 && entries_bad == 0 && io_errors == 0; }
};

class NvmeTier {
 public:
  // Opens or creates the tier in options.dir. Corruption when the directory holds another
  // format version (the message names both); InvalidArgument for bad options or a segment size
  // that differs from the directory's.
  static StatusOr<std::unique_ptr<NvmeTier>> Open(const NvmeOptions& options);
  // Options of an existing directory (segment size and budget from its FORMAT file), for tools.
  static StatusOr<NvmeOptions> OptionsFromDirectory(const std::string& dir);
  ~NvmeTier();
  NvmeTier(const NvmeTier&) = delete;
  NvmeTier& operator=(const NvmeTier&) = delete;

  // Stores one block, replacing any block of the same key. Returns once the payload is written
  // and indexed (not yet durable: see Flush). OK, InvalidArgument, NoSpace, IoError.
  Status Write(const BlockMeta& meta, const void* payload);
  // Stores several blocks: records are appended to the active segment (rotating when it fills)
  // with up to io_depth writes in flight, and once they completed their index entries go into
  // RocksDB in one WriteBatch, not synced (see Flush). Returns the first failure (OK if none);
  // with `results`, each item's own status. Payloads in a registered region use WRITE_FIXED.
  Status WriteBatch(std::span<const NvmeWriteItem> items, std::vector<Status>* results = nullptr);

  // Metadata of a stored block, without I/O. False when absent or stale.
  bool Lookup(uint64_t ns, const Hash128& key, BlockMeta* out) const;

  // Reads one block into `dst`, with the rules of ReadBatch (see NvmeReadItem: a 4 KiB-aligned
  // dst is read into directly, with READ_FIXED when registered). Returns OK with verified bytes
  // and `out` filled, or NotFound, IoError, InvalidArgument. `dst` is unspecified after a
  // failure. (store_get_promote reads straight into a reserved host slot with this.)
  Status Read(uint64_t ns, const Hash128& key, void* dst, size_t dst_bytes, BlockMeta* out);

  // Reads n blocks, each into its own destination (see NvmeReadItem), with up to io_depth
  // requests in flight on one ring, completion-driven (the ring is refilled as requests
  // complete; short reads are resubmitted for the rest). Each item gets its own status; one bad
  // block never fails the others. Returns how many items are OK. Thread-safe; a batch larger
  // than the ring simply streams through it.
  // `done(i)`, when given, is called once per item as soon as its status (and meta) is final, on
  // the calling thread, from inside the batch: work on a finished block (the mover's promotion
  // copy) overlaps the reads still in flight instead of following the whole batch. It must not
  // call back into this tier's reads.
  using ItemDone = std::function<void(size_t index)>;
  size_t ReadBatch(std::span<NvmeReadItem> items, const ItemDone& done = nullptr);

  // Registers caller memory [base, base + bytes) with every I/O context's ring, so that reads
  // into (and writes from) it use READ_FIXED/WRITE_FIXED: no page pinning per I/O. Returns a
  // handle for UnregisterRegion. Registration is per ring and lazy (at a context's next use);
  // when the kernel refuses it (RLIMIT_MEMLOCK), I/O keeps working unregistered and
  // register_fallbacks counts it. InvalidArgument for a null or empty region. The memory must
  // stay valid until UnregisterRegion returns, and no read into it may be in flight then.
  // Long-lived regions only: each change re-registers every ring's whole set.
  StatusOr<uint64_t> RegisterRegion(void* base, size_t bytes);
  void UnregisterRegion(uint64_t handle);

  // OK or NotFound.
  Status Remove(uint64_t ns, const Hash128& key);
  // Removes every block of the namespace (RocksDB DeleteRange plus the in-memory index).
  Status DropNamespace(uint64_t ns);
  // Makes every write acknowledged so far durable: waits for writes reserved earlier in the
  // touched segments, then one fdatasync per segment written since the last Flush (no index
  // sync; see "Durability" above). Concurrent calls sync concurrently; a segment whose writes a
  // finished sync already covers is skipped.
  Status Flush();

  // The host pool's slabs, registered with each I/O context's ring for READ/WRITE_FIXED. When
  // the kernel refuses (memlock), logs once, counts it, and keeps working unregistered.
  void RegisterBuffers(std::span<const iovec> bufs);

  NvmeStats Stats() const;
  // Every counter and gauge of the tier, once each, as (name, value); the names are the keys of
  // the tier's object in kvt_stats_json. The one way counters leave the tier (Navy's
  // getCounters): adding a counter here makes it visible everywhere.
  using CounterVisitor = std::function<void(std::string_view name, uint64_t value)>;
  void VisitCounters(const CounterVisitor& visit) const;
  const NvmeOptions& options() const { return opts_; }

  // Receives each block the tier drops on its own (segment reclamation, a failed checksum) after
  // it left the index; may run with the tier's allocation lock held, so it must not call back
  // into the tier's writes. The store turns these into REMOVED events. Set before use.
  using DropSink = std::function<void(uint64_t ns, const Hash128& key)>;
  void SetDropSink(DropSink sink) { drop_sink_ = std::move(sink); }

  // --- inspection (kvtier inspect / fsck) ---
  // Every index entry (a snapshot); `fn` returns false to stop.
  void ForEachEntry(const std::function<bool(const NvmeEntry&)>& fn) const;
  std::vector<NvmeSegmentInfo> Segments() const;
  // Reads and verifies every indexed record and every segment file. With repair, deletes the
  // bad and stale entries. Needs a writable open for repair.
  NvmeFsckReport Fsck(bool repair);

 private:
  struct Segment;
  class IoLease;
  struct Reservation {
    uint32_t segment = 0;
    uint64_t generation = 0;
    uint64_t offset = 0;
    int fd = -1;
  };
  // A verified record read (Fsck and reinsertion share the read/verify code with Read).
  enum class Verdict { kOk, kIoError, kCorrupt, kStale };

  explicit NvmeTier(NvmeOptions opts);
  Status OpenDirectory();
  Status OpenSegments();
  Status LoadIndex();

  // --- space (nvme_segments.cc) ---
  // Space for one record in the active segment, rotating when it is full. `held`: segments in
  // which the caller holds reservations it has not written yet. A rotation that might wait for
  // one of them (reclaiming it, or another thread's rotation, which may be reclaiming it) is not
  // done: Busy with *would_rotate set, and the caller writes what it holds first.
  StatusOr<Reservation> Reserve(IoContext& ctx, uint64_t bytes, uint64_t ns, const Hash128& key,
                                std::span<const uint32_t> held, bool* would_rotate);
  // Whether the next rotation might reclaim one of `held`. REQUIRES: alloc_mu_ held.
  bool RotationMayReclaim(std::span<const uint32_t> held) const;
  void EndWrite(uint32_t segment, uint64_t offset);
  // The replay mark a put of `own` (records of one segment, reserved and not yet ended) may
  // carry: below the lowest other pending reservation, else the segment's write offset.
  NvmeIndex::Mark MarkFor(uint32_t segment, uint64_t generation, std::span<const uint64_t> own);
  // At open: indexes the verified records past each segment's mark (nvme_replay.cc).
  Status ReplaySegments(std::vector<uint64_t>& max_end);
  Status OpenNextSegmentLocked(IoContext& ctx, std::unique_lock<std::mutex>& lock);
  StatusOr<uint32_t> CreateSegmentLocked(IoContext& ctx);
  Status ReclaimLocked(IoContext& ctx, uint32_t id, std::unique_lock<std::mutex>& lock);
  Status StartSegmentLocked(IoContext& ctx, uint32_t id);
  StatusOr<UniqueFd> OpenSegmentFile(uint32_t id, bool create);

  // --- data path ---
  // Reads and verifies e's record into dst (dst_bytes >= payload_bytes). Verdict kStale when the
  // segment was reclaimed under the read.
  Status ReadRecord(IoContext& ctx, const NvmeEntry& e, void* dst, size_t dst_bytes, BlockMeta* out,
                    Verdict* verdict);
  // Writes a group of prepared items (all reserved) and indexes the ones that completed.
  struct Prepared;
  void CommitGroup(IoContext& ctx, std::span<Prepared*> group);
  // Indexes the records of one completed gathered write `r` (or fails them with it).
  void IndexRun(const IoRequest& r, std::span<Prepared*> run);
  void DropCorrupt(const NvmeEntry& e, const Status& why);
  int FixedIndex(const IoContext& ctx, const void* p, size_t len) const;
  // Batched record reads (nvme_read.cc): plans, submits and verifies each op as its requests
  // complete. ReadOp is defined in nvme_internal.h.
  struct ReadOp;
  // `finished(op)` runs once for each op whose requests were submitted, right after FinishRead.
  void ReadRecords(IoContext& ctx, std::span<ReadOp> ops,
                   const std::function<void(ReadOp&)>& finished = nullptr);
  void FinishRead(IoContext& ctx, ReadOp& op);
  Status SettleRead(const ReadOp& op);
  void RebuildRegistrationLocked();
  void PrepareContext(IoContext& ctx);

  const NvmeOptions opts_;
  const uint32_t num_segments_;
  DropSink drop_sink_;
  std::unique_ptr<NvmeIndex> index_;
  std::vector<std::unique_ptr<Segment>> segs_;
  std::atomic<bool> direct_io_{false};
  UniqueFd dir_fd_;

  // Segment allocation. Writers hold alloc_mu_ only to bump the active segment's offset; a
  // rotation (seal, create or reclaim, header write) holds it throughout and sets rotating_.
  std::mutex alloc_mu_;
  std::condition_variable alloc_cv_;
  int active_ = -1;               // GUARDED_BY(alloc_mu_)
  std::deque<uint32_t> sealed_;   // GUARDED_BY(alloc_mu_), oldest generation first
  std::vector<uint32_t> free_;    // GUARDED_BY(alloc_mu_), files that hold nothing live
  std::vector<uint32_t> absent_;  // GUARDED_BY(alloc_mu_), ids without a file, largest first
  uint64_t next_generation_ = 1;  // GUARDED_BY(alloc_mu_)
  bool rotating_ = false;         // GUARDED_BY(alloc_mu_)
  bool disk_full_ = false;        // GUARDED_BY(alloc_mu_): stop creating files after ENOSPC
  // A write failed after its space was reserved: the hole would stop a replay, so the next
  // Flush syncs the index (making every entry past the hole durable) instead of relying on it.
  std::atomic<bool> index_sync_needed_{false};
  // Segment files created, and how many of them a finished directory sync covers: a Flush
  // syncs the directory while the second is behind (new files' names are not durable yet).
  std::atomic<uint64_t> dirs_created_{0};
  std::atomic<uint64_t> dirs_synced_{0};

  // I/O contexts (one FileIo each), borrowed per call.
  mutable std::mutex pool_mu_;
  std::vector<std::unique_ptr<IoContext>> idle_;  // GUARDED_BY(pool_mu_)
  std::vector<iovec> host_regions_;               // GUARDED_BY(pool_mu_)
  std::map<uint64_t, iovec> caller_regions_;      // GUARDED_BY(pool_mu_), by handle
  uint64_t next_region_ = 1;                      // GUARDED_BY(pool_mu_)
  std::vector<iovec> registered_;                 // GUARDED_BY(pool_mu_), sorted by address
  uint64_t registered_version_ = 0;               // GUARDED_BY(pool_mu_)
  std::atomic<bool> register_logged_{false};
  std::atomic<bool> registered_ok_{false};
  std::string io_engine_;

  std::vector<std::string> load_problems_;  // found at open (fsck reports them)

  struct Counters;
  std::unique_ptr<Counters> c_;
};

}  // namespace kvt
