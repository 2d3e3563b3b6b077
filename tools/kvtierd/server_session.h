// ServerSession: the server side of one kvtierd connection as a state machine over bytes. It
// takes what the socket received, answers every complete frame against a Store, and hands back the
// bytes to send as a gather list; it never touches a socket, so the daemon, the tests and the
// fuzzer drive the very same code.
//
// States: expecting hello -> (expecting auth, when a secret is set) -> ready -> closing. Before
// authentication only HELLO and AUTH are answered; anything else, a wrong MAC or an unparsable
// frame gets an error frame and the session closes once its output is sent. After AUTH every frame
// both ways carries a MAC trailer (io/wire_auth.h); a frame whose tag fails closes the session.
//
// Memory stays bounded whatever a peer sends: input is buffered only as it arrives (a header
// announcing a large body allocates nothing), a frame over the limits is refused from its header,
// and a get's blocks are produced only while the unsent output is below a high-water mark. Block
// payloads are sent straight from pinned host-tier slots (no copy), unpinned once sent.
//
// Thread safety: none; the daemon serializes each session's calls (one strand per connection).
#pragma once

#include <array>
#include <atomic>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "io/wire_auth.h"
#include "io/wire_format.h"
#include "tiers/remote/wire_codec.h"
#include "tools/kvtierd/credentials.h"
#include "src/store.h"

namespace kvt {

struct SessionConfig {
  std::string auth_secret;  // the shared secret (every right); empty: none
  // Per-tenant credentials (kvtierd --tenants); with neither these nor a secret: no
  // authentication, every right (loopback only).
  std::shared_ptr<const CredentialSet> credentials;
  wire::Limits limits;
  size_t out_high_water = 8u << 20;
  // Fills the server nonce; default: OpenSSL's CSPRNG. Tests and fuzzers make it deterministic.
  std::function<void(std::array<uint8_t, wire::kNonceBytes>*)> nonce;
  // The text a STATS request returns; default: the store's stats as Prometheus text.
  std::function<std::string()> metrics;
  // A budget shared by every session for request bodies being buffered (large ones, >= 64 KiB):
  // a request that would exceed it is answered BUSY and its body skipped, not buffered.
  std::atomic<uint64_t>* buffered = nullptr;  // null: no budget
  uint64_t max_buffered = 0;
  // Namespaces one connection may use, and that may be registered in the store in total (a new
  // one beyond either is answered BUSY). 0: no limit.
  size_t max_namespaces_per_connection = 0;
  size_t max_namespaces = 0;
  // Codecs (wire::kCodec*) the node accepts when a client offers them (kvtierd --compression);
  // 0: none, every block travels raw.
  uint8_t codecs = 0;
};

// What the TLS handshake of a connection established (kvtierd with --tls-*).
struct TlsPeer {
  std::string subject;  // the verified client certificate's subject, RFC 2253
  std::string cn;       // its common name
  std::array<uint8_t, 32> binding{};  // the session's exporter value (binds AUTH to it)
};

// Shared by every session of a server (relaxed atomics).
struct SessionCounters {
  std::atomic<uint64_t> frames_in{0}, frames_out{0}, bytes_in{0}, bytes_out{0};
  std::atomic<uint64_t> protocol_errors{0}, request_errors{0}, auth_failures{0}, auth_ok{0};
  std::atomic<uint64_t> frame_mac_failures{0}, denied{0}, busy_budget{0}, namespace_limit{0};
  std::atomic<uint64_t> cert_auth_ok{0}, cert_unknown{0};
  std::atomic<uint64_t> lookups{0}, gets{0}, puts{0}, drops{0}, stats{0};
  std::atomic<uint64_t> blocks_sent{0}, blocks_missing{0}, blocks_received{0};
  std::atomic<uint64_t> compressed_connections{0};  // HELLOs that negotiated a codec
  WireCodecCounters codec;  // GET payloads encoded, PUT payloads decoded
};

class ServerSession {
 public:
  ServerSession(Store* store, const SessionConfig& cfg, SessionCounters* counters);
  ~ServerSession();
  ServerSession(const ServerSession&) = delete;
  ServerSession& operator=(const ServerSession&) = delete;

  // The connection runs inside TLS (before any byte is consumed). Then frames carry no MAC (TLS's
  // AEAD already authenticates every record, with sequence numbers), AUTH proofs are bound to the
  // TLS session, and a client certificate named in the credentials is the credential itself.
  void SetTlsPeer(TlsPeer peer);

  // Takes received bytes and answers every complete frame that output backpressure allows.
  void Consume(std::span<const uint8_t> data);
  // The unsent output as a gather list (views valid until the next call), at most max_bufs.
  std::vector<std::span<const uint8_t>> Output(size_t max_bufs = 64) const;
  size_t output_bytes() const { return out_bytes_; }
  // n bytes of Output() were sent: releases them (unpinning blocks) and produces more.
  void Advance(size_t n);

