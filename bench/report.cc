// The report: a table for people and a JSON object for tools and other machines' runs.
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "base/hash.h"
#include "bench/bench.h"

namespace kvt::bench {
namespace {

std::string FirstMatch(const std::string& file, const std::string& prefix) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      auto colon = line.find(':');
      std::string v = colon == std::string::npos ? line : line.substr(colon + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return "";
}

// The mount (device, type) holding `dir`: the longest mount point that prefixes it.
void MountOf(const std::string& dir, std::string* dev, std::string* type) {
  std::error_code ec;
  std::string abs = std::filesystem::weakly_canonical(dir, ec).string();
  std::ifstream in("/proc/mounts");
  std::string d, mnt, t, rest;
  size_t best = 0;
  while (in >> d >> mnt >> t && std::getline(in, rest)) {
    if (abs.rfind(mnt, 0) == 0 && mnt.size() >= best &&
        (abs.size() == mnt.size() || mnt == "/" || abs[mnt.size()] == '/')) {
      best = mnt.size();
      *dev = d;
      *type = t;
    }
  }
}

std::string Fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string Value(const Row& r, double v) {
  if (std::isnan(v)) return "-";
  if (r.op_rate) {
    if (v >= 1e6) return Fmt("%.2f M/s", v / 1e6);
    return v >= 1e4 ? Fmt("%.0f k/s", v / 1e3) : Fmt("%.0f /s", v);  // 1/p99 rows are < 10k/s
  }
  return Fmt("%.2f GB/s", v);
}

std::string Design(const std::string& path) {
  if (path.rfind("file_per_block", 0) == 0) return "file_per_block";
  if (path.rfind("rocksdb_blob", 0) == 0) return "rocksdb_blob";
  return path;
}

nlohmann::json NumOrNull(double v) { return std::isnan(v) ? nlohmann::json() : nlohmann::json(v); }

}  // namespace

nlohmann::json MachineJson(const std::string& dir) {
  nlohmann::json m;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  m["hostname"] = host;
  m["cpus_online"] = ::sysconf(_SC_NPROCESSORS_ONLN);
  m["cpu_model"] = FirstMatch("/proc/cpuinfo", "model name");
  m["memory"] = FirstMatch("/proc/meminfo", "MemTotal");
  struct utsname u;
  if (::uname(&u) == 0) m["kernel"] = std::string(u.sysname) + " " + u.release;
  m["checksum_impl"] = ChecksumImpl();
  std::string dev, type;
  MountOf(dir, &dev, &type);
  m["dir"] = dir;
  m["dir_device"] = dev;
  m["dir_fs"] = type;
  struct statvfs st;
  if (::statvfs(dir.c_str(), &st) == 0) {
    m["dir_fs_total_bytes"] = uint64_t{st.f_blocks} * st.f_frsize;
    m["dir_fs_free_bytes"] = uint64_t{st.f_bavail} * st.f_frsize;
  }
  return m;
}

std::string FormatTable(const std::vector<Row>& rows) {
  std::ostringstream o;
  char line[512];
  std::snprintf(line, sizeof line, "%-6s %-28s %-8s %12s %21s  %-26s %s\n", "block", "path", "kind",
                "median", "min..max", "vs limit", "vs baselines");
  o << line;
  uint64_t last_block = UINT64_MAX;
  for (const Row& r : rows) {
    if (r.block_bytes != last_block && last_block != UINT64_MAX) o << "\n";
    last_block = r.block_bytes;
    double lo = r.values.empty() ? NAN : *std::min_element(r.values.begin(), r.values.end());
    double hi = r.values.empty() ? NAN : *std::max_element(r.values.begin(), r.values.end());
    std::string spread = Value(r, lo) + ".." + (r.op_rate ? Value(r, hi) : Fmt("%.2f", hi));
    std::string vs_limit = r.limit.empty() ? "" : Fmt("%.2fx ", r.ratio_to_limit) + r.limit;
    std::string vs_bl;
    for (const auto& [name, ratio] : r.ratio_to_baseline) {
      if (!vs_bl.empty()) vs_bl += ", ";
      vs_bl += Fmt("%.2fx ", ratio) + name;
    }
    std::snprintf(line, sizeof line, "%-6s %-28s %-8s %12s %21s  %-26s %s\n",
                  r.block_bytes == 0 ? "-" : HumanSize(r.block_bytes).c_str(), r.path.c_str(),
                  KindName(r.kind), Value(r, r.median).c_str(), spread.c_str(), vs_limit.c_str(),
                  vs_bl.c_str());
    o << line;
  }
  return o.str();
}

nlohmann::json ResultsJson(const Config& c, const std::vector<Row>& rows,
                           const std::vector<std::string>& notes) {
  nlohmann::json j;
  j["machine"] = MachineJson(c.dir);
  auto& cfg = j["config"];
  cfg["quick"] = c.quick;
  cfg["sizes"] = c.sizes;
  cfg["rounds"] = c.rounds;
  cfg["threads"] = c.threads;
  cfg["bytes_per_test"] = c.bytes_per_test;
  cfg["mem_bytes_per_test"] = c.mem_bytes_per_test;
  cfg["trace"] = c.trace_path;
  j["results"] = nlohmann::json::array();
  j["limits"] = nlohmann::json::array();
  j["baselines"] = nlohmann::json::array();
  for (const Row& r : rows) {
    nlohmann::json e;
    e["path"] = r.path;
    e["block_bytes"] = r.block_bytes;
    if (r.op_rate) {
      e["gbps"] = nullptr;
      e["ops_per_s"] = r.median;
      e["ops_per_s_rounds"] = r.values;
    } else {
      e["gbps"] = r.median;
      e["gbps_rounds"] = r.values;
    }
    e["note"] = r.note;
    switch (r.kind) {
      case Kind::kEngine: {
        e["ratio_to_limit"] = NumOrNull(r.ratio_to_limit);
        e["limit"] = r.limit.empty() ? nlohmann::json() : nlohmann::json(r.limit);
        nlohmann::json b = nlohmann::json::object();
        for (const auto& [name, ratio] : r.ratio_to_baseline) b[name] = NumOrNull(ratio);
        e["ratio_to_baseline"] = b;
        j["results"].push_back(e);
        break;
      }
      case Kind::kLimit:
        e["name"] = r.path;
        j["limits"].push_back(e);
        break;
      case Kind::kBaseline:
        e["name"] = Design(r.path);
        j["baselines"].push_back(e);
        break;
    }
  }
  j["notes"] = notes;
  return j;
}

}  // namespace kvt::bench
