// kvtier: inspect and check an NVMe tier directory.
//
//   kvtier inspect DIR          segments, namespaces, entries, bytes, fill
//   kvtier fsck DIR [--repair]  read every indexed record and verify it; --repair drops the bad
//
// Exit codes: 0 clean, 1 problems found (also after --repair dropped them), 2 usage or open error.
// Without --repair the directory is opened read-only (safe beside a running store).
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "base/units.h"
#include "tiers/nvme/nvme_tier.h"
#include "tiers/nvme/segment_format.h"

namespace kvt {
namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: kvtier inspect DIR\n"
               "       kvtier fsck DIR [--repair]\n");
  return 2;
}

StatusOr<std::unique_ptr<NvmeTier>> OpenDir(const std::string& dir, bool writable) {
  KVT_ASSIGN_OR_RETURN(NvmeOptions o, NvmeTier::OptionsFromDirectory(dir));
  o.read_only = !writable;
  return NvmeTier::Open(o);
}

int Inspect(const std::string& dir) {
  auto t = OpenDir(dir, false);
  if (!t.ok()) {
    std::fprintf(stderr, "kvtier inspect: %s\n", t.status().ToString().c_str());
    return 2;
  }
  NvmeTier& tier = **t;
  const NvmeOptions& o = tier.options();
  struct Agg {
    uint64_t entries = 0, payload = 0, stored = 0, disk = 0;
  };
  std::map<uint32_t, Agg> by_seg;
  std::map<uint64_t, Agg> by_ns;
  Agg total;
  tier.ForEachEntry([&](const NvmeEntry& e) {
    for (Agg* a : {&by_seg[e.loc.segment], &by_ns[e.ns], &total}) {
      ++a->entries;
      a->payload += e.loc.payload_bytes;
      a->stored += e.loc.stored_bytes;
      a->disk += RecordBytes(e.loc.stored_bytes);
    }
    return true;
  });
  NvmeStats s = tier.Stats();
  std::printf("directory      %s\n", dir.c_str());
  std::printf("format         version %u, segment %s, budget %s (%" PRIu64 " segments)\n",
              kNvmeFormatVersion, FormatBytes(o.segment_bytes).c_str(),
              FormatBytes(o.budget_bytes).c_str(), s.segments_total);
  std::printf("space          %s in %" PRIu64 " segment files, index %s\n",
              FormatBytes(s.bytes_used).c_str(), s.segments_created,
              FormatBytes(s.index_bytes).c_str());
  std::printf("entries        %" PRIu64 ", payload %s, stored %s, on disk %s\n", total.entries,
              FormatBytes(total.payload).c_str(), FormatBytes(total.stored).c_str(),
              FormatBytes(total.disk).c_str());
  if (total.stored > 0) {
    std::printf("compression    %.3f (payload / stored)\n",
                static_cast<double>(total.payload) / static_cast<double>(total.stored));
  }
  std::printf("\nsegments\n  %-6s %-7s %12s %10s %7s %9s %10s  %s\n", "id", "state", "generation",
              "written", "fill", "entries", "live", "notes");
  for (const NvmeSegmentInfo& seg : tier.Segments()) {
    if (seg.state == NvmeSegmentInfo::State::kAbsent && seg.file_bytes == 0) continue;
    const Agg& a = by_seg[seg.id];
    std::string notes = seg.header_error;
    if (seg.file_bytes != 0 && seg.file_bytes < o.segment_bytes) {
      notes +=
          (notes.empty() ? "" : "; ") + std::string("truncated to ") + FormatBytes(seg.file_bytes);
    }
    std::printf("  %-6u %-7s %12" PRIu64 " %10s %6.1f%% %9" PRIu64 " %10s  %s\n", seg.id,
                SegmentStateName(seg.state), seg.generation, FormatBytes(seg.write_offset).c_str(),
                100.0 * static_cast<double>(a.disk) / static_cast<double>(o.segment_bytes),
                a.entries, FormatBytes(a.disk).c_str(), notes.c_str());
  }
  std::printf("\nnamespaces\n  %-18s %9s %12s %12s\n", "namespace", "entries", "payload", "disk");
  for (const auto& [ns, a] : by_ns) {
    std::printf("  %016" PRIx64 "   %9" PRIu64 " %12s %12s\n", ns, a.entries,
                FormatBytes(a.payload).c_str(), FormatBytes(a.disk).c_str());
  }
  return 0;
}

int Fsck(const std::string& dir, bool repair) {
  auto t = OpenDir(dir, repair);
  if (!t.ok()) {
    std::fprintf(stderr, "kvtier fsck: %s\n", t.status().ToString().c_str());
    return 2;
  }
  NvmeFsckReport r = (*t)->Fsck(repair);
  for (const std::string& p : r.problems) std::printf("problem: %s\n", p.c_str());
  // Segment problems are counted per problem, not per file (one truncated file can also have
  // failed its header check at open), so the line names both counts separately.
  std::printf("fsck %s: %" PRIu64 " segment files checked, %" PRIu64
              " segment problems (truncated files, bad headers); %" PRIu64
              " index entries checked: %" PRIu64 " ok, %" PRIu64 " bad, %" PRIu64
              " stale, %" PRIu64 " I/O errors%s\n",
              dir.c_str(), r.segments, r.segment_problems, r.entries, r.entries_ok, r.entries_bad,
              r.entries_stale, r.io_errors,
              repair ? (", " + std::to_string(r.dropped) + " dropped").c_str() : "");
  if (repair) {
    Status f = (*t)->Flush();
    if (!f.ok()) std::fprintf(stderr, "kvtier fsck: flush: %s\n", f.ToString().c_str());
  }
  std::printf("%s\n", r.clean() ? "clean" : "PROBLEMS FOUND");
  return r.clean() ? 0 : 1;
}

}  // namespace
}  // namespace kvt

int main(int argc, char** argv) {
  if (argc < 3) return kvt::Usage();
  std::string cmd = argv[1];
  std::string dir = argv[2];
  if (cmd == "inspect" && argc == 3) return kvt::Inspect(dir);
  if (cmd == "fsck" && argc == 3) return kvt::Fsck(dir, false);
  if (cmd == "fsck" && argc == 4 && std::strcmp(argv[3], "--repair") == 0) {
    return kvt::Fsck(dir, true);
  }
  return kvt::Usage();
}
