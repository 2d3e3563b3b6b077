// NvmeTier: opening a directory (FORMAT file, segment files, index load and sweep).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/log.h"
#include "tiers/nvme/nvme_internal.h"
#include "tiers/nvme/segment_format.h"

namespace kvt {
namespace {

constexpr const char* kFormatFile = "FORMAT";
constexpr const char* kFormatMagic = "kvtier-nvme";
constexpr const char* kIndexDir = "index";

struct FormatInfo {
  uint64_t version = 0;
  uint64_t segment_bytes = 0;
  uint64_t budget_bytes = 0;
};

StatusOr<FormatInfo> ReadFormat(const std::string& dir) {
  std::string path = dir + "/" + kFormatFile;
  std::ifstream in(path);
  if (!in) return Status::NotFound("no " + path);
  std::string magic;
  std::getline(in, magic);
  if (magic != kFormatMagic) {
    return Status::Corruption(path + ": not a kvtier NVMe directory (first line '" + magic + "')");
  }
  FormatInfo f;
  std::string k;
  uint64_t v;
  while (in >> k >> v) {
    if (k == "format_version") f.version = v;
    if (k == "segment_bytes") f.segment_bytes = v;
    if (k == "budget_bytes") f.budget_bytes = v;
  }
  if (f.version == 0) return Status::Corruption(path + ": no format_version");
  return f;
}

Status WriteFormat(const std::string& dir, const FormatInfo& f) {
  std::string path = dir + "/" + kFormatFile;
  std::string tmp = path + ".tmp";
  std::ostringstream os;
  os << kFormatMagic << "\nformat_version " << f.version << "\nsegment_bytes " << f.segment_bytes
     << "\nbudget_bytes " << f.budget_bytes << "\n";
  std::string text = os.str();
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status::FromErrno(errno, "create " + tmp);
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return Status::FromErrno(errno, "write " + tmp);
  }
  KVT_RETURN_IF_ERROR(SyncFd(fd.get(), true));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return Status::FromErrno(errno, "rename " + tmp);
  }
  return Status::Ok();
}

}  // namespace

const char* SegmentStateName(NvmeSegmentInfo::State s) {
  switch (s) {
    case NvmeSegmentInfo::State::kAbsent:
      return "absent";
    case NvmeSegmentInfo::State::kFree:
      return "free";
    case NvmeSegmentInfo::State::kActive:
      return "active";
    case NvmeSegmentInfo::State::kSealed:
      return "sealed";
  }
  return "?";
}

NvmeTier::NvmeTier(NvmeOptions opts)
    : opts_(std::move(opts)), num_segments_(opts_.num_segments()), c_(new Counters) {}

NvmeTier::~NvmeTier() {
  if (!opts_.read_only && index_ != nullptr) {
    Status s = Flush();  // a clean close is a durable one
    // ... and a checkpoint of the index with every segment's mark at its end (nothing is in
    // flight now), so the next open replays nothing and brings back nothing removed.
    std::vector<NvmeIndex::Mark> marks;
    {
      std::lock_guard<std::mutex> l(alloc_mu_);
      for (uint32_t id = 0; id < num_segments_; ++id) {
        const Segment& seg = *segs_[id];
        if (seg.generation.load() != 0 && seg.pending.empty()) {
          marks.push_back({id, seg.generation.load(), seg.write_offset});
        }
      }
    }
    if (s.ok()) s = index_->Put({}, marks);
    if (s.ok()) s = index_->Sync();
    if (!s.ok()) KVT_LOG(kWarn, "NVMe tier close: flush failed: " + s.ToString());
  }
}

StatusOr<NvmeOptions> NvmeTier::OptionsFromDirectory(const std::string& dir) {
  KVT_ASSIGN_OR_RETURN(FormatInfo f, ReadFormat(dir));
  if (f.version != kNvmeFormatVersion) {
    return Status::Corruption(dir + ": NVMe format version " + std::to_string(f.version) +
                              ", this build reads version " + std::to_string(kNvmeFormatVersion));
  }
  NvmeOptions o;
  o.dir = dir;
  o.segment_bytes = f.segment_bytes;
  o.budget_bytes = f.budget_bytes;
  return o;
}

StatusOr<std::unique_ptr<NvmeTier>> NvmeTier::Open(const NvmeOptions& options) {
  KVT_RETURN_IF_ERROR(options.Validate());
  std::unique_ptr<NvmeTier> t(new NvmeTier(options));
  KVT_RETURN_IF_ERROR(t->OpenDirectory());
  KVT_ASSIGN_OR_RETURN(t->index_,
                       NvmeIndex::Open(t->opts_.dir + "/" + kIndexDir, t->opts_.read_only,
                                       t->opts_.index_env));
  KVT_RETURN_IF_ERROR(t->OpenSegments());
  KVT_RETURN_IF_ERROR(t->LoadIndex());
  return t;
}

