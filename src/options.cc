#include "src/options.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "base/units.h"
#include "membership/etcd_codec.h"
#include "tiers/policy/admission.h"
#include "tiers/nvme/codec.h"
#include "tiers/remote/wire_codec.h"

namespace kvt {
namespace {

StatusOr<std::string> DecodeHex(std::string_view hex) {
  if (hex.size() % 2 != 0) return Status::InvalidArgument("odd number of hex digits");
  if (hex.size() > 256) return Status::InvalidArgument("longer than 128 bytes");
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    int v = 0;
    for (int k = 0; k < 2; ++k) {
      char c = hex[i + k];
      int d = (c >= '0' && c <= '9')   ? c - '0'
              : (c >= 'a' && c <= 'f') ? c - 'a' + 10
              : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                       : -1;
      if (d < 0) return Status::InvalidArgument(std::string("'") + c + "' is not a hex digit");
      v = v * 16 + d;
    }
    out.push_back(static_cast<char>(v));
  }
  return out;
}

StatusOr<std::vector<std::string>> ParseEndpoints(std::string_view text) {
  std::vector<std::string> out;
  if (text.empty()) return out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view ep = text.substr(start, comma == std::string_view::npos ? text.npos
                                                                              : comma - start);
    size_t colon = ep.rfind(':');
    if (ep.empty() || colon == std::string_view::npos || colon == 0 || colon + 1 == ep.size()) {
      return Status::InvalidArgument("'" + std::string(ep) + "' is not host:port");
    }
    auto port = ParseUint(ep.substr(colon + 1));
    if (!port.ok() || *port == 0 || *port > 65535) {
      return Status::InvalidArgument("'" + std::string(ep) + "' has no valid port (1-65535)");
    }
    out.emplace_back(ep);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::vector<std::string_view> Options::Names() {
  return {"dir",         "host_bytes",   "hbm_bytes", "nvme_bytes",      "host_policy",
          "write_policy", "hash_secret", "remote",    "auth_secret", "auth_id", "tls_cert", "tls_key", "tls_ca", "remote_write", "io_depth",
          "host_slab_bytes", "host_mlock", "verify_host_reads", "nvme_segment_bytes",
          "nvme_codec",  "nvme_admission", "nvme_reinsertion", "event_queue",
          "remote_connections", "remote_batch_blocks", "remote_pipeline_depth",
          "remote_socket_buffer", "remote_compression"};
}

Status Options::Set(std::string_view name, std::string_view value) {
  const std::string v(value);
  auto bad = [&](const Status& s) {
    return Status::InvalidArgument("option " + std::string(name) + "='" + v +
                                   "': " + s.message());
  };
  auto set_bytes = [&](uint64_t* field) -> Status {
    auto b = ParseBytes(value);
    if (!b.ok()) return bad(b.status());
    *field = *b;
    return Status::Ok();
  };
  auto set_bool = [&](bool* field) -> Status {
    auto b = ParseBool(value);
    if (!b.ok()) return bad(b.status());
    *field = *b;
    return Status::Ok();
  };
  if (name == "dir") {
    if (value.empty()) return bad(Status::InvalidArgument("empty path"));
    dir = v;
    return Status::Ok();
  }
  if (name == "host_bytes") return set_bytes(&host_bytes);
  if (name == "hbm_bytes") return set_bytes(&hbm_bytes);
  if (name == "nvme_bytes") return set_bytes(&nvme_bytes);
  if (name == "host_slab_bytes") {
    if (value == "auto") {
      host_slab_bytes = 0;
      return Status::Ok();
    }
    uint64_t b = 0;
    KVT_RETURN_IF_ERROR(set_bytes(&b));
    if (b == 0 || b % 4096 != 0) {
      return bad(Status::InvalidArgument("must be a positive multiple of 4 KiB"));
    }
    host_slab_bytes = b;
    return Status::Ok();
  }
  if (name == "host_policy") {
    if (value != "lru" && value != "s3fifo" && value != "chain_lru") {
      return bad(Status::InvalidArgument("expected lru, s3fifo or chain_lru"));
    }
    host_policy = v;
    return Status::Ok();
  }
  if (name == "write_policy") {
    if (value != "write_through" && value != "write_back") {
      return bad(Status::InvalidArgument("expected write_through or write_back"));
    }
    write_policy = v;
    return Status::Ok();
  }
  if (name == "hash_secret") {
    auto h = DecodeHex(value);
    if (!h.ok()) return bad(h.status());
    hash_secret = *h;
    return Status::Ok();
  }
  if (name == "remote" && value.substr(0, 7) == "etcd://") {
    std::string prefix;
    auto u = etcd::ParseEtcdUrl(value, &prefix);
    if (!u.ok()) return bad(u.status());
    remote.clear();
    remote_etcd = v;
    return Status::Ok();
  }
  if (name == "remote") {
    auto r = ParseEndpoints(value);
    if (!r.ok()) return bad(r.status());
    remote = *r;
    remote_etcd.clear();
    return Status::Ok();
  }
  if (name == "auth_secret") {
    auth_secret = v;
    return Status::Ok();
  }
  if (name == "tls_cert" || name == "tls_key" || name == "tls_ca") {
    (name == "tls_cert" ? tls_cert : name == "tls_key" ? tls_key : tls_ca) = v;
    return Status::Ok();
  }
  if (name == "auth_id") {
    if (v.size() > 128) return bad(Status::InvalidArgument("at most 128 bytes"));
    auth_id = v;
    return Status::Ok();
  }
  if (name == "remote_write") {
    if (value != "write_through" && value != "off") {
      return bad(Status::InvalidArgument("expected write_through or off"));
    }
    remote_write = v;
    return Status::Ok();
  }
  if (name == "remote_connections" || name == "remote_batch_blocks" ||
      name == "remote_pipeline_depth") {
    auto d = ParseUint(value);
    if (!d.ok()) return bad(d.status());
    const uint64_t lo = name == "remote_batch_blocks" ? 0 : 1;
    const uint64_t hi = name == "remote_connections" ? 64 : 4096;
    if (*d < lo || *d > hi) {
      return bad(Status::InvalidArgument("must be " + std::to_string(lo) + ".." + std::to_string(hi)));
    }
    (name == "remote_connections"    ? remote_connections
     : name == "remote_batch_blocks" ? remote_batch_blocks
                                     : remote_pipeline_depth) = static_cast<uint32_t>(*d);
    return Status::Ok();
  }
  if (name == "remote_socket_buffer") {
    KVT_RETURN_IF_ERROR(set_bytes(&remote_socket_buffer));
    if (remote_socket_buffer > (1ull << 30)) return bad(Status::InvalidArgument("at most 1 GiB"));
    return Status::Ok();
  }
  if (name == "remote_compression") {
    auto c = ParseWireCompression(value);
    if (!c.ok()) return bad(c.status());
    remote_compression = v;
    return Status::Ok();
  }
  if (name == "io_depth") {
    auto d = ParseUint(value);
    if (!d.ok()) return bad(d.status());
    if (*d == 0 || *d > 4096) return bad(Status::InvalidArgument("must be 1..4096"));
    io_depth = static_cast<uint32_t>(*d);
    return Status::Ok();
  }
  if (name == "host_mlock") return set_bool(&host_mlock);
  if (name == "nvme_reinsertion") return set_bool(&nvme_reinsertion);
  if (name == "nvme_segment_bytes") {
    uint64_t b = 0;
    KVT_RETURN_IF_ERROR(set_bytes(&b));
    if (b < (1u << 20) || b % 4096 != 0) {
      return bad(Status::InvalidArgument("must be a multiple of 4 KiB, at least 1 MiB"));
    }
    nvme_segment_bytes = b;
    return Status::Ok();
  }
  if (name == "nvme_codec") {
    auto c = ParseCodec(value);
    if (!c.ok()) return bad(c.status());
    nvme_codec = v;
    return Status::Ok();
  }
  if (name == "nvme_admission") {
    auto a = MakeAdmissionPolicy(value);
    if (!a.ok()) return bad(a.status());
    nvme_admission = v;
    return Status::Ok();
  }
  if (name == "verify_host_reads") return set_bool(&verify_host_reads);
  if (name == "event_queue") {
    auto n = ParseUint(value);
    if (!n.ok()) return bad(n.status());
    // A bound on the ring's memory (40 bytes an event): 4M events = 160 MiB.
    if (*n > (1u << 22)) return bad(Status::InvalidArgument("must be 0..4194304"));
    event_queue = *n;
    return Status::Ok();
  }
  return Status::InvalidArgument("unknown option '" + std::string(name) + "'");
}

Status Options::LoadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::FromErrno(errno, "open config file " + path);
  // Read at most one byte past the limit, so /dev/zero, a FIFO or a huge file is rejected
  // without holding more than kMaxConfigFileBytes in memory.
  std::string text(kMaxConfigFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return Status::IoError("reading config file " + path);
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxConfigFileBytes) {
    return Status::InvalidArgument("config file " + path + " is larger than the limit of " +
                                   FormatBytes(kMaxConfigFileBytes) + " (" +
                                   std::to_string(kMaxConfigFileBytes) + " bytes)");
  }
  std::istringstream lines(text);
  Options copy = *this;  // all or nothing
  std::string line;
  int lineno = 0;
  while (std::getline(lines, line)) {
    ++lineno;
    std::string_view l = Trim(line);
    if (l.empty() || l.front() == '#') continue;
    size_t eq = l.find('=');
    if (eq == std::string_view::npos) {
      return Status::InvalidArgument(path + ":" + std::to_string(lineno) +
                                     ": expected 'name = value'");
    }
    Status s = copy.Set(Trim(l.substr(0, eq)), Trim(l.substr(eq + 1)));
    if (!s.ok()) return Status::InvalidArgument(path + ":" + std::to_string(lineno) + ": " +
                                                s.message());
  }
  *this = std::move(copy);
  return Status::Ok();
}

uint64_t Options::HostSlabBytes() const {
  if (host_slab_bytes != 0) return host_slab_bytes;
  constexpr uint64_t kPage = 4096, kDefault = 16ull << 20;
  const uint64_t quarter = (host_bytes / 4) / kPage * kPage;
  return std::max(kPage, std::min(kDefault, quarter));
}

Status Options::Validate() const {
  if (host_bytes < 4096) {
    return Status::InvalidArgument("host_bytes (" + FormatBytes(host_bytes) +
                                   ") must be at least 4 KiB");
  }
  if (host_bytes < HostSlabBytes()) {
    return Status::InvalidArgument("host_bytes (" + FormatBytes(host_bytes) +
                                   ") must hold at least one slab (host_slab_bytes = " +
                                   FormatBytes(HostSlabBytes()) + ")");
  }
  if (nvme_bytes > 0 && nvme_bytes < 2 * nvme_segment_bytes) {
    return Status::InvalidArgument("nvme_bytes (" + FormatBytes(nvme_bytes) +
                                   ") must hold at least two segments (nvme_segment_bytes = " +
                                   FormatBytes(nvme_segment_bytes) + ")");
  }
  return Status::Ok();
}

}  // namespace kvt
