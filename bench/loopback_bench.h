// Loopback throughput of the remote tier next to plain TCP, measured in the same run: what
// kvtier-bench reports for the network path (bench/ links kvt_server and calls RunLoopbackBench).
//
//   tcp       one socket, 4 MiB writes of one buffer, the reader discarding: the ceiling
//   put       RemoteTier::Put of every block (gather writes, server verifies and stores)
//   get       RemoteTier::Get of every block in one pipelined, streamed call; the payload is read
//             straight into the destination (scatter) and checksum-verified
//   fetch     the same through a client Store: Prefetch into host-tier slots (the store path)
// With `compression` (zstd | fp8) the node accepts and the client offers that codec, the blocks
// are KV-like (normal(0, 1) values as fp16, kernels/kv_sample.h; the namespace allows lossy
// blocks for fp8), and the figures also say how many bytes crossed the wire for the get and the
// CPU time the node spent encoding and the client decoding. Without it the payload is a byte
// pattern (the rows' history), which no codec would be offered anyway.
// Steady state: host memory is locked (populated) and the put and fetch figures are of a second
// round, after an untimed first one made the host tiers' slabs.
//
// Thread safety: one call at a time per directory.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"
#include "src/block_key.h"

namespace kvt {

// The namespace of the network benchmarks (loopback and flood): K and V of 16 tokens, 8 heads of
// d128 in fp16, so one layer is 64 KiB and a block of block_bytes (a multiple of kNetLayerBytes)
// has block_bytes / kNetLayerBytes layers.
inline constexpr uint64_t kNetLayerBytes = 2ull * 16 * 8 * 128 * 2;
NamespaceDesc NetBenchNamespace(uint64_t block_bytes, const char* model);

struct LoopbackBenchOptions {
  std::string dir;                    // scratch directory for the two stores (created, removed)
  uint64_t total_bytes = 256ull << 20;
  uint64_t block_bytes = 4ull << 20;  // a multiple of 64 KiB
  int server_threads = 2;
  // Security modes, to compare with plain: a shared secret (frame MACs), and/or TLS (PEM files:
  // the node's cert/key, the CA, the client's cert/key for mutual TLS).
  std::string auth_secret;
  std::string tls_node_cert, tls_node_key, tls_ca, tls_client_cert, tls_client_key;
  std::string compression = "none";  // none | zstd | fp8 (see the file comment)
  bool fetch = true;                 // also measure the store path (fetch)
};

struct LoopbackFigures {
  uint64_t bytes = 0, block_bytes = 0, blocks = 0;
  double tcp_gib_s = 0, put_gib_s = 0, get_gib_s = 0, fetch_gib_s = 0;
  double tcp_s = 0, put_s = 0, get_s = 0, fetch_s = 0;
  // The timed get with compression: payload bytes on the wire, and CPU seconds spent encoding
  // (node) and decoding (client).
  uint64_t get_wire_bytes = 0;
  double get_encode_s = 0, get_decode_s = 0;
  std::string ToString() const;
};

StatusOr<LoopbackFigures> RunLoopbackBench(const LoopbackBenchOptions& o);

}  // namespace kvt
