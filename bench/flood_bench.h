// Latency under attack, for kvtier-bench's net/ rows: an authenticated client's single-block get
// latency (p50, p99) against a kvtierd node on loopback, first unloaded, then while a flood keeps
// ~200 sockets open that never authenticate (every fourth announcing a 64 MiB PUT before HELLO),
// reopening those the node closes at up to 2000 connections/s. The node runs its default limits;
// the target is a flooded p99 within 2x of the unloaded one.
//
// Also: test certificates for the TLS figures, made with the openssl command line.
//
// Thread safety: one call at a time per directory.
#pragma once

#include <cstdint>
#include <string>

#include "base/status.h"
#include "bench/loopback_bench.h"

namespace kvt {

struct FloodBenchOptions {
  std::string dir;  // scratch directory (created, removed)
  uint64_t block_bytes = 256u << 10;
  int gets = 400;            // timed gets per phase
  int flood_sockets = 200;   // kept open during the flood phase
};

struct FloodFigures {
  double p50_unloaded_s = 0, p99_unloaded_s = 0, p50_flood_s = 0, p99_flood_s = 0;
  uint64_t flood_connects = 0;  // sockets the flood opened in its phase
  uint64_t evicted = 0;         // of them, closed by the node to make room (its counter)
};

StatusOr<FloodFigures> RunFloodBench(const FloodBenchOptions& o);

// Writes ca.pem, node.{pem,key} and client.{pem,key} (naming 127.0.0.1) to dir with the openssl
// command line and fills o's TLS fields; Unavailable when the CLI is missing or fails.
// `san`: the nodes' subjectAltName (a client checks the address it dials against it).
Status MakeLoopbackCerts(const std::string& dir, LoopbackBenchOptions* o,
                         const std::string& san = "IP:127.0.0.1,DNS:localhost");

}  // namespace kvt
