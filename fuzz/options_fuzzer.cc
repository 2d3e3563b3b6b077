// libFuzzer target: the options parser through the C API, as an embedding engine calls it:
// kvt_options_set (name, value) and kvt_options_load_file (a config file's bytes). Every call must
// return KVT_OK or KVT_INVALID_ARGUMENT with a message (never KVT_INTERNAL, never a crash), and a
// rejected call must leave the options as they were.
//
// Input: byte 0 bit 0 picks load_file (the rest is the file) or set (the rest is NAME '\0' VALUE;
// without a '\0' the name is chosen by byte 1 from the known names and the rest is the value).
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "include/kvtier/kvtier.h"
#include "src/options.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

const std::string& ConfigPath() {
  static const std::string path = [] {
    char tmpl[] = "/tmp/kvtier-fuzz-options-XXXXXX";
    const int fd = ::mkstemp(tmpl);
    Check(fd >= 0);
    ::close(fd);
    std::atexit([] { ::unlink(ConfigPath().c_str()); });
    return std::string(tmpl);
  }();
  return path;
}

// The options as the store would see them, to compare before and after a rejected call.
std::string Snapshot(const kvt::Options& o) {
  std::string s = o.dir + '|' + std::to_string(o.host_bytes) + '|' + std::to_string(o.hbm_bytes) +
                  '|' + std::to_string(o.nvme_bytes) + '|' + o.host_policy + '|' + o.write_policy +
                  '|' + o.hash_secret + '|' + o.auth_secret + '|' + o.remote_write + '|' +
                  std::to_string(o.io_depth) + '|' + std::to_string(o.host_slab_bytes) + '|' +
                  std::to_string(o.host_mlock) + std::to_string(o.verify_host_reads) + '|' +
                  std::to_string(o.nvme_segment_bytes) + '|' + o.nvme_codec + '|' +
                  o.nvme_admission + '|' + std::to_string(o.nvme_reinsertion);
  for (const std::string& r : o.remote) s += '|' + r;
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    std::ofstream(ConfigPath(), std::ios::binary | std::ios::trunc) << rest;
    kvt::Options o;
    const std::string before = Snapshot(o);
    kvt::Status s = o.LoadFile(ConfigPath());
    if (!s.ok()) {
      Check(s.code() == kvt::Code::kInvalidArgument);
      Check(Snapshot(o) == before);
    }
    kvt_options* co = kvt_options_create();
    Check(co != nullptr);
    const kvt_status_t st = kvt_options_load_file(co, ConfigPath().c_str());
    Check(st == KVT_OK || st == KVT_INVALID_ARGUMENT);
    Check(st == KVT_OK || kvt_last_error()[0] != '\0');
    kvt_options_destroy(co);
    return 0;
  }
  std::string name, value;
  const size_t nul = rest.find('\0');
  if (nul != std::string::npos) {
    name = rest.substr(0, nul);
    value = rest.substr(nul + 1);
  } else {
    const auto names = kvt::Options::Names();
    name = std::string(names[rest.empty() ? 0 : static_cast<uint8_t>(rest[0]) % names.size()]);
    value = rest.empty() ? "" : rest.substr(1);
  }
  kvt::Options o;
  const std::string before = Snapshot(o);
  kvt::Status s = o.Set(name, value);
  if (!s.ok()) {
    Check(s.code() == kvt::Code::kInvalidArgument);
    Check(Snapshot(o) == before);
  }
  // The C API sees C strings: everything up to the first '\0' of each.
  kvt_options* co = kvt_options_create();
  Check(co != nullptr);
  const kvt_status_t st = kvt_options_set(co, name.c_str(), value.c_str());
  Check(st == KVT_OK || st == KVT_INVALID_ARGUMENT);
  Check(st == KVT_OK || kvt_last_error()[0] != '\0');
  kvt_options_destroy(co);
  return 0;
}
