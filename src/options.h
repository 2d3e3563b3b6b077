// Options: every setting of a store, parsed and validated from name/value strings (the C API's
// kvt_options_set and config files). A bad name or value is rejected when set, with a message
// naming it, and leaves the options unchanged; Validate() checks the combination at open.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "io/file_io.h"

namespace kvt {

struct Options {
  std::string dir = "./kvtier-data";
  uint64_t host_bytes = 1ull << 30;
  uint64_t hbm_bytes = 0;
  uint64_t nvme_bytes = 0;
  std::string host_policy = "lru";
  std::string write_policy = "write_back";
  std::string hash_secret;  // raw bytes decoded from hex
  std::vector<std::string> remote;
  std::string remote_etcd;  // remote = etcd://HOST:PORT/PREFIX: nodes discovered there instead
  std::string auth_secret;
  std::string tls_cert, tls_key, tls_ca;  // TLS to kvtierd nodes (tls_ca set: on)
  std::string auth_id;  // a kvtierd --tenants credential id whose secret auth_secret is; "": shared
  std::string remote_write = "write_through";  // write_through | off; used when remote is set
  uint32_t io_depth = 64;
  // Transfers from kvtierd nodes (RemoteOptions): connections per node, keys per GET request
  // (0: up to the node's limit), requests in flight per connection, socket buffers (0: kernel).
  uint32_t remote_connections = 1;
  uint32_t remote_batch_blocks = 0;
  uint32_t remote_pipeline_depth = 4;
  uint64_t remote_socket_buffer = 0;
  // Payload compression offered to kvtierd nodes: none | zstd | fp8 (fp8 for KVT_NS_LOSSY_OK
  // namespaces, zstd for the others); the node uses what its --compression accepts.
  std::string remote_compression = "none";
  uint64_t host_slab_bytes = 0;  // 0: auto (see HostSlabBytes)
  bool host_mlock = true;
  bool verify_host_reads = false;
  uint64_t nvme_segment_bytes = 64ull << 20;
  std::string nvme_codec = "none";        // none | zstd (byte-shuffled)
  std::string nvme_admission = "all";     // all | seen_twice | budget:SIZE | a+b
  bool nvme_reinsertion = false;
  uint64_t event_queue = 0;  // block events kept for kvt_events_poll; 0: events off
  // Test only (C++, no option name): the NVMe tier's FileIo factory, e.g. one wrapping
  // FaultInjectionFileIo, so that store-level tests reach the failure paths of demotion,
  // promotion, write-through and flush. Empty: the tier's default (io_uring, pread fallback).
  std::function<std::unique_ptr<FileIo>()> nvme_io_factory;

  // Sets one option from its text form. InvalidArgument names the option and what was wrong.
  Status Set(std::string_view name, std::string_view value);
  // "name = value" lines; '#' comments and blank lines ignored. All or nothing. A file larger
  // than kMaxConfigFileBytes is InvalidArgument (a config is a few lines; this bounds memory).
  static constexpr size_t kMaxConfigFileBytes = 1u << 20;
  Status LoadFile(const std::string& path);
  // The host pool's slab size: host_slab_bytes when set, else (auto) 16 MiB, or a quarter of
  // host_bytes rounded down to 4 KiB (at least 4 KiB) when that is smaller, so that small host
  // budgets (1, 2, 8 MiB) open with a few slabs instead of failing.
  uint64_t HostSlabBytes() const;
  // Checks the combination (called by open).
  Status Validate() const;
  // Every option name Set accepts, for help texts.
  static std::vector<std::string_view> Names();
};

}  // namespace kvt
