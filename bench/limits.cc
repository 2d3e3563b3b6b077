// This machine's limits, measured in the same run as the engine: memcpy between block-sized
// buffers, and a minimal io_uring O_DIRECT loop over one preallocated file in the bench
// directory, at the same block size and blocks in flight as the engine paths. No engine code.
#include <fcntl.h>
#include <liburing.h>
#include <unistd.h>

#include <cstring>

#include "bench/bench.h"
#include "io/unique_fd.h"

namespace kvt::bench {
namespace {

class LimitFixture final : public Fixture {
 public:
  UniqueFd fd;
  uint64_t file_bytes = 0;
  AlignedBuffer bufs;  // threads x block, the I/O buffers
  AlignedBuffer dst;   // memcpy destination
  std::vector<uint64_t> seq, rnd;
};

// Keeps `qd` blocks in flight over `order` (block indices) until all completed.
StatusOr<Sample> UringLoop(int fd, bool write, const std::vector<uint64_t>& order, uint64_t block,
                           unsigned qd, uint8_t* bufs) {
  io_uring ring;
  int rc = io_uring_queue_init(qd, &ring, 0);
  if (rc < 0) return Status::FromErrno(-rc, "io_uring_queue_init");
  struct RingGuard {
    io_uring* r;
    ~RingGuard() { io_uring_queue_exit(r); }
  } guard{&ring};
  std::vector<unsigned> free_slots;
  for (unsigned s = 0; s < qd; ++s) free_slots.push_back(s);
  const uint64_t n = order.size();
  uint64_t next = 0, done = 0;
  const double t0 = NowSeconds();
  while (done < n) {
    while (!free_slots.empty() && next < n) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      if (sqe == nullptr) break;
      unsigned slot = free_slots.back();
      free_slots.pop_back();
      uint8_t* b = bufs + uint64_t{slot} * block;
      uint64_t off = order[next++] * block;
      if (write) {
        io_uring_prep_write(sqe, fd, b, block, off);
      } else {
        io_uring_prep_read(sqe, fd, b, block, off);
      }
      io_uring_sqe_set_data64(sqe, slot);
    }
    rc = io_uring_submit_and_wait(&ring, 1);
    if (rc < 0 && rc != -EINTR) return Status::FromErrno(-rc, "io_uring_submit_and_wait");
    io_uring_cqe* cqe;
    while (io_uring_peek_cqe(&ring, &cqe) == 0) {
      const int res = cqe->res;
      free_slots.push_back(static_cast<unsigned>(io_uring_cqe_get_data64(cqe)));
      io_uring_cqe_seen(&ring, cqe);
      if (res < 0) return Status::FromErrno(-res, write ? "raw O_DIRECT write" : "raw O_DIRECT read");
      // A preallocated file and 4 KiB-aligned blocks: a short transfer would be a bench bug.
      if (static_cast<uint64_t>(res) != block) {
        return Status::IoError("raw I/O moved " + std::to_string(res) + " of " +
                               std::to_string(block) + " bytes");
      }
      ++done;
    }
  }
  Sample s;
  s.seconds = NowSeconds() - t0;
  s.bytes = n * block;
  s.ops = n;
  return s;
}

}  // namespace

