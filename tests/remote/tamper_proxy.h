// A man in the middle for the loopback tests: a TCP proxy between a client and a kvtierd node
// that parses the frames going each way and lets a test alter, inject or replay them. It knows the
// protocol but not the secret: after AUTH it forwards each frame's MAC trailer untouched (it cannot
// compute one), which is exactly what an attacker on the path could do.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "remote_test_util.h"

namespace kvt::testing {

enum class Dir { kToServer, kToClient };

// One frame as seen on the wire: header + body (+ tag when the session is authenticated).
struct WireFrame {
  wire::FrameHeader h;
  std::vector<uint8_t> bytes;  // header, body, then the tag if any
  bool tagged = false;
};

class TamperProxy {
 public:
  // Called for every frame of connection `conn` (0, 1, ... in accept order); returns the frames to
  // forward in its place (itself for a plain relay, nothing to drop it, more to inject).
  using Hook = std::function<std::vector<WireFrame>(size_t conn, Dir dir, const WireFrame& f)>;
  // `authenticated`: the node requires AUTH, so frames after it carry tags.
  TamperProxy(uint16_t upstream_port, bool authenticated, Hook hook)
      : upstream_(upstream_port), auth_(authenticated), hook_(std::move(hook)),
        listener_([this](int fd) { Serve(fd); }) {}
  ~TamperProxy() { listener_.Stop(); }
  std::string endpoint() const { return listener_.endpoint(); }
  size_t connections() const { return conns_.load(); }

 private:
  void Serve(int client) {
    const size_t id = conns_.fetch_add(1);
    UniqueFd server = ConnectRaw(upstream_);
    if (!server.valid()) return;
    // Client -> server on a second thread; server -> client here. Either side ending ends both.
    std::thread up([&] {
      Pump(id, Dir::kToServer, client, server.get());
      ::shutdown(server.get(), SHUT_RDWR);
      ::shutdown(client, SHUT_RDWR);
    });
    Pump(id, Dir::kToClient, server.get(), client);
    ::shutdown(server.get(), SHUT_RDWR);
    ::shutdown(client, SHUT_RDWR);
    up.join();
  }

  void Pump(size_t id, Dir dir, int from, int to) {
    bool tagged = false;
    for (;;) {
      WireFrame f;
      f.bytes.resize(wire::kHeaderBytes);
      if (!ReadAll(from, f.bytes.data(), wire::kHeaderBytes, 20000)) return;
      wire::Limits any;
      any.max_body = ~0u;
      if (!wire::DecodeHeader(f.bytes.data(), any, &f.h).ok()) return;
      const size_t rest = f.h.body_len + (tagged ? wire::kTagBytes : 0);
      f.bytes.resize(wire::kHeaderBytes + rest);
      if (rest > 0 && !ReadAll(from, f.bytes.data() + wire::kHeaderBytes, rest, 20000)) return;
      f.tagged = tagged;
      // Tags start after AUTH (client -> server) and after its response (server -> client).
      const uint8_t auth = static_cast<uint8_t>(wire::Op::kAuth);
      if (auth_ && f.h.status == 0 &&
          f.h.opcode == (dir == Dir::kToServer ? auth : (auth | wire::kResponseBit))) {
        tagged = true;
      }
      for (const WireFrame& out : hook_(id, dir, f)) {
        if (!WriteAll(to, out.bytes.data(), out.bytes.size())) return;
      }
    }
  }

  uint16_t upstream_;
  bool auth_;
  Hook hook_;
  std::atomic<size_t> conns_{0};
  FakeServer listener_;
};

// A frame as a sender without the key would build it: the tag, when tagged, is a guess.
inline WireFrame ForgedFrame(wire::Op op, uint64_t id, const std::vector<uint8_t>& body,
                             bool tagged) {
  WireFrame f;
  f.h = {static_cast<uint8_t>(op), 0, wire::kFlagEnd, id, static_cast<uint32_t>(body.size())};
  wire::AppendFrame(f.h, body, &f.bytes);
  if (tagged) f.bytes.resize(f.bytes.size() + wire::kTagBytes, 0);
  f.tagged = tagged;
  return f;
}

}  // namespace kvt::testing
