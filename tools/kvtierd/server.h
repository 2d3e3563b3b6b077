// Server: kvtierd's network side. A Boost.Asio acceptor and one Connection per client, each
// running its ServerSession (tools/kvtierd/server_session.h) on one of a few single-threaded io_contexts; the Store
// is the caller's and must outlive the server.
//
// Defences: separate limits for connections that have not authenticated yet (a new one closes the
// oldest of those, so silent sockets cannot lock clients out) and for authenticated ones (over it:
// a BUSY error frame, then close), a handshake deadline, an idle timeout (no request in flight and
// nothing received), a partial-frame timeout (a frame begun but not finished, or output the client
// does not read), a budget for request bodies buffered across all connections (BUSY beyond it),
// limits on namespaces per connection and in total, the session's own limits on every length, and
// authentication (frame MACs after it) when a secret or tenant credentials are set. Every
// rejection is counted in Metrics().
//
// Thread safety: Start/Stop from one thread; Metrics and counters from any.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "base/status.h"
#include "tools/kvtierd/server_session.h"
#include "src/store.h"

namespace kvt {

struct ServerOptions {
  std::string listen = "127.0.0.1:0";  // HOST:PORT; port 0 picks a free one (see port())
  std::string auth_secret;              // this or credentials: required off loopback
  std::shared_ptr<const CredentialSet> credentials;  // per-tenant credentials (--tenants)
  // TLS 1.3 with mutual certificates (all three set: on): clients must present a certificate
  // that chains to tls_ca. Off loopback without TLS the server refuses to start unless
  // insecure_plaintext is set (and then logs that it is plaintext).
  std::string tls_cert, tls_key, tls_ca;
  bool insecure_plaintext = false;
  size_t max_connections = 256;          // authenticated (or, without auth, past HELLO)
  size_t max_unauth_connections = 64;    // still in the handshake; a new one closes the oldest
  std::chrono::milliseconds handshake_timeout{3000};
  uint64_t max_buffered_bytes = 256ull << 20;  // request bodies buffered, all connections
  size_t max_namespaces_per_connection = 256;
  size_t max_namespaces = 4096;          // namespaces registered in the node's store
  // Codecs accepted from clients that offer them (--compression none|zstd|fp8; wire::kCodec*).
  uint8_t codecs = 0;
  std::chrono::milliseconds idle_timeout{300'000};
  std::chrono::milliseconds frame_timeout{10'000};
  int threads = 2;
  wire::Limits limits;
  size_t out_high_water = 8u << 20;
};

struct ServerCounters {
  std::atomic<uint64_t> accepted{0}, rejected_limit{0}, active{0};
  std::atomic<uint64_t> unauth_active{0}, unauth_evicted{0}, handshake_timeouts{0};
  std::atomic<uint64_t> tls_handshake_failures{0};
  std::atomic<uint64_t> idle_timeouts{0}, frame_timeouts{0}, closed{0};
};

class Server {
 public:
  // Binds and starts serving. InvalidArgument: a bad address, or a non-loopback one without a
  // secret. Unavailable: the address cannot be bound.
  static StatusOr<std::unique_ptr<Server>> Start(Store* store, const ServerOptions& o);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const { return port_; }
  // Stops accepting, closes every connection and waits for the threads. Idempotent.
  void Stop();
  // The store's stats and the server's counters, Prometheus text.
  std::string Metrics() const;
  const SessionCounters& session_counters() const { return sessions_; }
  const ServerCounters& counters() const { return counters_; }

 private:
  struct Impl;
  class Connection;
  Server(Store* store, const ServerOptions& o);
  void Accept();
  void EvictOldestUnauthenticated();

  Store* store_;
  ServerOptions opts_;
  SessionConfig session_cfg_;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
  SessionCounters sessions_;
  ServerCounters counters_;
  std::atomic<uint64_t> buffered_{0};  // request bytes buffered by every session (budget)
};

// Splits "host:port" ("[v6]:port" too). InvalidArgument names the problem.
Status SplitHostPort(const std::string& s, std::string* host, uint16_t* port);

}  // namespace kvt
