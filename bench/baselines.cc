// The designs users would pick instead of kvtier, implemented as those systems do them:
//
// One file per block: LMCache's local disk backend, SGLang's file storage and vLLM's file-system
// KV tier write each block to its own file (open, write, close) and read it back (open, read,
// close), buffered, through the page cache. Writes are timed until close() returns (what the
// caller waits for; the dirty pages are synced afterwards, untimed, so they do not slow the next
// test). The durable variant adds fsync before close and an fsync of the directory after it (a
// new file's name is not durable before that). Before every read round the files' pages
// are dropped with posix_fadvise(DONTNEED) (dropping all caches needs root and is global), so
// reads come from the device.
//
// RocksDB with blob files: each block a value under a 16-byte key (enable_blob_files, values of
// 4 KiB and more in blob files, direct reads), default write options (WAL on, not synced); the
// durable variant sets sync = true. Writes go to a fresh database each round (untimed), so blob
// garbage never accumulates.
#include <fcntl.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "bench/bench.h"
#include "io/unique_fd.h"

namespace kvt::bench {
namespace {

std::string BlockFile(const std::string& dir, uint64_t i) {
  char name[32];
  std::snprintf(name, sizeof name, "/%016llx.kv", static_cast<unsigned long long>(i * 0x9E3779B97F4A7C15ull));
  return dir + name;
}

Status WriteFile(const std::string& path, const uint8_t* data, uint64_t n, bool durable) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status::FromErrno(errno, "open " + path);
  uint64_t done = 0;
  while (done < n) {
    ssize_t w = ::write(fd.get(), data + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Status::FromErrno(w < 0 ? errno : EIO, "write " + path);
    done += static_cast<uint64_t>(w);
  }
  if (durable && ::fsync(fd.get()) != 0) return Status::FromErrno(errno, "fsync " + path);
  return Status::Ok();  // closed by UniqueFd
}

// A new file is durable only once its directory entry is: fsync of the directory as well (the
// POSIX recipe; without it a crash can lose a file whose own fsync returned).
Status FsyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open " + dir);
  if (::fsync(fd.get()) != 0) return Status::FromErrno(errno, "fsync " + dir);
  return Status::Ok();
}

Status ReadFile(const std::string& path, uint8_t* dst, uint64_t n) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open " + path);
  uint64_t done = 0;
  while (done < n) {
    ssize_t r = ::read(fd.get(), dst + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return Status::FromErrno(r < 0 ? errno : EIO, "read " + path);
    done += static_cast<uint64_t>(r);
  }
  return Status::Ok();
}

Status DropCached(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open " + path);
  int rc = ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED);
  if (rc != 0) return Status::FromErrno(rc, "posix_fadvise DONTNEED " + path);
  return Status::Ok();
}

Status SyncDir(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open " + dir);
  if (::syncfs(fd.get()) != 0) return Status::FromErrno(errno, "syncfs " + dir);
  return Status::Ok();
}

Status FromRocks(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::Ok();
  return Status::IoError("RocksDB " + what + ": " + s.ToString());
}

rocksdb::Options RocksOptions() {
  rocksdb::Options o;
  o.create_if_missing = true;
  o.enable_blob_files = true;
  o.min_blob_size = 4096;  // every block is a blob; the LSM tree holds only keys and pointers
  o.use_direct_reads = true;
  o.use_direct_io_for_flush_and_compaction = true;
  o.enable_blob_garbage_collection = true;
  return o;
}

std::string RocksKey(uint64_t i, uint64_t tag) {
  std::string k(16, '\0');
  std::memcpy(k.data(), &tag, 8);
  std::memcpy(k.data() + 8, &i, 8);
  return k;
}

class BaselineFixture final : public Fixture {
 public:
  std::string files_w, files_r, rocks_w, rocks_r;
  std::unique_ptr<rocksdb::DB> db_w, db_r;
  BlockBuffers dst;  // where reads land: block i of a round at dst[i]
  std::vector<uint64_t> order;
  uint64_t round = 0;

  Status ReopenWriteDb() {
    db_w.reset();
    KVT_RETURN_IF_ERROR(RemoveTree(rocks_w));
    rocksdb::DB* raw = nullptr;
    KVT_RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(RocksOptions(), rocks_w, &raw), "open " + rocks_w));
    db_w.reset(raw);
    return Status::Ok();
  }
};

Sample Done(double t0, uint64_t n, uint64_t block) {
  Sample s;
  s.seconds = NowSeconds() - t0;
  s.bytes = n * block;
  s.ops = n;
  return s;
}

}  // namespace