Status NvmeTier::OpenDirectory() {
  const std::string& dir = opts_.dir;
  std::error_code ec;
  if (!opts_.read_only) std::filesystem::create_directories(dir, ec);
  dir_fd_.Reset(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd_.valid()) return Status::FromErrno(errno, "open directory " + dir);
  auto f = ReadFormat(dir);
  if (f.ok()) {
    if (f->version != kNvmeFormatVersion) {
      return Status::Corruption(dir + " was written with NVMe format version " +
                                std::to_string(f->version) + "; this build reads version " +
                                std::to_string(kNvmeFormatVersion) +
                                " (use another directory, or remove this one)");
    }
    if (f->segment_bytes != opts_.segment_bytes) {
      return Status::InvalidArgument(dir + " has segment_bytes " +
                                     std::to_string(f->segment_bytes) + ", options ask for " +
                                     std::to_string(opts_.segment_bytes));
    }
    if (!opts_.read_only && f->budget_bytes != opts_.budget_bytes) {
      KVT_RETURN_IF_ERROR(
          WriteFormat(dir, {kNvmeFormatVersion, opts_.segment_bytes, opts_.budget_bytes}));
    }
    return Status::Ok();
  }
  if (f.status().code() != Code::kNotFound) return f.status();
  // No FORMAT: a new directory, unless it already holds our files (then refusing is safer than
  // guessing which version wrote them).
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name == kIndexDir || ParseSegmentFileName(name) >= 0) {
      return Status::Corruption(dir +
                                " holds NVMe tier files but no FORMAT file; refusing to "
                                "guess their format version");
    }
  }
  if (opts_.read_only) return Status::NotFound(dir + ": no NVMe tier here (no FORMAT file)");
  KVT_RETURN_IF_ERROR(
      WriteFormat(dir, {kNvmeFormatVersion, opts_.segment_bytes, opts_.budget_bytes}));
  return SyncFd(dir_fd_.get(), false);
}

Status NvmeTier::OpenSegments() {
  segs_.reserve(num_segments_);
  for (uint32_t i = 0; i < num_segments_; ++i) segs_.push_back(std::make_unique<Segment>());
  direct_io_ = opts_.use_direct_io;
  std::error_code ec;
  std::vector<uint32_t> present;
  for (const auto& e : std::filesystem::directory_iterator(opts_.dir, ec)) {
    int64_t id = ParseSegmentFileName(e.path().filename().string());
    if (id < 0) continue;
    if (id >= num_segments_) {
      // The budget shrank: the file is outside it. Its entries are swept as stale at load.
      if (!opts_.read_only) {
        KVT_LOG(kInfo, "NVMe tier: removing " + e.path().string() + " (outside the budget)");
        std::filesystem::remove(e.path(), ec);
      }
      continue;
    }
    present.push_back(static_cast<uint32_t>(id));
  }
  IoLease ctx(this);
  uint8_t* hdr = ctx->Headers(1);
  if (hdr == nullptr) return Status::Internal("out of memory for a header buffer");
  for (uint32_t id : present) {
    Segment& s = *segs_[id];
    KVT_ASSIGN_OR_RETURN(s.fd, OpenSegmentFile(id, /*create=*/false));
    s.fd_raw = s.fd.get();
    s.state = NvmeSegmentInfo::State::kFree;
    Add(c_->segments_created);
    struct stat st;
    if (::fstat(s.fd.get(), &st) == 0 && static_cast<uint64_t>(st.st_size) < opts_.segment_bytes) {
      std::string m = SegmentFileName(id) + " is " + std::to_string(st.st_size) +
                      " bytes, expected " + std::to_string(opts_.segment_bytes) + " (truncated)";
      load_problems_.push_back(m);
      KVT_LOG(kWarn, "NVMe tier: " + m);
      if (!opts_.read_only) {
        // Re-allocate so the budget accounting and du agree; records in the lost range now read
        // as zeros and fail verification.
        KVT_RETURN_IF_ERROR(ctx->io->Fallocate(s.fd.get(), 0, opts_.segment_bytes));
      }
    }
    IoRequest r = IoRequest::Read(s.fd.get(), hdr, kSegmentHeaderBytes, 0);
    Status rs = ctx->io->Execute({&r, 1});
    SegmentHeader h;
    if (rs.ok()) rs = DecodeSegmentHeader(hdr, &h);
    if (rs.ok() && (h.segment_id != id || h.segment_bytes != opts_.segment_bytes)) {
      rs = Status::Corruption("segment header names segment " + std::to_string(h.segment_id) +
                              " of " + std::to_string(h.segment_bytes) + " bytes");
    }
    if (rs.ok()) {
      s.generation = h.generation;
    } else {
      s.header_error = rs.ToString();
    }
  }
  for (uint32_t id = num_segments_; id-- > 0;) {
    if (!segs_[id]->fd.valid()) absent_.push_back(id);  // largest first: pop_back is smallest
  }
  return Status::Ok();
}

