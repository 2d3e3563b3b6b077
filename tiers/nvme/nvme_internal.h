// Private parts of NvmeTier shared by its .cc files (nvme_tier.cc, nvme_segments.cc,
// nvme_fsck.cc). Not for use outside the NVMe tier.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "base/counter.h"
#include "io/aligned_buffer.h"
#include "io/file_io.h"
#include "tiers/nvme/nvme_index.h"
#include "tiers/nvme/nvme_tier.h"

namespace kvt {

// One borrowed I/O context: a FileIo (ring) plus aligned scratch. Used by one thread at a time.
struct IoContext {
  std::unique_ptr<FileIo> io;
  uint64_t registered_version = 0;
  std::vector<iovec> regs;  // as registered with `io`, sorted by address; empty: unregistered
  AlignedBuffer headers;    // 4 KiB per record header of a batch
  AlignedBuffer bounce;     // payload staging: compression, unaligned or short buffers
  std::vector<IoRequest> reqs;

  // Scratch of at least n header blocks / bytes; nullptr when memory is exhausted.
  uint8_t* Headers(size_t n) { return Grow(headers, n * 4096); }
  uint8_t* Bounce(size_t bytes) { return Grow(bounce, bytes); }

 private:
  static uint8_t* Grow(AlignedBuffer& b, size_t bytes) {
    if (b.size() < bytes) {
      // At least a huge page: such a buffer is on transparent huge pages (AlignedBuffer), and an
      // O_DIRECT request into 4 KiB pages costs several times one into a huge page on the
      // virtual machines measured (docs/bench_results.md, "huge pages").
      size_t want = std::max({bytes, b.size() * 2, AlignedBuffer::kHugePage});
      auto nb = AlignedBuffer::Allocate(want, false);
      if (!nb.ok()) return nullptr;
      b = std::move(nb).value();
    }
    return b.data();
  }
};

struct NvmeTier::Segment {
  UniqueFd fd;                          // set once when the file is opened or created
  std::atomic<int> fd_raw{-1};          // fd.get(), readable without alloc_mu_
  std::atomic<uint64_t> generation{0};  // 0: no valid header (never written, or torn)
  // Writes completed in this file, and how many of them a finished fdatasync covers (Flush).
  std::atomic<uint64_t> writes_done{0};
  std::atomic<uint64_t> writes_synced{0};
  // GUARDED_BY(alloc_mu_):
  NvmeSegmentInfo::State state = NvmeSegmentInfo::State::kAbsent;
  uint64_t write_offset = 0;
  uint32_t inflight = 0;  // reservations whose write + index put has not finished
  // Their offsets: the replay mark of an index put stops below the lowest one that is not in
  // the put (its record may be torn or unindexed), and Flush waits for those below its start.
  std::set<uint64_t> pending;
  struct Ref {
    uint64_t ns;
    Hash128 key;
    uint64_t offset;
  };
  std::vector<Ref> records;  // written under the current generation, for reclaim
  std::string header_error;  // set at open when the header did not verify
};

struct NvmeTier::Counters {
  std::atomic<uint64_t> writes{0}, write_failures{0}, reads{0}, hits{0}, misses{0}, lookups{0};
  std::atomic<uint64_t> bytes_in{0}, bytes_out{0}, bytes_written{0}, bytes_read{0};
  std::atomic<uint64_t> checksum_failures{0}, io_errors{0}, no_space{0};
  std::atomic<uint64_t> segments_reclaimed{0}, blocks_evicted{0}, stale_swept{0};
  std::atomic<uint64_t> reinsertions{0}, removes{0}, namespaces_dropped{0}, unaligned_copies{0};
  std::atomic<uint64_t> register_fallbacks{0}, compress_in{0}, compress_out{0};
  std::atomic<uint64_t> segments_created{0};
  std::atomic<uint64_t> flushes{0}, flush_syncs{0}, flush_waits{0}, index_syncs{0};
  std::atomic<uint64_t> records_replayed{0}, replay_bytes_read{0};
};

// One record read of a batch (NvmeTier::ReadRecords).
struct NvmeTier::ReadOp {
  // --- in ---
  NvmeEntry e;
  uint8_t* dst = nullptr;
  size_t dst_bytes = 0;
  // --- plan ---
  int fd = -1;
  uint64_t gen_before = 0;  // segment generation before the read: a change means reclaimed
  size_t hdr_off = 0;       // into ctx.headers
  size_t stage_off = 0;     // into ctx.bounce
  size_t direct_len = 0;    // payload bytes read straight into dst
  size_t stage_len = 0;     // read into the stage: the tail block, or the whole payload
  bool bounce = false;      // whole payload through the stage (unaligned dst, or compressed)
  size_t first_req = 0;
  uint32_t nreq = 0;
  uint32_t pending = 0;  // requests not finished yet
  size_t item = 0;       // ReadBatch: the item it serves
  bool settled = false;  // ReadBatch: its item's status is final
  // --- out ---
  // Until verified, an op is a failure: only FinishRead makes it OK.
  Verdict verdict = Verdict::kIoError;
  Status status = Status::Internal("NVMe read did not complete");
  BlockMeta meta;
};

// Borrows an IoContext from the tier's pool for the scope of one call.
class NvmeTier::IoLease {
 public:
  explicit IoLease(NvmeTier* t);
  ~IoLease();
  IoLease(const IoLease&) = delete;
  IoLease& operator=(const IoLease&) = delete;
  IoContext& operator*() { return *ctx_; }
  IoContext* operator->() { return ctx_.get(); }

 private:
  NvmeTier* t_;
  std::unique_ptr<IoContext> ctx_;
};

inline bool IsAligned(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 4095) == 0; }

}  // namespace kvt
