#include "io/wire_auth.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace kvt::wire {

std::array<uint8_t, kMacBytes> AuthMac(std::string_view secret, AuthRole role,
                                       const std::array<uint8_t, kNonceBytes>& server_nonce,
                                       const std::array<uint8_t, kNonceBytes>& client_nonce,
                                       std::span<const uint8_t> binding) {
  std::string msg = role == AuthRole::kClient ? "kvtier-auth-v1 client" : "kvtier-auth-v1 server";
  msg.append(reinterpret_cast<const char*>(server_nonce.data()), server_nonce.size());
  msg.append(reinterpret_cast<const char*>(client_nonce.data()), client_nonce.size());
  msg.append(reinterpret_cast<const char*>(binding.data()), binding.size());
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

namespace {

std::array<uint8_t, kMacBytes> Hmac(std::span<const uint8_t> key, std::string_view label,
                                    std::span<const uint8_t> a, std::span<const uint8_t> b) {
  std::string msg(label);
  msg.append(reinterpret_cast<const char*>(a.data()), a.size());
  msg.append(reinterpret_cast<const char*>(b.data()), b.size());
  std::array<uint8_t, kMacBytes> mac{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac.data(), &len);
  return mac;
}

EVP_MAC* HmacAlgorithm() {
  static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return mac;
}

}  // namespace

SessionKeys DeriveSessionKeys(std::string_view secret,
                              const std::array<uint8_t, kNonceBytes>& server_nonce,
                              const std::array<uint8_t, kNonceBytes>& client_nonce) {
  const auto prk = Hmac({reinterpret_cast<const uint8_t*>(secret.data()), secret.size()},
                        "kvtier-session-v1", server_nonce, client_nonce);
  SessionKeys k;
  k.client_to_server = Hmac(prk, "kvtier-frame-v1 client->server", {}, {});
  k.server_to_client = Hmac(prk, "kvtier-frame-v1 server->client", {}, {});
  return k;
}

// EVP_MAC_init with a null key re-arms the context with the key set before: one key schedule per
// connection, not per frame.
struct FrameMac::Ctx {
  EVP_MAC_CTX* ctx = nullptr;
  ~Ctx() { EVP_MAC_CTX_free(ctx); }
};

FrameMac::FrameMac() = default;
FrameMac::~FrameMac() = default;
FrameMac::FrameMac(FrameMac&&) noexcept = default;
FrameMac& FrameMac::operator=(FrameMac&&) noexcept = default;

FrameMac::FrameMac(const FrameKey& key) : ctx_(std::make_unique<Ctx>()) {
  EVP_MAC* alg = HmacAlgorithm();
  ctx_->ctx = alg != nullptr ? EVP_MAC_CTX_new(alg) : nullptr;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  // Without HMAC-SHA256 nothing can be authenticated; failing open would be worse than stopping.
  if (ctx_->ctx == nullptr || EVP_MAC_init(ctx_->ctx, key.data(), key.size(), params) != 1) {
    std::abort();
  }
}

void FrameMac::Begin(const uint8_t header[kHeaderBytes]) {
  EVP_MAC_init(ctx_->ctx, nullptr, 0, nullptr);
  uint8_t seq[8];
  for (int i = 0; i < 8; ++i) seq[i] = static_cast<uint8_t>(seq_ >> (8 * i));
  EVP_MAC_update(ctx_->ctx, seq, sizeof seq);
  EVP_MAC_update(ctx_->ctx, header, kHeaderBytes);
}

void FrameMac::Update(std::span<const uint8_t> bytes) {
  if (!bytes.empty()) EVP_MAC_update(ctx_->ctx, bytes.data(), bytes.size());
}

std::array<uint8_t, kTagBytes> FrameMac::Finish() {
  uint8_t full[kMacBytes];
  size_t len = 0;
  EVP_MAC_final(ctx_->ctx, full, &len, sizeof full);
  ++seq_;
  std::array<uint8_t, kTagBytes> tag{};
  std::memcpy(tag.data(), full, kTagBytes);
  return tag;
}

bool FrameMac::Verify(const uint8_t tag[kTagBytes]) {
  const auto want = Finish();
  return CRYPTO_memcmp(want.data(), tag, kTagBytes) == 0;
}

std::array<uint8_t, kTagBytes> FrameMac::Tag(std::span<const uint8_t> header_and_body) {
  Begin(header_and_body.data());
  Update(header_and_body.subspan(kHeaderBytes));
  return Finish();
}

}  // namespace kvt::wire
