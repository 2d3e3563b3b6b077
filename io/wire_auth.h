// Challenge/response authentication for kvtierd connections (HMAC-SHA256, OpenSSL).
//
// After the hello exchange both sides hold a client nonce and a server nonce (32 random bytes
// each, fresh per connection). The client proves it knows the shared secret with
//   HMAC-SHA256(secret, "kvtier-auth-v1 client" | server_nonce | client_nonce)
// and the server answers with the same MAC under the label "kvtier-auth-v1 server", so a client
// never takes blocks from a node that does not know the secret either. The server's fresh nonce
// makes a recorded proof useless on another connection; the secret never crosses the wire.
//
// Thread safety: pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "base/status.h"
#include "io/wire_format.h"

namespace kvt::wire {

enum class AuthRole { kClient, kServer };

std::array<uint8_t, kMacBytes> AuthMac(std::string_view secret, AuthRole role,
                                       const std::array<uint8_t, kNonceBytes>& server_nonce,
                                       const std::array<uint8_t, kNonceBytes>& client_nonce);

// Constant-time comparison of two MACs.
bool MacEqual(const std::array<uint8_t, kMacBytes>& a, const std::array<uint8_t, kMacBytes>& b);

// Fresh random bytes from the OpenSSL CSPRNG; Internal when it cannot provide them.
Status RandomNonce(std::array<uint8_t, kNonceBytes>* out);

}  // namespace kvt::wire