Status NvmeTier::LoadIndex() {
  std::vector<uint64_t> max_end(num_segments_, kSegmentHeaderBytes);
  std::vector<uint64_t> live(num_segments_, 0);
  std::vector<NvmeEntry> sweep;
  uint64_t max_gen = 0;
  uint64_t corrupt = 0;
  for (const auto& s : segs_) max_gen = std::max<uint64_t>(max_gen, s->generation);
  Status scan = index_->Scan([&](const NvmeEntry& e, bool ok) {
    if (ok) max_gen = std::max(max_gen, e.loc.generation);
    bool in_range = ok && e.loc.segment < num_segments_ && e.loc.offset >= kSegmentHeaderBytes &&
                    e.loc.offset + RecordBytes(e.loc.stored_bytes) <= opts_.segment_bytes;
    Segment* s = in_range ? segs_[e.loc.segment].get() : nullptr;
    if (opts_.read_only) {
      // Inspection loads what is there; fsck classifies it.
      if (s != nullptr) index_->LoadIntoMemory(e);
      return;
    }
    if (s != nullptr && s->fd.valid() && s->generation != 0 && e.loc.generation == s->generation) {
      index_->LoadIntoMemory(e);
      s->records.push_back({e.ns, e.key, e.loc.offset});
      max_end[e.loc.segment] =
          std::max(max_end[e.loc.segment], e.loc.offset + RecordBytes(e.loc.stored_bytes));
      ++live[e.loc.segment];
      return;
    }
    // An entry naming a segment whose header is gone (and no newer generation) lost its data to
    // corruption, not to reclaim: count it as a checksum failure. The rest are stale.
    if (s != nullptr && s->fd.valid() && s->generation == 0 && !s->header_error.empty()) ++corrupt;
    sweep.push_back(e);
  });
  KVT_RETURN_IF_ERROR(scan);
  if (!opts_.read_only && !sweep.empty()) {
    KVT_RETURN_IF_ERROR(index_->EraseFromDisk(sweep));
    Add(c_->stale_swept, sweep.size() - corrupt);
    Add(c_->checksum_failures, corrupt);
    if (corrupt > 0) {
      load_problems_.push_back(std::to_string(corrupt) +
                               " index entries named segments whose header is corrupt; dropped");
    }
  }
  if (!opts_.read_only) KVT_RETURN_IF_ERROR(ReplaySegments(max_end));
  std::lock_guard<std::mutex> l(alloc_mu_);
  next_generation_ = max_gen + 1;
  std::vector<uint32_t> valid;
  for (uint32_t id = 0; id < num_segments_; ++id) {
    Segment& s = *segs_[id];
    if (!s.fd.valid()) continue;
    if (s.generation == 0) {
      s.state = NvmeSegmentInfo::State::kFree;
      free_.push_back(id);
    } else {
      valid.push_back(id);
    }
  }
  std::sort(valid.begin(), valid.end(),
            [&](uint32_t a, uint32_t b) { return segs_[a]->generation < segs_[b]->generation; });
  for (uint32_t id : valid) {
    segs_[id]->state = NvmeSegmentInfo::State::kSealed;
    segs_[id]->write_offset = max_end[id];
    sealed_.push_back(id);
  }
  if (!valid.empty() && !opts_.read_only) {
    // The newest segment keeps being written after its last indexed or replayed record
    // (anything after it neither verified nor was indexed, so overwriting it loses nothing).
    uint32_t newest = valid.back();
    sealed_.pop_back();
    segs_[newest]->state = NvmeSegmentInfo::State::kActive;
    active_ = static_cast<int>(newest);
  }
  return Status::Ok();
}

StatusOr<UniqueFd> NvmeTier::OpenSegmentFile(uint32_t id, bool create) {
  std::string path = opts_.dir + "/" + SegmentFileName(id);
  int flags = (opts_.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | (create ? O_CREAT : 0);
  if (direct_io_) {
    UniqueFd fd(::open(path.c_str(), flags | O_DIRECT, 0644));
    if (fd.valid()) return fd;
    if (errno != EINVAL) return Status::FromErrno(errno, "open " + path);
    // The file system refuses O_DIRECT (tmpfs, some FUSE): buffered I/O, said once.
    direct_io_ = false;
    KVT_LOG(kWarn, "NVMe tier: O_DIRECT refused on " + opts_.dir + ", using buffered I/O");
  }
  UniqueFd fd(::open(path.c_str(), flags, 0644));
  if (!fd.valid()) return Status::FromErrno(errno, "open " + path);
  return fd;
}

}  // namespace kvt
