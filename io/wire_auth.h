// Challenge/response authentication for kvtierd connections (HMAC-SHA256, OpenSSL), and the
// frame MAC after it (AES-256-GMAC).
//
// After the hello exchange both sides hold a client nonce and a server nonce (32 random bytes
// each, fresh per connection). The client proves it knows the shared secret with
//   HMAC-SHA256(secret, "kvtier-auth-v1 client" | server_nonce | client_nonce)
// and the server answers with the same MAC under the label "kvtier-auth-v1 server", so a client
// never takes blocks from a node that does not know the secret either. The server's fresh nonce
// makes a recorded proof useless on another connection; the secret never crosses the wire.
//
// Frame authentication. A successful AUTH derives two frame keys from the same secret and both
// nonces (HKDF-style: HMAC with the secret, then one HMAC per direction), and from then on every
// frame carries a kTagBytes trailer:
//   tag = AES-256-GMAC(key_dir, iv = 0u32 | seq u64, header | body)
// seq counts the tagged frames of that direction from 0, so a changed, injected, dropped,
// replayed or reordered frame fails its tag, and a frame of another connection (other nonces,
// other keys) too. A tag failure closes the connection: a miss, never bytes.
//
// Thread safety: pure functions; a FrameMac belongs to one direction of one connection.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "base/status.h"
#include "io/wire_format.h"

namespace kvt::wire {

enum class AuthRole { kClient, kServer };

// `binding`: under TLS, the session's exporter value (TlsChannel::Binding), so a proof made on
// one TLS session is worthless on another (a relay through a second session fails); empty
// without TLS.
std::array<uint8_t, kMacBytes> AuthMac(std::string_view secret, AuthRole role,
                                       const std::array<uint8_t, kNonceBytes>& server_nonce,
                                       const std::array<uint8_t, kNonceBytes>& client_nonce,
                                       std::span<const uint8_t> binding = {});

// Constant-time comparison of two MACs.
bool MacEqual(const std::array<uint8_t, kMacBytes>& a, const std::array<uint8_t, kMacBytes>& b);

// Fresh random bytes from the OpenSSL CSPRNG; Internal when it cannot provide them.
Status RandomNonce(std::array<uint8_t, kNonceBytes>* out);

using FrameKey = std::array<uint8_t, kMacBytes>;
struct SessionKeys {
  FrameKey client_to_server{};
  FrameKey server_to_client{};
};
SessionKeys DeriveSessionKeys(std::string_view secret,
                              const std::array<uint8_t, kNonceBytes>& server_nonce,
                              const std::array<uint8_t, kNonceBytes>& client_nonce);

// One direction's running frame MAC. Default-constructed it is inactive (frames carry no tag).
class FrameMac {
 public:
  FrameMac();
  explicit FrameMac(const FrameKey& key);
  ~FrameMac();
  FrameMac(FrameMac&&) noexcept;
  FrameMac& operator=(FrameMac&&) noexcept;

  bool active() const { return ctx_ != nullptr; }
  uint64_t seq() const { return seq_; }
  // A frame: Begin with its header, Update with its body bytes in order, then Finish (the tag to
  // send) or Verify (the tag received, constant time). Either ends the frame and advances seq.
  void Begin(const uint8_t header[kHeaderBytes]);
  void Update(std::span<const uint8_t> bytes);
  std::array<uint8_t, kTagBytes> Finish();
  bool Verify(const uint8_t tag[kTagBytes]);
  // Whole frame in one go.
  std::array<uint8_t, kTagBytes> Tag(std::span<const uint8_t> header_and_body);

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
  uint64_t seq_ = 0;
};

}  // namespace kvt::wire
