// NvmeTier: inspection and verification (kvtier inspect / fsck).
#include <sys/stat.h>

#include <cinttypes>
#include <cstdio>
#include <set>

#include "tiers/nvme/nvme_internal.h"
#include "tiers/nvme/segment_format.h"

namespace kvt {
namespace {

constexpr size_t kMaxProblems = 1000;

std::string Describe(const NvmeEntry& e) {
  char buf[160];
  std::snprintf(buf, sizeof(buf),
                "ns %016" PRIx64 " key %016" PRIx64 "%016" PRIx64 " in %s at offset %" PRIu64, e.ns,
                e.key.hi, e.key.lo, SegmentFileName(e.loc.segment).c_str(), e.loc.offset);
  return buf;
}

}  // namespace

std::vector<NvmeSegmentInfo> NvmeTier::Segments() const {
  std::vector<NvmeSegmentInfo> out;
  std::lock_guard<std::mutex> l(const_cast<std::mutex&>(alloc_mu_));
  for (uint32_t id = 0; id < num_segments_; ++id) {
    const Segment& s = *segs_[id];
    NvmeSegmentInfo i;
    i.id = id;
    i.state = s.state;
    i.generation = s.generation.load();
    i.write_offset = s.write_offset;
    i.header_error = s.header_error;
    struct stat st;
    if (s.fd_raw.load() >= 0 && ::fstat(s.fd_raw.load(), &st) == 0) {
      i.file_bytes = static_cast<uint64_t>(st.st_size);
    }
    out.push_back(std::move(i));
  }
  return out;
}

NvmeFsckReport NvmeTier::Fsck(bool repair) {
  NvmeFsckReport r;
  auto problem = [&](std::string m) {
    if (r.problems.size() < kMaxProblems) r.problems.push_back(std::move(m));
  };
  for (const std::string& p : load_problems_) {
    ++r.segment_problems;
    problem("at open: " + p);
  }
  std::vector<NvmeEntry> entries;
  index_->ForEach([&](const NvmeEntry& e) {
    entries.push_back(e);
    return true;
  });
  std::set<uint32_t> referenced;
  for (const NvmeEntry& e : entries) referenced.insert(e.loc.segment);

  for (const NvmeSegmentInfo& s : Segments()) {
    if (s.state == NvmeSegmentInfo::State::kAbsent && s.file_bytes == 0 &&
        segs_[s.id]->fd_raw.load() < 0) {
      continue;
    }
    ++r.segments;
    if (s.file_bytes < opts_.segment_bytes) {
      ++r.segment_problems;
      problem(SegmentFileName(s.id) + ": " + std::to_string(s.file_bytes) + " bytes, expected " +
              std::to_string(opts_.segment_bytes) + " (truncated)");
    }
    if (!s.header_error.empty() && referenced.count(s.id) > 0) {
      ++r.segment_problems;
      problem(SegmentFileName(s.id) + ": " + s.header_error + " (index entries point into it)");
    }
  }

  IoLease ctx(this);
  AlignedBuffer buf;
  std::vector<NvmeEntry> drop;
  for (const NvmeEntry& e : entries) {
    ++r.entries;
    if (e.loc.segment >= num_segments_ || segs_[e.loc.segment]->fd_raw.load() < 0) {
      ++r.entries_bad;
      problem(Describe(e) + ": segment file missing");
      drop.push_back(e);
      continue;
    }
    const Segment& seg = *segs_[e.loc.segment];
    if (seg.header_error.empty() && seg.generation.load() != e.loc.generation) {
      ++r.entries_stale;  // normal after a reclaim; the tier sweeps them
      drop.push_back(e);
      continue;
    }
    if (buf.size() < e.loc.payload_bytes) {
      auto b = AlignedBuffer::Allocate(std::max<size_t>(e.loc.payload_bytes, 1 << 20), false);
      if (!b.ok()) {
        ++r.io_errors;
        problem("out of memory for a read buffer");
        break;
      }
      buf = std::move(b).value();
    }
    Verdict v = Verdict::kOk;
    Status s = ReadRecord(*ctx, e, buf.data(), buf.size(), nullptr, &v);
    switch (v) {
      case Verdict::kOk:
        ++r.entries_ok;
        break;
      case Verdict::kStale:
        ++r.entries_stale;
        break;
      case Verdict::kIoError:
        ++r.io_errors;
        problem(Describe(e) + ": " + s.ToString());
        break;
      case Verdict::kCorrupt:
        ++r.entries_bad;
        problem(Describe(e) + ": " + s.ToString());
        drop.push_back(e);
        break;
    }
  }
  if (repair && !opts_.read_only && !drop.empty()) {
    auto n = index_->EraseIfAt(drop);
    if (n.ok()) r.dropped = *n;
    if (!n.ok()) problem("repair: " + n.status().ToString());
    Add(c_->checksum_failures, r.entries_bad);
  }
  return r;
}

}  // namespace kvt
