#include "tiers/nvme/nvme_index.h"

#include <rocksdb/options.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/write_batch.h>
#include <sys/stat.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "base/log.h"

namespace kvt {
namespace {

constexpr size_t kKeyBytes = 24;
constexpr uint8_t kValueVersion = 1;
constexpr size_t kValueBytes = 72;

void PutBe64(uint64_t v, char* p) {
  for (int i = 7; i >= 0; --i) {
    p[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

uint64_t GetBe64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

template <typename T>
void PutLe(char*& p, T v) {
  std::memcpy(p, &v, sizeof(v));
  p += sizeof(v);
}

template <typename T>
T GetLe(const char*& p) {
  T v;
  std::memcpy(&v, p, sizeof(v));
  p += sizeof(v);
  return v;
}

// RocksDB's own info log (the LOG file in the index directory) asserts inside Debian's 7.8 build
// when its write fails on a full disk (sync_without_flush_called_), which aborts the host
// process. The index keeps no LOG file: warnings and errors go to kvtier's log instead (at info
// level, fatal ones at error level), and nothing here touches the disk, so a full disk cannot reach an assertion through logging.
class IndexLogger : public rocksdb::Logger {
 public:
  IndexLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::WARN_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    Logv(rocksdb::InfoLogLevel::WARN_LEVEL, format, ap);
  }
  void Logv(const rocksdb::InfoLogLevel level, const char* format, va_list ap) override {
    if (level < GetInfoLogLevel()) return;
    // RocksDB logs benign events as errors (a missing directory while it creates a new DB), and
    // real failures reach the caller as statuses: only its fatal messages are errors here.
    const LogLevel ours =
        level >= rocksdb::InfoLogLevel::FATAL_LEVEL ? LogLevel::kError : LogLevel::kInfo;
    if (!LogEnabled(ours)) return;
    char buf[1024];
    std::vsnprintf(buf, sizeof buf, format, ap);
    LogMessage(ours, std::string("nvme index (rocksdb): ") + buf);
  }
};

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  if (s.IsNoSpace()) return Status::NoSpace(what + ": " + s.ToString());
  if (s.IsCorruption()) return Status::Corruption(what + ": " + s.ToString());
  return Status::IoError(what + ": " + s.ToString());
}

// Shorter than the 8-byte namespace prefix, so no namespace's range (DropNamespace) holds one:
// a key shorter than 8 bytes sorts before or after every 8-byte range as a whole. Losing a mark
// would replay records a Remove or DropNamespace deleted.
constexpr size_t kMarkKeyBytes = 5;

std::string MarkKey(uint32_t segment) {
  std::string k(kMarkKeyBytes, 'M');
  for (int i = 0; i < 4; ++i) k[1 + i] = static_cast<char>((segment >> (8 * (3 - i))) & 0xff);
  return k;
}

bool IsMarkKey(const rocksdb::Slice& k) { return k.size() == kMarkKeyBytes && k[0] == 'M'; }

}  // namespace

std::string EncodeIndexKey(uint64_t ns, const Hash128& key) {
  std::string k(kKeyBytes, '\0');
  PutBe64(ns, k.data());
  PutBe64(key.lo, k.data() + 8);
  PutBe64(key.hi, k.data() + 16);
  return k;
}

bool DecodeIndexKey(const rocksdb::Slice& s, uint64_t* ns, Hash128* key) {
  if (s.size() != kKeyBytes) return false;
  *ns = GetBe64(s.data());
  key->lo = GetBe64(s.data() + 8);
  key->hi = GetBe64(s.data() + 16);
  return true;
}

std::string EncodeLocation(const NvmeLocation& l) {
  std::string v(kValueBytes, '\0');
  char* p = v.data();
  PutLe<uint8_t>(p, kValueVersion);
  PutLe<uint8_t>(p, static_cast<uint8_t>(l.codec));
  PutLe<uint8_t>(p, l.has_tokens ? 1 : 0);
  PutLe<uint8_t>(p, 0);
  PutLe<uint32_t>(p, l.segment);
  PutLe<uint64_t>(p, l.generation);
  PutLe<uint64_t>(p, l.offset);
  PutLe<uint32_t>(p, l.stored_bytes);
  PutLe<uint32_t>(p, l.payload_bytes);
  PutLe<uint64_t>(p, l.checksum);
  PutLe<uint64_t>(p, l.parent.lo);
  PutLe<uint64_t>(p, l.parent.hi);
  PutLe<uint64_t>(p, l.tokens_digest.lo);
  PutLe<uint64_t>(p, l.tokens_digest.hi);
  return v;
}

bool DecodeLocation(const rocksdb::Slice& s, NvmeLocation* l) {
  if (s.size() != kValueBytes) return false;
  const char* p = s.data();
  if (GetLe<uint8_t>(p) != kValueVersion) return false;
  uint8_t codec = GetLe<uint8_t>(p);
  if (codec > static_cast<uint8_t>(Codec::kZstd)) return false;
  l->codec = static_cast<Codec>(codec);
  l->has_tokens = GetLe<uint8_t>(p) != 0;
  GetLe<uint8_t>(p);
  l->segment = GetLe<uint32_t>(p);
  l->generation = GetLe<uint64_t>(p);
  l->offset = GetLe<uint64_t>(p);
  l->stored_bytes = GetLe<uint32_t>(p);
  l->payload_bytes = GetLe<uint32_t>(p);
  l->checksum = GetLe<uint64_t>(p);
  l->parent.lo = GetLe<uint64_t>(p);
  l->parent.hi = GetLe<uint64_t>(p);
  l->tokens_digest.lo = GetLe<uint64_t>(p);
  l->tokens_digest.hi = GetLe<uint64_t>(p);
  return true;
}

StatusOr<std::unique_ptr<NvmeIndex>> NvmeIndex::Open(const std::string& path, bool read_only,
                                                     rocksdb::Env* env) {
  rocksdb::Options o;
  if (env != nullptr) o.env = env;
  o.create_if_missing = !read_only;
  o.prefix_extractor.reset(rocksdb::NewFixedPrefixTransform(8));
  // Small and quiet: the index is ~100 bytes per block and every lookup is served from memory.
  o.write_buffer_size = 16 << 20;
  o.info_log = std::make_shared<IndexLogger>();
  o.max_background_jobs = 2;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      read_only ? rocksdb::DB::OpenForReadOnly(o, path, &raw) : rocksdb::DB::Open(o, path, &raw);
  if (!s.ok()) return FromRocks(s, "open index " + path);
  return std::unique_ptr<NvmeIndex>(
      new NvmeIndex(path, std::unique_ptr<rocksdb::DB>(raw), read_only));
}

NvmeIndex::~NvmeIndex() {
  if (db_ != nullptr && !read_only_) {
    rocksdb::Status ignored = db_->Close();  // flushes nothing unsynced away; WAL stays
    (void)ignored;
  }
}

Status NvmeIndex::Scan(const std::function<void(const NvmeEntry&, bool)>& fn) const {
  rocksdb::ReadOptions ro;
  ro.total_order_seek = true;  // every namespace, not one prefix
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (IsMarkKey(it->key())) continue;
    NvmeEntry e;
    bool ok = DecodeIndexKey(it->key(), &e.ns, &e.key) && DecodeLocation(it->value(), &e.loc);
    if (!ok) {
      // Undecodable: hand back what the key says so the caller can delete it.
      std::string k = it->key().ToString();
      k.resize(kKeyBytes, '\0');
      DecodeIndexKey(k, &e.ns, &e.key);
    }
    fn(e, ok);
  }
  return FromRocks(it->status(), "scan index " + path_);
}

void NvmeIndex::LoadIntoMemory(const NvmeEntry& e) {
  MapKey k{e.ns, e.key};
  Shard& sh = ShardOf(k);
  std::lock_guard<std::mutex> l(sh.mu);
  sh.map[k] = Slot{e.loc, false};
}

bool NvmeIndex::Find(uint64_t ns, const Hash128& key, NvmeLocation* loc, bool mark_hit) const {
  MapKey k{ns, key};
  Shard& sh = ShardOf(k);
  std::lock_guard<std::mutex> l(sh.mu);
  auto it = sh.map.find(k);
  if (it == sh.map.end()) return false;
  if (loc != nullptr) *loc = it->second.loc;
  if (mark_hit) it->second.hit = true;
  return true;
}

bool NvmeIndex::IsHitAt(uint64_t ns, const Hash128& key, const NvmeLocation& where,
                        bool* hit) const {
  MapKey k{ns, key};
  Shard& sh = ShardOf(k);
  std::lock_guard<std::mutex> l(sh.mu);
  auto it = sh.map.find(k);
  if (it == sh.map.end() || !it->second.loc.SamePlace(where)) return false;
  *hit = it->second.hit;
  return true;
}

rocksdb::Status NvmeIndex::Mutate(const std::function<rocksdb::Status()>& write) {
  std::shared_lock<std::shared_mutex> l(wal_mu_);
  rocksdb::Status s = write();
  if (!s.ok() && (s.IsNoSpace() || s.IsIOError())) {
    std::lock_guard<std::mutex> f(failure_mu_);
    wal_failure_ = s;
    wal_failed_.store(true);
  }
  return s;
}

rocksdb::Status NvmeIndex::ResumeAfterFailure() {
  if (!wal_failed_.load()) return rocksdb::Status::OK();
  rocksdb::Status s = db_->Resume();
  if (s.ok()) wal_failed_.store(false);
  return s;
}

rocksdb::Status NvmeIndex::MutateOrResume(const std::function<rocksdb::Status()>& write) {
  rocksdb::Status s = Mutate(write);
  if (s.ok() || !wal_failed_.load()) return s;
  // After a failed write RocksDB refuses every later write until it is resumed. From a full
  // disk it recovers by itself (it polls every 5 s for a memtable's worth of free space; Resume
  // answers Busy meanwhile); after other I/O errors only Resume brings it back: try it once.
  {
    std::unique_lock<std::shared_mutex> l(wal_mu_);
    if (!ResumeAfterFailure().ok()) return s;
  }
  return Mutate(write);
}

Status NvmeIndex::WriteDb(rocksdb::WriteBatch* b, const char* what) {
  if (read_only_) return Status::PermissionDenied(std::string(what) + ": index is read-only");
  return FromRocks(MutateOrResume([&] { return db_->Write(rocksdb::WriteOptions(), b); }),
                   std::string(what) + " " + path_);
}

bool NvmeIndex::GetMark(uint32_t segment, Mark* out) const {
  std::string v;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), MarkKey(segment), &v);
  if (!s.ok() || v.size() != 16) return false;
  out->segment = segment;
  std::memcpy(&out->generation, v.data(), 8);
  std::memcpy(&out->end, v.data() + 8, 8);
  return true;
}

