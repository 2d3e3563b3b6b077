// Hundreds of malformed, truncated and hostile connections against one server while a well-behaved
// client keeps reading byte-exact blocks from it.
#include <atomic>
#include <random>
#include <thread>

#include "remote_test_util.h"
#include "tests/common/wait.h"
#include "tests/core/test_util.h"

namespace kvt {
namespace {

std::vector<uint8_t> Header(uint8_t op, uint32_t body_len, uint8_t version = wire::kVersion) {
  std::vector<uint8_t> h(wire::kHeaderBytes);
  wire::EncodeHeader({op, 0, wire::kFlagEnd, 1, body_len}, h.data());
  h[4] = version;
  return h;
}

// One hostile byte string of kind k.
std::vector<uint8_t> Garbage(int k, std::mt19937_64& rng) {
  std::vector<uint8_t> out;
  auto hello = testing::HelloFrame();
  auto random = [&](size_t n) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
  };
  auto append = [&](const std::vector<uint8_t>& v) { out.insert(out.end(), v.begin(), v.end()); };
  switch (k % 10) {
    case 0: append(random(1 + rng() % 300)); break;                         // noise
    case 1: append(Header(static_cast<uint8_t>(wire::Op::kPut), 0xFFFFFFFFu)); break;  // huge
    case 2: append(hello); append(Header(0x42, 8)); append(random(8)); break;  // unknown opcode
    case 3: append(hello); append(Header(static_cast<uint8_t>(wire::Op::kGet), 4)); break;  // truncated
    case 4: {  // valid header, body of random bytes for a lookup / get / put / drop
      append(hello);
      const uint8_t op = static_cast<uint8_t>(3 + rng() % 4);
      auto body = random(rng() % 200);
      append(Header(op, static_cast<uint32_t>(body.size())));
      append(body);
      break;
    }
    case 5: append(Header(static_cast<uint8_t>(wire::Op::kGet), 0)); break;  // before hello
    case 6: append(hello); append(Header(0x84, 0)); break;  // a response sent to the server
    case 7: append(Header(1, 32, /*version=*/9)); append(random(32)); break;  // other version
    case 8: {  // get of a huge key count in a small body
      append(hello);
      std::vector<uint8_t> body = {1, 0, 0, 0, 'x', 0xFF, 0xFF, 0xFF, 0x7F};
      append(Header(static_cast<uint8_t>(wire::Op::kGet), static_cast<uint32_t>(body.size())));
      append(body);
      break;
    }
    case 9: append(hello); append(random(1 + rng() % 64)); break;  // hello then noise
  }
  return out;
}

TEST(RemoteMalformed, HostileFramesLeaveOtherClientsServed) {
  ServerOptions so;
  so.frame_timeout = std::chrono::milliseconds(300);
  testing::Node node(so);
  testing::TestDir a_dir;
  auto a = testing::MustOpen(testing::StoreOptions(a_dir.path(), node.endpoint()));
  const uint64_t ns = *a->OpenNamespace(testing::SmallNamespace());
  std::vector<int32_t> toks(64);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = static_cast<int32_t>(i * 7);
  std::vector<Hash128> keys;
  ASSERT_TRUE(a->HashTokens(ns, toks, &keys).ok());
  for (size_t i = 0; i < keys.size(); ++i) {
    auto data = testing::PatternBytes(keys[i].lo, 16384);
    ASSERT_TRUE(a->Put(ns, keys[i], i ? keys[i - 1] : Hash128{}, &toks[i * 16], data.data(),
                       data.size())
                    .ok());
  }

  // The good client: reads every block over and over through the remote tier.
  RemoteOptions ro;
  ro.endpoints = {node.endpoint()};
  auto rt = std::move(RemoteTier::Create(ro)).value();
  const std::string enc = EncodeNamespace(testing::SmallNamespace());
  std::atomic<bool> stop{false};
  std::atomic<int> good{0}, bad{0};
  std::thread client([&] {
    std::vector<uint8_t> buf(16384);
    while (!stop) {
      int got = 0;
      Status s = rt->Get(enc, keys, [&](size_t i, RemotePayload* p) {
        if (p->Read(buf.data()).ok() && buf == testing::PatternBytes(keys[i].lo, buf.size())) ++got;
      });
      (s.ok() && got == static_cast<int>(keys.size()) ? good : bad)++;
    }
  });

  std::mt19937_64 rng(20261122);
  std::vector<UniqueFd> held;  // some truncated connections are left open for the timeout
  constexpr int kHostile = 400;
  for (int i = 0; i < kHostile; ++i) {
    UniqueFd fd = testing::ConnectRaw(node.server->port());
    ASSERT_TRUE(fd.valid());
    auto bytes = Garbage(i, rng);
    (void)testing::WriteAll(fd.get(), bytes.data(), bytes.size());
    if (i % 40 == 3) held.push_back(std::move(fd));  // truncated frame, kept open
    // else: closed at once, often with unread answers (a reset)
  }
  for (UniqueFd& fd : held) EXPECT_TRUE(testing::ClosedByPeer(fd.get(), 3000));
  stop = true;
  client.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(good.load(), 0);
  EXPECT_GT(node.server->session_counters().protocol_errors.load(), 100u);
  EXPECT_GE(node.server->counters().frame_timeouts.load(), held.size());
  // The server accepts asynchronously: a connection the kernel completed may not be counted yet.
  EXPECT_TRUE(testing::WaitUntil([&] {
    return node.server->counters().accepted.load() >= static_cast<uint64_t>(kHostile);
  })) << node.server->counters().accepted.load();

  // And a new client after all that.
  testing::TestDir b_dir;
  auto b = testing::MustOpen(testing::StoreOptions(b_dir.path(), node.endpoint()));
  const uint64_t nsb = *b->OpenNamespace(testing::SmallNamespace());
  std::vector<uint8_t> got(16384);
  ASSERT_TRUE(b->Get(nsb, keys.back(), got.data(), got.size()).ok());
  EXPECT_EQ(got, testing::PatternBytes(keys.back().lo, got.size()));
}

}  // namespace
}  // namespace kvt
