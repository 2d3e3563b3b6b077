// This machine's limits, measured in the same run as the engine: memcpy between block-sized
// buffers, and a minimal io_uring O_DIRECT loop over one preallocated file in the bench
// directory, at the same block size, each at its best queue depth (1..32). No engine code.
// The loop moves the bytes the engine rows move: writes from the shared source, reads into a
// destination the size of the round (BlockBuffers), not into a QD's worth of cache-resident
// buffers; the `_cached` rows keep the latter, for reference.
#include <fcntl.h>
#include <liburing.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>

#include "bench/bench.h"
#include "io/unique_fd.h"

namespace kvt::bench {
namespace {

class LimitFixture final : public Fixture {
 public:
  UniqueFd fd;
  uint64_t file_bytes = 0;
  AlignedBuffer bufs;  // kMaxQd x block: the `_cached` rows' I/O buffers
  BlockBuffers rdst;   // reads: the n-th block of a round at rdst[n]
  AlignedBuffer dst;   // memcpy destination
  std::vector<uint64_t> seq, rnd;
};

// Where the n-th I/O of a loop reads into or writes from; `slot` is its place among the qd in
// flight.
using LoopBuffer = std::function<uint8_t*(uint64_t n, unsigned slot)>;

// Keeps `qd` blocks in flight over `order` (block indices) until all completed.
StatusOr<Sample> UringLoop(int fd, bool write, const std::vector<uint64_t>& order, uint64_t block,
                           unsigned qd, const LoopBuffer& buf) {
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
      uint8_t* b = buf(next, slot);
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

constexpr unsigned kMaxQd = 32;

// Runs `loop(qd)` once at each queue depth 1, 2, 4 ... 32 (untimed calibration, on a slice of the
// test's blocks) and returns the fastest depth, with "qd:GB/s" of each for the note.
template <typename Loop>
StatusOr<unsigned> BestDepth(const Loop& loop, std::string* sweep) {
  unsigned best = 1;
  double best_gbps = -1;
  for (unsigned qd = 1; qd <= kMaxQd; qd *= 2) {
    KVT_ASSIGN_OR_RETURN(Sample s, loop(qd));
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%s%u:%.2f", sweep->empty() ? "" : " ", qd, s.Gbps());
    *sweep += buf;
    if (s.Gbps() > best_gbps) {
      best_gbps = s.Gbps();
      best = qd;
    }
  }
  return best;
}

// Each of `writers` threads makes its block durable (O_DIRECT pwrite + fdatasync) before its next.
StatusOr<Sample> DurableLoop(int fd, uint64_t nblocks, uint64_t block, unsigned writers,
                             const LoopBuffer& buf) {
  const double t0 = NowSeconds();
  Status st = ParallelFor(static_cast<int>(writers), nblocks, [&](int t, uint64_t i) {
    ssize_t w = ::pwrite(fd, buf(i, static_cast<unsigned>(t)), block, i * block);
    if (w != static_cast<ssize_t>(block)) {
      return Status::FromErrno(w < 0 ? errno : EIO, "raw durable pwrite");
    }
    if (::fdatasync(fd) != 0) return Status::FromErrno(errno, "raw fdatasync");
    return Status::Ok();
  });
  if (!st.ok()) return st;
  Sample s;
  s.seconds = NowSeconds() - t0;
  s.bytes = nblocks * block;
  s.ops = nblocks;
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
  const unsigned qd = std::max(static_cast<unsigned>(c.threads), kMaxQd);
  KVT_ASSIGN_OR_RETURN(f->bufs, AlignedBuffer::Allocate(uint64_t{qd} * block, false));
  for (unsigned s = 0; s < qd; ++s) std::memcpy(f->bufs.data() + s * block, src.Block(s, block), block);
  KVT_ASSIGN_OR_RETURN(f->rdst, MakeBlockBuffers(nblocks, block));
  for (uint64_t i = 0; i < nblocks; ++i) f->seq.push_back(i);
  f->rnd = Permutation(nblocks, block);
  // What the loops move: the engine's bytes (see the top of this file), or the cached buffers.
  const LoopBuffer from_source = [&src, block](uint64_t n, unsigned) {
    return const_cast<uint8_t*>(src.Block(n, block));
  };
  const LoopBuffer into_dst = [f](uint64_t n, unsigned) { return f->rdst[n]; };
  const LoopBuffer cached = [f, block](uint64_t, unsigned slot) {
    return f->bufs.data() + uint64_t{slot} * block;
  };
  {
    auto fill = UringLoop(f->fd.get(), true, f->seq, block, qd, from_source);
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
  // Each raw loop runs at its best queue depth: swept 1..32 over the same blocks before the
  // rounds (one untimed pass per depth), the winner (and every depth's GB/s) named in the note.
  const std::vector<uint64_t>& seq_part = f->seq;
  const std::vector<uint64_t>& rnd_part = f->rnd;
  auto depth_for = [&](bool write, const std::vector<uint64_t>& part, unsigned* out,
                       std::string* sweep) -> Status {
    KVT_ASSIGN_OR_RETURN(*out, BestDepth(
                                   [&](unsigned d) {
                                     return UringLoop(f->fd.get(), write, part, block, d,
                                                      write ? from_source : into_dst);
                                   },
                                   sweep));
    return Status::Ok();
  };
  unsigned qd_w = 0, qd_sr = 0, qd_rr = 0, qd_d = 0;
  std::string sw_w, sw_sr, sw_rr, sw_d;
  KVT_RETURN_IF_ERROR(depth_for(true, seq_part, &qd_w, &sw_w));
  KVT_RETURN_IF_ERROR(depth_for(false, seq_part, &qd_sr, &sw_sr));
  KVT_RETURN_IF_ERROR(depth_for(false, rnd_part, &qd_rr, &sw_rr));
  const uint64_t durable_blocks = std::max<uint64_t>(nblocks / 4, 1);
  KVT_ASSIGN_OR_RETURN(qd_d, BestDepth(
                                 [&](unsigned w) {
                                   return DurableLoop(f->fd.get(), durable_blocks, block, w,
                                                      from_source);
                                 },
                                 &sw_d));
  auto depth_note = [](unsigned d, const std::string& sweep) {
    return ", QD " + std::to_string(d) + " (best of 1..32, GB/s by QD: " + sweep + ")";
  };
  add("raw_seq_write",
      "io_uring O_DIRECT sequential writes from the source" + depth_note(qd_w, sw_w),
      [f, block, qd_w, from_source] {
        return UringLoop(f->fd.get(), true, f->seq, block, qd_w, from_source);
      });
  add("raw_seq_read",
      "io_uring O_DIRECT sequential reads, each block to its own place" + depth_note(qd_sr, sw_sr),
      [f, block, qd_sr, into_dst] {
        return UringLoop(f->fd.get(), false, f->seq, block, qd_sr, into_dst);
      });
  add("raw_rand_read",
      "io_uring O_DIRECT reads in random block order, each block to its own place" +
          depth_note(qd_rr, sw_rr),
      [f, block, qd_rr, into_dst] {
        return UringLoop(f->fd.get(), false, f->rnd, block, qd_rr, into_dst);
      });
  // For reference (no row is compared with them): the same loops with a QD's worth of buffers
  // that stay in the CPU cache, as the raw loop used to run. The gap is the cache effect the
  // BlockBuffers comment describes.
  add("raw_seq_write_cached",
      "raw_seq_write from QD buffers written over and over, same QD " + std::to_string(qd_w),
      [f, block, qd_w, cached] {
        return UringLoop(f->fd.get(), true, f->seq, block, qd_w, cached);
      });
  add("raw_rand_read_cached",
      "raw_rand_read into QD buffers read over and over, same QD " + std::to_string(qd_rr),
      [f, block, qd_rr, cached] {
        return UringLoop(f->fd.get(), false, f->rnd, block, qd_rr, cached);
      });
  // Durable: each writer makes every block durable before its next one.
  add("raw_durable_write",
      "O_DIRECT pwrite + fdatasync per block (a quarter of the bytes), writers" +
          depth_note(qd_d, sw_d),
      [f, block, qd_d, durable_blocks, from_source] {
        return DurableLoop(f->fd.get(), durable_blocks, block, qd_d, from_source);
      });
  set->fixtures.push_back(std::move(fx));
  return Status::Ok();
}

}  // namespace kvt::bench
