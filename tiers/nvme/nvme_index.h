// NvmeIndex: where each block of the NVMe tier lives. RocksDB holds the durable copy; an
// in-memory hash map (sharded, loaded at open) answers every lookup, because the store asks
// millions of times per second and RocksDB point reads top out near half a million.
//
// RocksDB key: namespace id (8 bytes, big-endian, the prefix extractor, so a namespace is one
// contiguous range) + block key (16 bytes: lo then hi, big-endian). Value: EncodeLocation().
// Replay marks (see Mark) are 5-byte keys: 'M' + the segment id (big-endian); Scan skips them.
// Being shorter than a namespace prefix, they lie outside every namespace's key range.
//
// Mutations write RocksDB first (WAL, not synced: Sync() does that), then the map, so the map
// never holds an entry that RocksDB refused. Two threads mutating the same key at once may leave
// RocksDB and the map with different (both valid, verified-on-read) entries; the map wins until a
// restart.
//
// Thread safety: thread-safe.
#pragma once

#include <rocksdb/db.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "tiers/nvme/codec.h"

namespace kvt {

struct NvmeLocation {
  uint32_t segment = 0;
  uint64_t generation = 0;
  uint64_t offset = 0;  // of the record header in the segment file
  uint32_t stored_bytes = 0;
  uint32_t payload_bytes = 0;
  uint64_t checksum = 0;  // XXH3-64 of the logical payload
  Codec codec = Codec::kNone;
  bool has_tokens = false;
  Hash128 parent;
  Hash128 tokens_digest;

  bool SamePlace(const NvmeLocation& o) const {
    return segment == o.segment && generation == o.generation && offset == o.offset;
  }
};

struct NvmeEntry {
  uint64_t ns = 0;
  Hash128 key;
  NvmeLocation loc;
};

std::string EncodeIndexKey(uint64_t ns, const Hash128& key);
bool DecodeIndexKey(const rocksdb::Slice& s, uint64_t* ns, Hash128* key);
std::string EncodeLocation(const NvmeLocation& loc);
bool DecodeLocation(const rocksdb::Slice& s, NvmeLocation* loc);

class NvmeIndex {
 public:
  // Opens (creating unless read_only) the RocksDB at `path`.
  // `env`: RocksDB's Env (null: the default); tests pass one that injects errors.
  static StatusOr<std::unique_ptr<NvmeIndex>> Open(const std::string& path, bool read_only,
                                                   rocksdb::Env* env = nullptr);
  ~NvmeIndex();

  // Calls `fn` for every persisted entry, in key order; for loading at open. Entries that do
  // not decode are reported with ok = false.
  Status Scan(const std::function<void(const NvmeEntry& e, bool ok)>& fn) const;
  // Adds to the map only (entries already persisted, at load).
  void LoadIntoMemory(const NvmeEntry& e);

  // The entry of (ns, key). With mark_hit, remembers that it was read (for reinsertion).
  bool Find(uint64_t ns, const Hash128& key, NvmeLocation* loc, bool mark_hit = false) const;
  // Whether the entry is still at `where` and was read since it was put.
  bool IsHitAt(uint64_t ns, const Hash128& key, const NvmeLocation& where, bool* hit) const;

  // A segment's replay mark: every record of `generation` below `end` is indexed (or was
  // removed). Stored in the same RocksDB write as the entries it covers, so a crash keeps both or
  // neither; at open, records past the mark are verified and indexed (NvmeTier::LoadIndex).
  struct Mark {
    uint32_t segment = 0;
    uint64_t generation = 0;
    uint64_t end = 0;
  };
  // Puts the entries and the marks in one RocksDB write (not synced).
  Status Put(std::span<const NvmeEntry> entries, std::span<const Mark> marks = {});
  // The stored mark of `segment`; false when there is none.
  bool GetMark(uint32_t segment, Mark* out) const;
  // Puts `e` only if the key's entry is still at `expected` (reinsertion moves a block).
  Status PutIfAt(const NvmeEntry& e, const NvmeLocation& expected);
  // Deletes the entry if present. NotFound when absent.
  Status Erase(uint64_t ns, const Hash128& key);
  // Deletes each entry that is still at its given location; returns how many it deleted.
  StatusOr<uint64_t> EraseIfAt(std::span<const NvmeEntry> entries);
  // Deletes from RocksDB only (entries never loaded into the map: stale at open).
  Status EraseFromDisk(std::span<const NvmeEntry> entries);
  // Deletes the namespace's range in RocksDB and its entries in the map; returns how many.
  StatusOr<uint64_t> EraseNamespace(uint64_t ns);

  // Syncs the RocksDB WAL: every mutation returned so far is durable.
  Status Sync();

  uint64_t size() const;
  // A snapshot of every entry (copied shard by shard). `fn` returns false to stop.
  void ForEach(const std::function<bool(const NvmeEntry&)>& fn) const;
  // Bytes of RocksDB files on disk.
  uint64_t DiskBytes() const;

 private:
  struct MapKey {
    uint64_t ns;
    Hash128 key;
    bool operator==(const MapKey&) const = default;
  };
  struct MapKeyHash {
    size_t operator()(const MapKey& k) const { return k.key.lo ^ (k.ns * 0x9e3779b97f4a7c15ull); }
  };
  struct Slot {
    NvmeLocation loc;
    bool hit = false;
  };
  static constexpr size_t kShards = 64;
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<MapKey, Slot, MapKeyHash> map;  // GUARDED_BY(mu)
  };

  NvmeIndex(std::string path, std::unique_ptr<rocksdb::DB> db, bool read_only)
      : path_(std::move(path)), db_(std::move(db)), read_only_(read_only) {}
  Shard& ShardOf(const MapKey& k) const { return shards_[MapKeyHash()(k) % kShards]; }
  Status WriteDb(rocksdb::WriteBatch* b, const char* what);
  // Every RocksDB mutation runs under wal_mu_ shared and marks wal_failed_ when it fails; Sync
  // and Resume take it exclusively (see Sync()). MutateOrResume resumes once after a failure.
  rocksdb::Status Mutate(const std::function<rocksdb::Status()>& write);
  rocksdb::Status MutateOrResume(const std::function<rocksdb::Status()>& write);
  rocksdb::Status ResumeAfterFailure();  // REQUIRES: wal_mu_ held exclusively

  std::string path_;
  std::unique_ptr<rocksdb::DB> db_;
  bool read_only_;
  std::shared_mutex wal_mu_;
  std::atomic<bool> wal_failed_{false};  // a mutation failed since the last resume
  std::mutex failure_mu_;
  rocksdb::Status wal_failure_;  // GUARDED_BY(failure_mu_): the last failed mutation's status
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace kvt