Status AddBaselineTests(const Config& c, const Source& src, uint64_t block,
                        const std::string& dir, TestSet* set) {
  auto fx = std::make_unique<BaselineFixture>();
  BaselineFixture* f = fx.get();
  const uint64_t nblocks = std::max<uint64_t>(c.bytes_per_test / block, 1);
  const uint64_t durable_blocks = std::max<uint64_t>(nblocks / 4, 1);
  const int threads = c.threads;
  f->files_w = dir + "/files-w";
  f->files_r = dir + "/files-r";
  f->rocks_w = dir + "/rocks-w";
  f->rocks_r = dir + "/rocks-r";
  KVT_RETURN_IF_ERROR(MakeDir(f->files_w));
  KVT_RETURN_IF_ERROR(MakeDir(f->files_r));
  KVT_ASSIGN_OR_RETURN(f->dst, MakeBlockBuffers(nblocks, block));
  f->order = Permutation(nblocks, block + 1);  // the same order as the engine's reads

  // Read sets: written once, synced, pages dropped before each round.
  KVT_RETURN_IF_ERROR(ParallelFor(threads, nblocks, [&](int, uint64_t i) {
    return WriteFile(BlockFile(f->files_r, i), src.Block(i, block), block, false);
  }));
  KVT_RETURN_IF_ERROR(SyncDir(f->files_r));
  {
    rocksdb::DB* raw = nullptr;
    KVT_RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(RocksOptions(), f->rocks_r, &raw), "open " + f->rocks_r));
    f->db_r.reset(raw);
    KVT_RETURN_IF_ERROR(ParallelFor(threads, nblocks, [&](int, uint64_t i) {
      rocksdb::Slice v(reinterpret_cast<const char*>(src.Block(i, block)), block);
      return FromRocks(f->db_r->Put(rocksdb::WriteOptions(), RocksKey(i, 0), v), "put");
    }));
    KVT_RETURN_IF_ERROR(FromRocks(f->db_r->Flush(rocksdb::FlushOptions()), "flush"));
  }
  KVT_RETURN_IF_ERROR(f->ReopenWriteDb());

  auto add = [&](std::string name, std::string note, std::function<Status()> prepare,
                 std::function<StatusOr<Sample>()> run) {
    Test t;
    t.path = std::move(name);
    t.kind = Kind::kBaseline;
    t.block_bytes = block;
    t.note = std::move(note);
    t.prepare = std::move(prepare);
    t.run = std::move(run);
    set->tests.push_back(std::move(t));
  };
  auto file_write = [f, &src, block, threads](uint64_t n, bool durable) -> StatusOr<Sample> {
    const double t0 = NowSeconds();
    KVT_RETURN_IF_ERROR(ParallelFor(threads, n, [&](int, uint64_t i) {
      KVT_RETURN_IF_ERROR(WriteFile(BlockFile(f->files_w, i), src.Block(i, block), block, durable));
      return durable ? FsyncDir(f->files_w) : Status::Ok();
    }));
    Sample s = Done(t0, n, block);
    KVT_RETURN_IF_ERROR(SyncDir(f->files_w));  // untimed: keep write-back out of the next test
    return s;
  };
  auto clear_files = [f] {
    KVT_RETURN_IF_ERROR(RemoveTree(f->files_w));
    KVT_RETURN_IF_ERROR(MakeDir(f->files_w));
    return SyncDir(f->files_w);
  };
  add("file_per_block_write", "open, write, close per block (buffered), `threads` writers",
      clear_files, [file_write, nblocks] { return file_write(nblocks, false); });
  add("file_per_block_write_durable",
      "open, write, fsync, close, fsync of the directory per block, `threads` writers",
      clear_files, [file_write, durable_blocks] { return file_write(durable_blocks, true); });
  add("file_per_block_read", "open, read, close per block (buffered, pages dropped first)",
      [f, nblocks] {
        for (uint64_t i = 0; i < nblocks; ++i) KVT_RETURN_IF_ERROR(DropCached(BlockFile(f->files_r, i)));
        return Status::Ok();
      },
      [f, block, nblocks, threads]() -> StatusOr<Sample> {
        const double t0 = NowSeconds();
        KVT_RETURN_IF_ERROR(ParallelFor(threads, nblocks, [&](int, uint64_t i) {
          return ReadFile(BlockFile(f->files_r, f->order[i]), f->dst[i], block);
        }));
        return Done(t0, nblocks, block);
      });

  auto rocks_write = [f, &src, block, threads](uint64_t n, bool durable) -> StatusOr<Sample> {
    rocksdb::WriteOptions wo;
    wo.sync = durable;
    const uint64_t tag = ++f->round;
    const double t0 = NowSeconds();
    KVT_RETURN_IF_ERROR(ParallelFor(threads, n, [&](int, uint64_t i) {
      rocksdb::Slice v(reinterpret_cast<const char*>(src.Block(i, block)), block);
      return FromRocks(f->db_w->Put(wo, RocksKey(i, tag), v), "put");
    }));
    Sample s = Done(t0, n, block);
    return s;
  };
  auto fresh_db = [f] { return f->ReopenWriteDb(); };
  add("rocksdb_blob_write", "DB::Put per block (WAL, not synced), blob files, `threads` writers",
      fresh_db, [rocks_write, nblocks] { return rocks_write(nblocks, false); });
  add("rocksdb_blob_write_durable", "DB::Put with sync = true per block, `threads` writers",
      fresh_db, [rocks_write, durable_blocks] { return rocks_write(durable_blocks, true); });
  add("rocksdb_blob_read", "DB::Get per block (blob files, direct reads), `threads` readers",
      nullptr, [f, block, nblocks, threads]() -> StatusOr<Sample> {
        const double t0 = NowSeconds();
        KVT_RETURN_IF_ERROR(ParallelFor(threads, nblocks, [&](int, uint64_t i) {
          rocksdb::PinnableSlice v;
          KVT_RETURN_IF_ERROR(FromRocks(
              f->db_r->Get(rocksdb::ReadOptions(), f->db_r->DefaultColumnFamily(),
                           RocksKey(f->order[i], 0), &v),
              "get"));
          if (v.size() != block) return Status::Internal("RocksDB returned a value of the wrong size");
          // The value is in RocksDB's buffer; copying it out is what a caller must do.
          std::memcpy(f->dst[i], v.data(), block);
          return Status::Ok();
        }));
        return Done(t0, nblocks, block);
      });
  set->fixtures.push_back(std::move(fx));
  return Status::Ok();
}

}  // namespace kvt::bench
