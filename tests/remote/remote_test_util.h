// Helpers for the loopback tests: a kvtierd Server on an in-process store, client stores pointed
// at it, and raw sockets for speaking (or mangling) the protocol by hand.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "io/unique_fd.h"
#include "io/wire_format.h"
#include "tests/common/test_dir.h"
#include "tools/kvtierd/server.h"

namespace kvt::testing {

inline NamespaceDesc SmallNamespace(const std::string& salt = "tenant-a") {
  NamespaceDesc d;
  d.model = "tiny@1";
  d.kv_dtype = "fp16";
  d.tenant_salt = salt;
  d.layers = 2;
  d.kv_heads = 2;
  d.head_dim = 64;
  d.block_tokens = 16;
  return d;  // 16 KiB blocks
}

inline Options StoreOptions(const std::string& dir, const std::string& remote = "",
                            const std::string& secret = "") {
  Options o;
  EXPECT_TRUE(o.Set("dir", dir).ok());
  EXPECT_TRUE(o.Set("host_bytes", "16MiB").ok());
  EXPECT_TRUE(o.Set("host_slab_bytes", "1MiB").ok());
  EXPECT_TRUE(o.Set("host_mlock", "false").ok());
  if (!remote.empty()) {
    EXPECT_TRUE(o.Set("remote", remote).ok());
  }
  if (!secret.empty()) {
    EXPECT_TRUE(o.Set("auth_secret", secret).ok());
  }
  return o;
}

inline std::unique_ptr<Store> MustOpen(const Options& o) {
  auto s = Store::Open(o);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(s).value() : nullptr;
}

// A kvtierd server over its own store in a temporary directory.
struct Node {
  explicit Node(ServerOptions so = {}, const std::string& host_bytes = "16MiB") {
    Options o = StoreOptions(dir.path() + "/server");
    EXPECT_TRUE(o.Set("host_bytes", host_bytes).ok());
    store = MustOpen(o);
    auto s = Server::Start(store.get(), so);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (s.ok()) server = std::move(s).value();
  }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(server->port()); }
  TestDir dir;
  std::unique_ptr<Store> store;
  std::unique_ptr<Server> server;
};

inline UniqueFd ConnectRaw(uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return UniqueFd();
  return fd;
}

inline bool WriteAll(int fd, const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  while (n > 0) {
    ssize_t w = ::send(fd, b, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    b += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Reads exactly n bytes within timeout_ms; false on EOF, error or timeout.
inline bool ReadAll(int fd, void* p, size_t n, int timeout_ms = 5000) {
  auto* b = static_cast<uint8_t*>(p);
  while (n > 0) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, timeout_ms) <= 0) return false;
    ssize_t r = ::recv(fd, b, n, 0);
    if (r <= 0) return false;
    b += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

// Reads one frame; false when the connection ended or timed out first.
inline bool ReadFrame(int fd, wire::FrameHeader* h, std::vector<uint8_t>* body,
                      int timeout_ms = 5000) {
  uint8_t hb[wire::kHeaderBytes];
  if (!ReadAll(fd, hb, sizeof hb, timeout_ms)) return false;
  if (!wire::DecodeHeader(hb, wire::Limits{}, h).ok()) return false;
  body->resize(h->body_len);
  return h->body_len == 0 || ReadAll(fd, body->data(), h->body_len, timeout_ms);
}

// Whether the peer closed the connection within timeout_ms (reading and discarding what comes).
inline bool ClosedByPeer(int fd, int timeout_ms) {
  uint8_t buf[4096];
  for (;;) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, timeout_ms) <= 0) return false;
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r <= 0) return true;
  }
}

inline std::vector<uint8_t> HelloFrame(uint64_t id = 1) {
  wire::HelloRequest h;
  h.client_nonce.fill(1);
  std::vector<uint8_t> f;
  wire::AppendFrame({static_cast<uint8_t>(wire::Op::kHello), 0, wire::kFlagEnd, id, 0},
                    wire::EncodeHello(h), &f);
  return f;
}

// A listening socket on 127.0.0.1 whose connections a test handles by hand (a misbehaving server).
class FakeServer {
 public:
  explicit FakeServer(std::function<void(int fd)> handler, uint16_t port = 0)
      : handler_(std::move(handler)) {
    fd_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(0, ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a));
    EXPECT_EQ(0, ::listen(fd_.get(), 16));
    socklen_t len = sizeof a;
    ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_.get(), nullptr, nullptr);
        if (c < 0) return;
        UniqueFd conn(c);
        handler_(conn.get());
      }
    });
  }
  ~FakeServer() { Stop(); }
  void Stop() {
    if (!thread_.joinable()) return;
    ::shutdown(fd_.get(), SHUT_RDWR);
    thread_.join();
    fd_.Reset();
  }
  uint16_t port() const { return port_; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  std::function<void(int)> handler_;
  UniqueFd fd_;
  uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace kvt::testing