Status NvmeIndex::Put(std::span<const NvmeEntry> entries, std::span<const Mark> marks) {
  rocksdb::WriteBatch b;
  for (const NvmeEntry& e : entries) {
    rocksdb::Status s = b.Put(EncodeIndexKey(e.ns, e.key), EncodeLocation(e.loc));
    if (!s.ok()) return FromRocks(s, "index put");
  }
  for (const Mark& m : marks) {
    char v[16];
    std::memcpy(v, &m.generation, 8);
    std::memcpy(v + 8, &m.end, 8);
    rocksdb::Status s = b.Put(MarkKey(m.segment), rocksdb::Slice(v, sizeof(v)));
    if (!s.ok()) return FromRocks(s, "index put");
  }
  KVT_RETURN_IF_ERROR(WriteDb(&b, "index put"));
  for (const NvmeEntry& e : entries) LoadIntoMemory(e);
  return Status::Ok();
}

Status NvmeIndex::PutIfAt(const NvmeEntry& e, const NvmeLocation& expected) {
  MapKey k{e.ns, e.key};
  Shard& sh = ShardOf(k);
  std::lock_guard<std::mutex> l(sh.mu);
  auto it = sh.map.find(k);
  if (it == sh.map.end() || !it->second.loc.SamePlace(expected)) {
    return Status::NotFound("index entry moved");
  }
  rocksdb::WriteBatch b;
  rocksdb::Status s = b.Put(EncodeIndexKey(e.ns, e.key), EncodeLocation(e.loc));
  if (!s.ok()) return FromRocks(s, "index put");
  KVT_RETURN_IF_ERROR(WriteDb(&b, "index put"));
  it->second = Slot{e.loc, false};
  return Status::Ok();
}

