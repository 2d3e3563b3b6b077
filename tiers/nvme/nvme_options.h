// Options and counters of the NVMe tier (NvmeTier).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/status.h"
#include "io/file_io.h"
#include "tiers/nvme/codec.h"

namespace rocksdb {
class Env;
}

namespace kvt {

struct NvmeOptions {
  std::string dir;            // created when missing; holds FORMAT, index/ and seg-*.kvs
  uint64_t budget_bytes = 0;  // hard cap on segment files (see NvmeStats::index_bytes)
  // Unit of allocation and reclamation. The budget holds budget_bytes / segment_bytes segments
  // (at least 2: one being written while the oldest is reclaimed); a remainder is left unused.
  uint64_t segment_bytes = 64ull << 20;
  unsigned io_depth = 64;  // io_uring queue depth per I/O thread
  Codec codec = Codec::kNone;
  int zstd_level = 1;
  // On reclaim, rewrite blocks that were read since they were written instead of dropping them.
  bool reinsertion = false;
  bool use_direct_io = true;  // O_DIRECT; falls back to buffered (logged, in stats) when refused
  // Open for inspection only: RocksDB read-only (works beside a live writer), no writes, no
  // sweeping or repair at open. Write/Remove/DropNamespace return PermissionDenied.
  bool read_only = false;
  // Creates the FileIo of one I/O thread. Empty: io_uring with pread/pwrite fallback. Tests
  // inject faults here (FaultInjectionFileIo).
  std::function<std::unique_ptr<FileIo>()> io_factory;
  // Test only: the RocksDB Env of the index (null: RocksDB's default), so that tests can inject
  // errors into its WAL and files. Not owned; must outlive the tier.
  rocksdb::Env* index_env = nullptr;

  // Checks every field; the message names the bad one.
  Status Validate() const;
  uint32_t num_segments() const {
    return segment_bytes == 0 ? 0 : static_cast<uint32_t>(budget_bytes / segment_bytes);
  }
};

struct NvmeStats {
  uint64_t writes = 0;  // blocks written (reinsertions excluded)
  uint64_t write_failures = 0;
  uint64_t reads = 0;   // Read() calls
  uint64_t hits = 0;    // Read() calls that returned verified bytes
  uint64_t misses = 0;  // Read() calls answered NotFound (absent, stale or corrupt)
  uint64_t lookups = 0;
  uint64_t bytes_in = 0;           // logical payload bytes accepted by Write
  uint64_t bytes_out = 0;          // logical payload bytes returned by Read
  uint64_t bytes_written = 0;      // device bytes written (headers, padding, reinsertions included)
  uint64_t bytes_read = 0;         // device bytes read
  uint64_t checksum_failures = 0;  // corrupt records detected (entry dropped, served as a miss)
  uint64_t io_errors = 0;
  uint64_t no_space = 0;  // ENOSPC seen (writes answered NoSpace, or a segment not created)
  uint64_t segments_reclaimed = 0;
  uint64_t blocks_evicted = 0;  // live entries dropped by reclaim
  uint64_t stale_swept = 0;     // entries found pointing at an old generation and deleted
  uint64_t reinsertions = 0;
  uint64_t removes = 0;
  uint64_t namespaces_dropped = 0;
  uint64_t unaligned_copies = 0;  // payloads bounced through an aligned buffer
  uint64_t flushes = 0;       // Flush() calls
  uint64_t flush_syncs = 0;   // segment fdatasyncs they ran (segments already covered are skipped)
  uint64_t entries = 0;
  uint64_t segments_total = 0;    // in the budget
  uint64_t segments_created = 0;  // files that exist
  uint64_t bytes_used = 0;        // segment files (fallocate'd, as du counts them)
  uint64_t budget_bytes = 0;
  uint64_t index_bytes = 0;  // RocksDB files on disk (not part of the budget)
  bool registered_buffers = false;
  uint64_t register_fallbacks = 0;  // registrations the kernel refused
  bool direct_io = false;
  const char* io_engine = "";
  uint64_t compress_in = 0;        // logical bytes of zstd-coded blocks
  uint64_t compress_out = 0;       // their stored bytes (raw when compression did not pay)
  double compression_ratio = 1.0;  // compress_in / compress_out
};

}  // namespace kvt
