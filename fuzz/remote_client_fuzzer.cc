// libFuzzer target: the remote tier's client (RemoteTier over RemoteConn) against a hostile
// kvtierd. A loopback TCP server in this process answers each connection with bytes from the
// input, whatever the client asked; the client runs probe, lookup, get, put, drop namespace and
// metrics through its public API. Whatever arrives must end in a status or a miss: no crash, no
// hang, no allocation past the limits, and no block handed over whose checksum or key is wrong.
//
// Input: byte 0 holds flags (bit 0: the client has an auth secret; bit 1: it offers the payload
// codecs zstd and fp8, and names a small lossy fp16 namespace whose blocks it can decode); the
// rest is split at each
// "#SPLIT#" into what the server sends on its 1st, 2nd, ... connection (the client reconnects
// after a connection breaks). Past the last part the server closes at once. Request ids on a
// connection count from 1 (hello), so the seeds (fuzz_make_seeds) answer in step.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/hash.h"
#include "src/block_key.h"
#include "tiers/remote/remote_tier.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();
}

// One connection at a time: writes its script, half-closes, then reads until the client closes.
class HostileServer {
 public:
  HostileServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    Check(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    Check(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    Check(::listen(fd_, 16) == 0);
    socklen_t len = sizeof a;
    Check(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    std::thread([this] { Loop(); }).detach();  // lives as long as the fuzzing process
  }
  uint16_t port() const { return port_; }
  void SetScripts(std::vector<std::string> scripts) {
    std::lock_guard<std::mutex> l(mu_);
    scripts_ = std::move(scripts);
    next_ = 0;
  }

 private:
  void Loop() {
    for (;;) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string script;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (next_ < scripts_.size()) script = scripts_[next_];
        ++next_;
      }
      size_t at = 0;
      while (at < script.size()) {
        const ssize_t n = ::send(c, script.data() + at, script.size() - at, MSG_NOSIGNAL);
        if (n <= 0) break;
        at += static_cast<size_t>(n);
      }
      ::shutdown(c, SHUT_WR);
      char sink[1 << 16];
      while (::recv(c, sink, sizeof sink, 0) > 0) {
      }
      ::close(c);
    }
  }

  int fd_ = -1;
  uint16_t port_ = 0;
  std::mutex mu_;
  std::vector<std::string> scripts_;  // GUARDED_BY(mu_)
  size_t next_ = 0;                   // GUARDED_BY(mu_)
};

HostileServer& Server() {
  static HostileServer* s = new HostileServer();  // never destroyed: its thread keeps running
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ::setenv("KVT_LOG_LEVEL", "off", 0);  // a failed probe logs a warning per input otherwise
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  std::vector<std::string> scripts;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  constexpr std::string_view kSplit = "#SPLIT#";
  for (;;) {
    const size_t at = rest.find(kSplit);
    scripts.emplace_back(rest.substr(0, at));
    if (at == std::string_view::npos) break;
    rest.remove_prefix(at + kSplit.size());
  }
  HostileServer& server = Server();
  server.SetScripts(std::move(scripts));

  kvt::RemoteOptions o;
  o.endpoints = {"127.0.0.1:" + std::to_string(server.port())};
  o.secret = (flags & 1) ? "fuzz-secret" : "";
  o.timeouts.connect = std::chrono::milliseconds(2000);
  o.timeouts.io = std::chrono::milliseconds(2000);  // only a bug could make the server stall
  o.down_backoff = std::chrono::milliseconds(0);    // every call reconnects: one script each
  const bool codecs = (flags & 2) != 0;
  if (codecs) o.codecs = kvt::wire::kCodecZstd | kvt::wire::kCodecFp8;
  auto tier = kvt::RemoteTier::Create(o);
  Check(tier.ok());
  kvt::RemoteTier& t = **tier;
  // With codecs: 1 layer, 1 head of 8, 4 tokens of fp16 (128-byte blocks), lossy allowed.
  kvt::NamespaceDesc d;
  d.model = "fuzz";
  d.kv_dtype = "fp16";
  d.layers = 1;
  d.kv_heads = 1;
  d.head_dim = 8;
  d.block_tokens = 4;
  d.flags = kvt::kNsLossyOk;
  const std::string ns = codecs ? kvt::EncodeNamespace(d) : "fuzz-namespace";
  const std::vector<kvt::Hash128> keys = {{1, 2}, {3, 4}, {5, 6}};

  (void)t.Probe();

  std::vector<kvt::wire::LookupEntry> found;
  kvt::Status s = t.Lookup(ns, keys, &found);
  Check(found.size() == keys.size());
  for (size_t i = 0; i < keys.size(); ++i) Check(!found[i].present || found[i].info.key == keys[i]);
  (void)s;

  std::vector<uint8_t> buf;
  s = t.Get(ns, keys, [&](size_t index, kvt::RemotePayload* p) {
    Check(index < keys.size());
    Check(p->info().key == keys[index]);
    if (p->info().payload_bytes > (1u << 20)) return;  // as the store does for a wrong size
    buf.assign(p->info().payload_bytes, 0);
    if (p->Read(buf.data()).ok()) {
      // Decoded or not, only bytes matching the meta's checksum come out.
      Check(kvt::Checksum64(buf.data(), buf.size()) == p->info().checksum);
      Check(codecs || p->info().encoding == 0);
    }
  });
  (void)s;

  std::vector<uint8_t> payload(codecs ? 128 : 4096, 0x5a);
  kvt::wire::BlockInfo info;
  info.key = keys[0];
  info.payload_bytes = static_cast<uint32_t>(payload.size());
  info.checksum = kvt::Checksum64(payload.data(), payload.size());
  (void)t.Put(ns, info, payload.data());
  (void)t.DropNamespace(ns);
  std::string text;
  if (t.Metrics(0, &text).ok()) Check(text.size() <= (64u << 20) + 8192);
  return 0;
}
