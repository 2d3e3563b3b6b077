#include "io/wire_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <string>

namespace kvt::wire {

std::array<uint8_t, kMacBytes> AuthMac(std::string_view secret, AuthRole role,
                                       const std::array<uint8_t, kNonceBytes>& server_nonce,
                                       const std::array<uint8_t, kNonceBytes>& client_nonce) {
  std::string msg = role == AuthRole::kClient ? "kvtier-auth-v1 client" : "kvtier-auth-v1 server";
  msg.append(reinterpret_cast<const char*>(server_nonce.data()), server_nonce.size());
  msg.append(reinterpret_cast<const char*>(client_nonce.data()), client_nonce.size());
  std::array<uint8_t, kMacBytes> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac.data(), &len);
  return mac;
}

bool MacEqual(const std::array<uint8_t, kMacBytes>& a, const std::array<uint8_t, kMacBytes>& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

Status RandomNonce(std::array<uint8_t, kNonceBytes>* out) {
  if (RAND_bytes(out->data(), static_cast<int>(out->size())) != 1) {
    return Status::Internal("OpenSSL RAND_bytes failed to produce a nonce");
  }
  return Status::Ok();
}

}  // namespace kvt::wire
