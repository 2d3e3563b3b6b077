// Mutual auth from the client's side: a fake node that cannot prove it knows the shared secret
// (a wrong server MAC, or no authentication at all while the client has a secret) is refused
// with PermissionDenied before any block is asked for, and never delivers a byte.
#include <atomic>

#include "io/wire_auth.h"
#include "remote_test_util.h"
#include "tiers/remote/remote_tier.h"

namespace kvt {
namespace {

enum class Proof { kWrongSecret, kZeros, kNoAuth };

// Answers hello (asking for auth unless kNoAuth), accepts any client proof, answers with a
// server proof made as told, then serves a well-formed block for any request it still gets.
void ImpostorNode(int fd, Proof proof, std::atomic<int>* requests_after_auth) {
  std::array<uint8_t, wire::kNonceBytes> client_nonce{}, server_nonce{};
  (void)wire::RandomNonce(&server_nonce);
  for (;;) {
    wire::FrameHeader h;
    std::vector<uint8_t> body;
    if (!testing::ReadFrame(fd, &h, &body)) return;
    std::vector<uint8_t> out;
    const uint8_t resp = h.opcode | wire::kResponseBit;
    if (h.opcode == static_cast<uint8_t>(wire::Op::kHello)) {
      wire::HelloRequest hello;
      if (!wire::DecodeHello(body, &hello).ok()) return;
      client_nonce = hello.client_nonce;
      wire::HelloResponse hr;
      hr.server_nonce = server_nonce;
      hr.auth_required = proof != Proof::kNoAuth;
      hr.max_body = wire::Limits{}.max_body;
      hr.max_keys = wire::Limits{}.max_keys;
      wire::AppendFrame({resp, 0, wire::kFlagEnd, h.request_id, 0},
                        wire::EncodeHelloResponse(hr), &out);
    } else if (h.opcode == static_cast<uint8_t>(wire::Op::kAuth)) {
      wire::AuthMessage m;  // zeros for kZeros
      if (proof == Proof::kWrongSecret) {
        m.mac = wire::AuthMac("not the secret", wire::AuthRole::kServer, server_nonce,
                              client_nonce);
      }
      wire::AppendFrame({resp, 0, wire::kFlagEnd, h.request_id, 0}, wire::EncodeAuth(m), &out);
    } else {
      requests_after_auth->fetch_add(1);
      return;  // a client that asks for blocks here already failed the test
    }
    if (!testing::WriteAll(fd, out.data(), out.size())) return;
  }
}

class AuthFakeServerTest : public ::testing::TestWithParam<Proof> {};

TEST_P(AuthFakeServerTest, ImpostorIsPermissionDeniedAndServesNothing) {
  std::atomic<int> requests{0};
  testing::FakeServer fake([&](int fd) { ImpostorNode(fd, GetParam(), &requests); });
  RemoteOptions ro;
  ro.endpoints = {fake.endpoint()};
  ro.secret = "the shared secret";
  auto rt = RemoteTier::Create(ro);
  ASSERT_TRUE(rt.ok()) << rt.status().ToString();
  int delivered = 0;
  Status s = (*rt)->Get("ns", std::vector<Hash128>{{1, 2}, {3, 4}},
                        [&](size_t, RemotePayload*) { ++delivered; });
  EXPECT_EQ(s.code(), Code::kPermissionDenied) << s.ToString();
  EXPECT_EQ(delivered, 0);
  std::vector<wire::LookupEntry> entries;
  EXPECT_EQ((*rt)->Lookup("ns", std::vector<Hash128>{{1, 2}}, &entries).code(),
            Code::kPermissionDenied);
  EXPECT_EQ(requests.load(), 0) << "the client sent requests to a node that failed auth";
}

INSTANTIATE_TEST_SUITE_P(Proofs, AuthFakeServerTest,
                         ::testing::Values(Proof::kWrongSecret, Proof::kZeros, Proof::kNoAuth),
                         [](const auto& info) {
                           switch (info.param) {
                             case Proof::kWrongSecret:
                               return "WrongSecret";
                             case Proof::kZeros:
                               return "ZeroMac";
                             case Proof::kNoAuth:
                               return "NoAuth";
                           }
                           return "x";
                         });

}  // namespace
}  // namespace kvt