Status AddLimitTests(const Config& c, const Source& src, uint64_t block, const std::string& dir,
                     TestSet* set) {
  auto fx = std::make_unique<LimitFixture>();
  LimitFixture* f = fx.get();
  const uint64_t nblocks = std::max<uint64_t>(c.bytes_per_test / block, 1);
  f->file_bytes = nblocks * block;
  const std::string path = dir + "/raw.dat";
  f->fd = UniqueFd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0644));
  std::string io_note;
  if (!f->fd.valid() && errno == EINVAL) {
    // A file system without O_DIRECT (tmpfs): measure buffered I/O and say so, as the engine
    // falls back the same way.
    f->fd = UniqueFd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    io_note = " (O_DIRECT refused by the file system: buffered I/O)";
  }
  if (!f->fd.valid()) return Status::FromErrno(errno, "open " + path);
  // Preallocated like the engine's segments (fresh unallocated O_DIRECT writes are 3-5x slower
  // here), and written once, so reads hit written extents rather than unwritten ones that the
  // file system answers with zeros without touching the device.
  if (::posix_fallocate(f->fd.get(), 0, f->file_bytes) != 0) {
    return Status::FromErrno(errno, "fallocate " + path);
  }
  const unsigned qd = static_cast<unsigned>(c.threads);
  KVT_ASSIGN_OR_RETURN(f->bufs, AlignedBuffer::Allocate(uint64_t{qd} * block, false));
  for (unsigned s = 0; s < qd; ++s) std::memcpy(f->bufs.data() + s * block, src.Block(s, block), block);
  for (uint64_t i = 0; i < nblocks; ++i) f->seq.push_back(i);
  f->rnd = Permutation(nblocks, block);
  {
    auto fill = UringLoop(f->fd.get(), true, f->seq, block, qd, f->bufs.data());
    if (!fill.ok()) return fill.status().WithContext("filling " + path);
  }
  const uint64_t mem_blocks = std::max<uint64_t>(c.mem_bytes_per_test / block, 1);
  KVT_ASSIGN_OR_RETURN(f->dst, AlignedBuffer::Allocate(mem_blocks * block, false));
  std::memset(f->dst.data(), 0, f->dst.size());  // no first-touch page faults in round 1

  auto add = [&](std::string name, std::string note, std::function<StatusOr<Sample>()> run) {
    Test t;
    t.path = std::move(name);
    t.kind = Kind::kLimit;
    t.block_bytes = block;
    t.note = std::move(note);
    if (t.path != "memcpy") t.note += io_note;
    t.run = std::move(run);
    set->tests.push_back(std::move(t));
  };
  add("memcpy", "memcpy of block-sized buffers, source and destination streaming, one thread",
      [f, &src, block, mem_blocks] {
        const double t0 = NowSeconds();
        for (uint64_t i = 0; i < mem_blocks; ++i) {
          std::memcpy(f->dst.data() + i * block, src.Block(i, block), block);
        }
        Sample s;
        s.seconds = NowSeconds() - t0;
        s.bytes = mem_blocks * block;
        s.ops = mem_blocks;
        return StatusOr<Sample>(s);
      });
  add("raw_seq_write", "io_uring O_DIRECT sequential writes, QD = threads", [f, block, qd] {
    return UringLoop(f->fd.get(), true, f->seq, block, qd, f->bufs.data());
  });
  add("raw_seq_read", "io_uring O_DIRECT sequential reads, QD = threads", [f, block, qd] {
    return UringLoop(f->fd.get(), false, f->seq, block, qd, f->bufs.data());
  });
  add("raw_rand_read", "io_uring O_DIRECT reads in random block order, QD = threads",
      [f, block, qd] { return UringLoop(f->fd.get(), false, f->rnd, block, qd, f->bufs.data()); });
  // Durable: each of `threads` writers makes every block durable before its next one.
  const uint64_t durable_blocks = std::max<uint64_t>(nblocks / 4, 1);
  add("raw_durable_write",
      "O_DIRECT pwrite + fdatasync per block, `threads` writers (a quarter of the bytes)",
      [f, block, qd, durable_blocks] {
        const double t0 = NowSeconds();
        Status st = ParallelFor(static_cast<int>(qd), durable_blocks, [&](int t, uint64_t i) {
          ssize_t w = ::pwrite(f->fd.get(), f->bufs.data() + uint64_t(t) * block, block, i * block);
          if (w != static_cast<ssize_t>(block)) {
            return Status::FromErrno(w < 0 ? errno : EIO, "raw durable pwrite");
          }
          if (::fdatasync(f->fd.get()) != 0) return Status::FromErrno(errno, "raw fdatasync");
          return Status::Ok();
        });
        if (!st.ok()) return StatusOr<Sample>(st);
        Sample s;
        s.seconds = NowSeconds() - t0;
        s.bytes = durable_blocks * block;
        s.ops = durable_blocks;
        return StatusOr<Sample>(s);
      });
  set->fixtures.push_back(std::move(fx));
  return Status::Ok();
}

}  // namespace kvt::bench