Status NvmeIndex::Erase(uint64_t ns, const Hash128& key) {
  MapKey k{ns, key};
  Shard& sh = ShardOf(k);
  std::lock_guard<std::mutex> l(sh.mu);
  auto it = sh.map.find(k);
  if (it == sh.map.end()) return Status::NotFound("no NVMe entry for the key");
  rocksdb::WriteBatch b;
  rocksdb::Status s = b.Delete(EncodeIndexKey(ns, key));
  if (!s.ok()) return FromRocks(s, "index delete");
  KVT_RETURN_IF_ERROR(WriteDb(&b, "index delete"));
  sh.map.erase(it);
  return Status::Ok();
}

StatusOr<uint64_t> NvmeIndex::EraseIfAt(std::span<const NvmeEntry> entries) {
  // Checked and erased from the map first, then deleted from RocksDB in one batch: a failed
  // RocksDB write leaves entries on disk that point at a generation being retired, which the
  // next open sweeps as stale. Never the reverse (a map entry without a durable twin is fine).
  rocksdb::WriteBatch b;
  uint64_t n = 0;
  for (const NvmeEntry& e : entries) {
    MapKey k{e.ns, e.key};
    Shard& sh = ShardOf(k);
    std::lock_guard<std::mutex> l(sh.mu);
    auto it = sh.map.find(k);
    if (it == sh.map.end() || !it->second.loc.SamePlace(e.loc)) continue;
    sh.map.erase(it);
    rocksdb::Status s = b.Delete(EncodeIndexKey(e.ns, e.key));
    (void)s;
    ++n;
  }
  if (n > 0) KVT_RETURN_IF_ERROR(WriteDb(&b, "index delete"));
  return n;
}

