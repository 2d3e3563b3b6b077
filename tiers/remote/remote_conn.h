// RemoteConn: one authenticated client connection to a kvtierd node, with a deadline on every
// operation. Boost.Asio drives the socket (async operations run on a private io_context for at
// most the timeout, so a stalled peer costs a timeout, never a hang).
//
// After any failed read or write the byte stream is out of step with the server: the connection
// marks itself broken() and the pool discards it.
//
// After an authenticated handshake without TLS every frame carries a MAC trailer (io/wire_auth.h;
// inside TLS the records are authenticated already and AUTH is bound to the TLS session): Write tags
// each frame it is given, and reads verify each received frame's tag when its last body byte has
// been read, before the caller sees that byte's call return. A failed tag breaks the connection
// (Corruption, tampered()): bytes read so far into a caller's buffer must not be used.
//
// Thread safety: none; one thread uses a connection at a time (the pool hands it out).
#pragma once

#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "io/wire_auth.h"
#include "io/wire_format.h"

namespace kvt {

// TLS 1.3 with certificates (OpenSSL through Boost.Asio's ssl::stream). Enabled when `ca` is set:
// the node's certificate must chain to it and name the host (IP or DNS SAN); cert/key are this
// client's own certificate for mutual TLS.
struct TlsOptions {
  std::string cert, key, ca;
  bool enabled() const { return !ca.empty(); }
};

struct RemoteTimeouts {
  std::chrono::milliseconds connect{1000};
  std::chrono::milliseconds io{5000};  // per read or write call
};

class RemoteConn {
 public:
  // Connects to host:port, exchanges hello and, when the server asks for it (or `secret` is set),
  // authenticates both ways. Unavailable: refused/unreachable/reset; Timeout; PermissionDenied:
  // the server rejected our secret, or could not prove it knows it.
  // `credential`: the id of a per-tenant credential (kvtierd --tenants) whose secret `secret` is;
  // empty for the node's shared secret. `socket_buffer`: SO_SNDBUF and SO_RCVBUF, set before the
  // connect so the window scale covers them; 0 leaves the kernel's autotuning. `codecs`: the
  // payload codecs to offer in HELLO (wire::kCodec*; 0: the original hello). A node from before
  // compression refuses the longer hello: then the connection is made again without the offer
  // (plain), and fallback() says so.
  static StatusOr<std::unique_ptr<RemoteConn>> Connect(const std::string& endpoint,
                                                       const std::string& secret,
                                                       const RemoteTimeouts& t,
                                                       const std::string& credential = "",
                                                       const TlsOptions& tls = {},
                                                       size_t socket_buffer = 0,
                                                       uint8_t codecs = 0);
  ~RemoteConn();
  RemoteConn(const RemoteConn&) = delete;
  RemoteConn& operator=(const RemoteConn&) = delete;

  // Writes every buffer in order (one gather write). The buffers must hold whole frames (a frame
  // may span buffers): each gets its tag when the session is authenticated.
  Status Write(std::span<const std::span<const uint8_t>> bufs);
  // Reads n bytes of the current frame's body (verifying the tag once the body is complete).
  Status ReadExact(void* dst, size_t n);
  // Reads and checks the next frame header against the server's limits.
  Status ReadHeader(wire::FrameHeader* h);
  // Reads a whole body of a frame into out (bounded by the limits the header was checked with).
  Status ReadBody(const wire::FrameHeader& h, std::vector<uint8_t>* out);
  // The status an error response carries (its code, the server's message).
  Status ReadErrorResponse(const wire::FrameHeader& h);

  uint64_t NextRequestId() { return ++last_id_; }
  bool broken() const { return broken_; }
  // The stream carried something this side cannot accept (a payload that does not decode, an
  // encoding not negotiated): it is out of trust, so the connection is not used again.
  void MarkBroken() { broken_ = true; }
  // The codecs the node accepted at HELLO (a subset of those offered).
  uint8_t codecs() const { return codecs_; }
  // The node refused the hello with codecs (it predates compression); this connection is plain.
  bool fallback() const { return fallback_; }
  // A received frame failed its MAC (the connection is broken).
  bool tampered() const { return tampered_; }
  const wire::Limits& limits() const { return limits_; }
  const std::string& endpoint() const { return endpoint_; }
  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }

 private:
  struct Impl;
  RemoteConn(std::unique_ptr<Impl> impl, std::string endpoint, RemoteTimeouts t);
  static StatusOr<std::unique_ptr<RemoteConn>> ConnectOnce(const std::string& endpoint,
                                                           const std::string& secret,
                                                           const RemoteTimeouts& t,
                                                           const std::string& credential,
                                                           const TlsOptions& tls,
                                                           size_t socket_buffer, uint8_t codecs);
  Status Handshake(const std::string& secret, const std::string& credential, uint8_t codecs);
  Status ReadRaw(void* dst, size_t n);
  // The body of the current frame is complete: reads and checks its tag.
  Status VerifyTag();

  std::unique_ptr<Impl> impl_;
  std::string endpoint_;
  RemoteTimeouts timeouts_;
  wire::Limits limits_;
  // Read-ahead for small reads; reads of kDirectRead bytes or more bypass it.
  static constexpr size_t kReadAhead = 64u << 10;
  static constexpr size_t kDirectRead = 16u << 10;
  std::vector<uint8_t> rbuf_;
  size_t rpos_ = 0, rlen_ = 0;
  uint64_t last_id_ = 0;
  bool broken_ = false;
  bool tampered_ = false;
  uint8_t codecs_ = 0;
  bool fallback_ = false;
  wire::FrameMac mac_out_, mac_in_;
  size_t body_left_ = 0;  // body bytes of the current received frame not yet read
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
};

}  // namespace kvt