  // Whether the daemon should read more now (false while closing or over the buffering limits).
  bool WantsInput() const;
  // Close once output_bytes() reaches 0.
  bool closing() const { return closing_; }
  // A frame has begun to arrive but is not complete (for the partial-frame timeout).
  bool mid_frame() const { return in_.size() > in_off_; }
  // Frames handled so far (the daemon restarts its partial-frame clock when this moves).
  uint64_t frames_handled() const { return frames_handled_; }
  bool authenticated() const { return state_ == State::kReady; }
  // The credential the session is bound to (meaningful once authenticated()).
  const Credential& credential() const { return cred_; }

 private:
  enum class State { kExpectHello, kExpectAuth, kReady };
  struct OutItem {
    std::vector<uint8_t> bytes;     // header (+ small body)
    const uint8_t* ext = nullptr;   // payload in a pinned slot
    size_t ext_len = 0;
    std::array<uint8_t, wire::kTagBytes> tag{};  // the frame MAC, when tag_len > 0
    size_t tag_len = 0;
    std::optional<PinnedBlock> pin;
    std::vector<uint8_t> encoded;  // an encoded payload (ext points into it; no pin then)
    size_t sent = 0;
    size_t size() const { return bytes.size() + ext_len + tag_len; }
  };
  struct PendingGet {
    uint64_t request_id = 0;
    uint64_t ns = 0;
    std::vector<Hash128> keys;
    size_t next = 0;
    Geometry geometry;
    wire::Encoding encoding = wire::Encoding::kRaw;  // what its blocks are offered as
  };

  // Parses and answers frames while allowed; continues a pending get first.
  void Pump();
  // Skips the body (and checks the tag) of a frame refused from its header; false: not done yet
  // or the session failed.
  bool Discard();
  void ReleaseBudget();
  void ForgetNamespaces();
  // Checks what the header alone decides (direction, authentication state, handshake size);
  // false: the session failed and closes.
  bool CheckHeader(const wire::FrameHeader& h);
  void Handle(const wire::FrameHeader& h, std::span<const uint8_t> body);
  void HandleHello(const wire::FrameHeader& h, std::span<const uint8_t> body);
  void HandleAuth(const wire::FrameHeader& h, std::span<const uint8_t> body);
  Status HandleLookup(const wire::FrameHeader& h, std::span<const uint8_t> body);
  Status HandleGet(const wire::FrameHeader& h, std::span<const uint8_t> body);
  Status HandlePut(const wire::FrameHeader& h, std::span<const uint8_t> body);
  Status HandleDrop(const wire::FrameHeader& h, std::span<const uint8_t> body);
  // Produces get frames until done or the output is over the high-water mark.
  void ContinueGet();
  // The namespace id of an encoding, registering it when new, once its tenant salt is one the
  // session's credential may use (PermissionDenied otherwise, before anything is registered).
  StatusOr<uint64_t> NamespaceOf(std::string_view encoding);
  Status Require(bool right, const char* what);

  void Send(uint8_t opcode, uint64_t id, std::span<const uint8_t> body, uint8_t flags = wire::kFlagEnd);
  void SendError(uint8_t opcode, uint64_t id, const Status& s);
  // Answers with an error and closes (protocol violation or failed authentication).
  void Fail(uint8_t opcode, uint64_t id, const Status& s);
  void Push(OutItem item);

  Store* store_;
  SessionConfig cfg_;
  SessionCounters* counters_;
  State state_ = State::kExpectHello;
  bool closing_ = false;
  std::array<uint8_t, wire::kNonceBytes> server_nonce_{};
  std::array<uint8_t, wire::kNonceBytes> client_nonce_{};
  wire::FrameMac mac_in_, mac_out_;  // active once AUTH succeeded
  Credential cred_;                  // bound at AUTH (every right when no auth is configured)
  std::optional<TlsPeer> tls_;       // set when the connection runs inside TLS
  std::vector<uint8_t> in_;
  size_t in_off_ = 0;
  size_t need_ = 0;
  uint64_t frames_handled_ = 0;  // bytes the frame at in_off_ needs, once its header is in (0: unknown)
  std::deque<OutItem> out_;
  size_t out_bytes_ = 0;
  std::optional<PendingGet> get_;
  uint64_t reserved_ = 0;  // of cfg_.buffered, for the frame being received
  // A frame refused for the budget: its body bytes still to skip, then its tag, then BUSY.
  struct Skip {
    wire::FrameHeader h;
    uint64_t left = 0;
  };
  std::optional<Skip> skip_;
  // encoding -> namespace id: the namespaces this connection holds in the store (one
  // AcquirePeerNamespace each, released by ForgetNamespaces and when the session ends).
  std::unordered_map<std::string, uint64_t> ns_cache_;
  std::unordered_map<uint64_t, Geometry> ns_geometry_;  // of the namespaces in ns_cache_
  uint8_t codecs_ = 0;              // negotiated at HELLO
  std::vector<uint8_t> decoded_;    // an encoded put's payload, decoded (one block at a time)
  // Buffers of encoded payloads already sent, for the next ones: a fresh block-sized buffer per
  // block would page-fault its way through every payload. At most 4, freed when the output
  // drains with no get streaming.
  std::vector<std::vector<uint8_t>> spare_;
};

// The store's stats JSON as Prometheus text: every numeric leaf becomes kvtier_<path> (booleans
// as 0/1); string leaves become labels of a kvtier_<path>_info 1 line.
std::string StatsToPrometheus(const std::string& stats_json);

}  // namespace kvt