Status NvmeIndex::EraseFromDisk(std::span<const NvmeEntry> entries) {
  if (entries.empty()) return Status::Ok();
  rocksdb::WriteBatch b;
  for (const NvmeEntry& e : entries) {
    rocksdb::Status s = b.Delete(EncodeIndexKey(e.ns, e.key));
    (void)s;
  }
  return WriteDb(&b, "index delete");
}

StatusOr<uint64_t> NvmeIndex::EraseNamespace(uint64_t ns) {
  if (read_only_) return Status::PermissionDenied("drop namespace: index is read-only");
  std::string begin(8, '\0');
  PutBe64(ns, begin.data());
  // Past every 24-byte key of the namespace, also for ns = 2^64 - 1.
  std::string end = begin + std::string(17, '\xff');
  KVT_RETURN_IF_ERROR(FromRocks(MutateOrResume([&] {
                                  return db_->DeleteRange(rocksdb::WriteOptions(),
                                                          db_->DefaultColumnFamily(), begin, end);
                                }),
                                "index delete range " + path_));
  uint64_t n = 0;
  for (Shard& sh : shards_) {
    std::lock_guard<std::mutex> l(sh.mu);
    for (auto it = sh.map.begin(); it != sh.map.end();) {
      if (it->first.ns == ns) {
        it = sh.map.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
  }
  return n;
}

Status NvmeIndex::Sync() {
  if (read_only_) return Status::Ok();
  // SyncWAL on a WAL whose last append failed asserts in Debian's RocksDB build (an abort of the
  // host process): with writes held off, resume first, and sync only a healthy WAL.
  std::unique_lock<std::shared_mutex> l(wal_mu_);
  if (!ResumeAfterFailure().ok()) {
    // Report the write's failure (NoSpace on a full disk), not Resume's (often Busy).
    std::lock_guard<std::mutex> f(failure_mu_);
    return FromRocks(wal_failure_, "sync index WAL " + path_ + ": an earlier write failed");
  }
  return FromRocks(db_->SyncWAL(), "sync index WAL " + path_);
}

uint64_t NvmeIndex::size() const {
  uint64_t n = 0;
  for (const Shard& sh : shards_) {
    std::lock_guard<std::mutex> l(sh.mu);
    n += sh.map.size();
  }
  return n;
}

void NvmeIndex::ForEach(const std::function<bool(const NvmeEntry&)>& fn) const {
  std::vector<NvmeEntry> copy;
  for (const Shard& sh : shards_) {
    copy.clear();
    {
      std::lock_guard<std::mutex> l(sh.mu);
      copy.reserve(sh.map.size());
      for (const auto& [k, slot] : sh.map) copy.push_back(NvmeEntry{k.ns, k.key, slot.loc});
    }
    for (const NvmeEntry& e : copy) {
      if (!fn(e)) return;
    }
  }
}

uint64_t NvmeIndex::DiskBytes() const {
  std::error_code ec;
  uint64_t total = 0;
  for (const auto& f : std::filesystem::directory_iterator(path_, ec)) {
    struct stat st;
    if (::stat(f.path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      total += static_cast<uint64_t>(st.st_blocks) * 512;  // allocated, as du counts
    }
  }
  return total;
}

}  // namespace kvt
