#include "tiers/nvme/nvme_options.h"

#include "tiers/nvme/segment_format.h"

namespace kvt {

Status NvmeOptions::Validate() const {
  auto bad = [](const std::string& m) { return Status::InvalidArgument("NvmeOptions." + m); };
  if (dir.empty()) return bad("dir: empty");
  if (segment_bytes < (256u << 10) || segment_bytes % kNvmeAlign != 0) {
    return bad("segment_bytes: " + std::to_string(segment_bytes) +
               " must be a multiple of 4096 and at least 256 KiB");
  }
  if (segment_bytes > (4ull << 30)) {
    return bad("segment_bytes: " + std::to_string(segment_bytes) + " is over 4 GiB");
  }
  if (!read_only && budget_bytes / segment_bytes < 2) {
    return bad("budget_bytes: " + std::to_string(budget_bytes) +
               " holds fewer than 2 segments of " + std::to_string(segment_bytes) + " bytes");
  }
  if (budget_bytes / segment_bytes > 1000000) {
    return bad("budget_bytes: over a million segments; use larger segment_bytes");
  }
  if (io_depth == 0 || io_depth > 4096) {
    return bad("io_depth: " + std::to_string(io_depth) + " not in [1, 4096]");
  }
  if (codec == Codec::kZstd && (zstd_level < -7 || zstd_level > 19)) {
    return bad("zstd_level: " + std::to_string(zstd_level) + " not in [-7, 19]");
  }
  return Status::Ok();
}

}  // namespace kvt
