// The remote tier across a link with a real bandwidth limit (tools/wan/wan_link.h: a veth pair
// between two network namespaces, tbf on both ends), next to raw TCP over the same link in the same
// round. For each link rate: a kvtierd Server (in-process, its store holding a 256-block prefix) in
// the server namespace, a client Store in the client namespace.
//   wan/tcp_RATE         one raw TCP socket moving the prefix's bytes (4 MiB writes): the ceiling
//   wan/fetch_RATE       the client store's Prefetch of the whole prefix, tuned for the link:
//                        several connections, batches pipelined, socket buffers of the BDP
//   wan/fetch_1conn_RATE the same with one connection and one request (the untuned default)
//   wan/fetch_zstd_RATE  the tuned fetch with remote_compression=zstd, of a prefix of KV-like
//                        blocks (normal(0, 1) values as fp16, kernels/kv_sample.h)
//   wan/fetch_fp8_RATE   the same with fp8 (lossy), the namespace flagged KVT_NS_LOSSY_OK
//   wan/fetch_tls_RATE   the tuned fetch over TLS 1.3 (mutual certificates made with the openssl
//                        CLI; left out without it), from a second listener of the same node
// Goodput counts payload bytes only. Each row's note gives its goodput as a fraction of the link
// rate and the CPU both ends used per GB moved (one process: kvtierd's threads and the client's).
// Skipped, with a note, where network namespaces cannot be made.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench/bench.h"
#include "bench/flood_bench.h"
#include "io/aligned_buffer.h"
#include "io/unique_fd.h"
#include "kernels/kv_sample.h"
#include "src/store.h"
#include "tools/kvtierd/server.h"
#include "tools/wan/wan_link.h"

namespace kvt::bench {
namespace {

constexpr uint64_t kPrefixBlocks = 256;

double CpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

class WanFixture final : public Fixture {
 public:
  ~WanFixture() override {
    client.reset();
    if (server) server->Stop();
    if (tls_server) tls_server->Stop();
    server.reset();
    tls_server.reset();
    node.reset();
    listen_fd.Reset();
    link.reset();  // last: the namespaces go with it
  }
  std::unique_ptr<WanLink> link;
  std::unique_ptr<Store> node;
  std::unique_ptr<Server> server;
  std::unique_ptr<Server> tls_server;  // the same node over TLS (null without the openssl CLI)
  LoopbackBenchOptions certs;          // its PEM files
  std::unique_ptr<Store> client;
  std::string client_mode;  // the client's settings: "1conn", "tuned", "zstd", "fp8" or "tls"
  UniqueFd listen_fd;  // raw TCP, in the server namespace
  // Raw TCP's buffers, made and touched once: fresh ones each round cost page faults that the
  // engine's pools (populated at open) do not pay.
  AlignedBuffer tcp_send, tcp_recv;
  uint16_t tcp_port = 0;
  std::string dir, endpoint, tls_endpoint, secret = "kvtier-bench-wan";
  uint64_t block = 0, ns_id = 0, round = 0;
  std::vector<Hash128> keys;
};

// The prefix a mode fetches: the pattern blocks, or KV-like ones (lossy allowed for fp8).
NamespaceDesc WanNamespace(uint64_t block, const std::string& mode) {
  if (mode == "zstd" || mode == "fp8") {
    NamespaceDesc d = BenchNamespace(block, mode == "fp8" ? "kvtier-bench-wan-kv8" : "kvtier-bench-wan-kv");
    if (mode == "fp8") d.flags |= kNsLossyOk;
    return d;
  }
  return BenchNamespace(block, "kvtier-bench-wan");
}

Status ListenIn(WanFixture* f) {
  f->listen_fd = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, WanLink::kServerAddr, &a.sin_addr);
  if (::bind(f->listen_fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(f->listen_fd.get(), 4) != 0) {
    return Status::Unavailable("raw TCP listener on the link failed");
  }
  socklen_t len = sizeof a;
  ::getsockname(f->listen_fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  f->tcp_port = ntohs(a.sin_port);
  return Status::Ok();
}

// Raw TCP: a sender thread (accepting in the server namespace) writes `bytes`; this thread, in the
// client namespace, connects and reads them all. Timed from connect to the last byte.
StatusOr<double> RawTcp(WanFixture* f, uint64_t bytes) {
  KVT_ASSIGN_OR_RETURN(auto in, ScopedNetns::Enter(f->link->client_ns()));
  std::thread sender([&] {
    UniqueFd c(::accept4(f->listen_fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!c.valid()) return;
    const AlignedBuffer& buf = f->tcp_send;
    uint64_t left = bytes;
    while (left > 0) {
      const ssize_t w = ::send(c.get(), buf.data(), std::min<uint64_t>(left, buf.size()), MSG_NOSIGNAL);
      if (w <= 0) return;
      left -= static_cast<uint64_t>(w);
    }
  });
  const double t0 = NowSeconds();
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(f->tcp_port);
  ::inet_pton(AF_INET, WanLink::kServerAddr, &a.sin_addr);
  uint64_t got = 0;
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const AlignedBuffer& buf = f->tcp_recv;
    while (got < bytes) {
      const ssize_t r = ::recv(s.get(), buf.data(), buf.size(), 0);
      if (r <= 0) break;
      got += static_cast<uint64_t>(r);
    }
  }
  const double t = NowSeconds() - t0;
  s.Reset();
  sender.join();
  if (got != bytes) return Status::Unavailable("raw TCP over the link moved " + std::to_string(got) + " bytes");
  return t;
}

// The client store of the next run, in the client namespace. Steady state, as in production (a
// host pool locked and populated at start): the store is opened once per setting and warmed by one
// untimed fetch; before each run the prefix is removed from it, so every run fetches it all again
// into slots whose pages exist.
Status PrepareClient(WanFixture* f, const std::string& mode, uint32_t rate_mbit) {
  KVT_ASSIGN_OR_RETURN(auto in, ScopedNetns::Enter(f->link->client_ns()));
  const bool tuned = mode != "1conn";
  if (f->client && f->client_mode == mode) {
    KVT_ASSIGN_OR_RETURN(uint64_t ns, f->client->OpenNamespace(WanNamespace(f->block, mode)));
    for (const Hash128& k : f->keys) (void)f->client->Remove(ns, k);
    return Status::Ok();
  }
  f->client.reset();
  Options o;
  o.dir = f->dir + "/client";
  (void)RemoveTree(o.dir);
  o.host_bytes = (kPrefixBlocks + 16) * f->block;
  o.host_slab_bytes = 16ull << 20;
  o.host_mlock = false;
  o.remote = {mode == "tls" ? f->tls_endpoint : f->endpoint};
  o.auth_secret = f->secret;
  if (mode == "tls") {
    o.tls_cert = f->certs.tls_client_cert;
    o.tls_key = f->certs.tls_client_key;
    o.tls_ca = f->certs.tls_ca;
  }
  o.remote_write = "off";
  if (tuned) {
    o.remote_connections = 4;
    o.remote_batch_blocks = 16;
    o.remote_pipeline_depth = 4;
    // A link's worth of bytes in flight over the 20 ms tbf queue, shared by the connections.
    o.remote_socket_buffer = std::max<uint64_t>(
        256u << 10, BdpBytes(rate_mbit * 1e6, std::chrono::milliseconds(20)) / o.remote_connections);
  }
  if (mode == "zstd" || mode == "fp8") o.remote_compression = mode;
  KVT_ASSIGN_OR_RETURN(f->client, Store::Open(o));
  f->client_mode = mode;
  KVT_ASSIGN_OR_RETURN(uint64_t ns, f->client->OpenNamespace(WanNamespace(f->block, mode)));
  KVT_ASSIGN_OR_RETURN(auto ticket, f->client->Prefetch(ns, f->keys, Tier::kHost));
  KVT_RETURN_IF_ERROR(ticket->Wait(60'000'000));
  ticket.reset();
  for (const Hash128& k : f->keys) (void)f->client->Remove(ns, k);
  return Status::Ok();
}

// The client's codec counters (tiers.remote.codec of its stats).
uint64_t ClientCodec(Store* s, const char* name) {
  return nlohmann::json::parse(s->StatsJson())["tiers"]["remote"]["codec"][name].get<uint64_t>();
}

StatusOr<Sample> Fetch(WanFixture* f, uint32_t rate_mbit) {
  KVT_ASSIGN_OR_RETURN(auto in, ScopedNetns::Enter(f->link->client_ns()));
  KVT_ASSIGN_OR_RETURN(uint64_t ns, f->client->OpenNamespace(WanNamespace(f->block, f->client_mode)));
  const WireCodecCounters& node = f->server->session_counters().codec;
  const uint64_t wire0 = ClientCodec(f->client.get(), "decode_bytes_in");
  const uint64_t dec0 = ClientCodec(f->client.get(), "decode_ns");
  const uint64_t enc0 = node.encode_ns.load();
  const double c0 = CpuSeconds(), t0 = NowSeconds();
  KVT_ASSIGN_OR_RETURN(auto ticket, f->client->Prefetch(ns, f->keys, Tier::kHost));
  Status w = ticket->Wait(60'000'000);
  const double t = NowSeconds() - t0, cpu = CpuSeconds() - c0;
  ticket.reset();
  KVT_RETURN_IF_ERROR(w.WithContext("prefetch across the link"));
  // Every block came across (a miss would make the row meaningless).
  std::vector<Tier> tiers(f->keys.size());
  size_t prefix = 0;
  KVT_RETURN_IF_ERROR(f->client->Lookup(ns, f->keys, &prefix, tiers.data()));
  for (Tier tier : tiers) {
    if (tier != Tier::kHost) return Status::Internal("a block did not arrive across the link");
  }
  Sample s;
  s.seconds = t;
  s.bytes = kPrefixBlocks * f->block;
  s.ops = kPrefixBlocks;
  char d[320];
  int n = std::snprintf(d, sizeof d, "last round: %.2fx the %u Mbit/s link, cpu %.2f s/GB both ends",
                        s.bytes * 8 / t / (rate_mbit * 1e6), rate_mbit, cpu / (s.bytes / 1e9));
  if (f->client_mode == "zstd" || f->client_mode == "fp8") {
    const uint64_t wire = ClientCodec(f->client.get(), "decode_bytes_in") - wire0;
    std::snprintf(d + n, sizeof d - n,
                  "; %.1f%% of the payload on the wire, node encode %.3f s, client decode %.3f s",
                  100.0 * wire / s.bytes, (node.encode_ns.load() - enc0) / 1e9,
                  (ClientCodec(f->client.get(), "decode_ns") - dec0) / 1e9);
  }
  s.detail = d;
  return s;
}

Status AddRate(const Config& c, uint32_t rate_mbit, const std::string& dir, TestSet* set) {
  auto fx = std::make_unique<WanFixture>();
  WanFixture* f = fx.get();
  auto link = WanLink::Create({.rate_mbit = rate_mbit, .delay_ms = 0});
  if (!link.ok()) {
    if (link.status().code() == Code::kUnavailable) {
      std::fprintf(stderr, " [wan/ skipped: %s]", link.status().message().c_str());
      return Status::Ok();
    }
    return link.status();
  }
  f->link = std::move(link).value();
  f->dir = dir + "/wan" + std::to_string(rate_mbit);
  KVT_RETURN_IF_ERROR(MakeDir(f->dir));
  f->block = c.quick ? (64u << 10) : (256u << 10);
  KVT_ASSIGN_OR_RETURN(f->tcp_send, AlignedBuffer::Allocate(4u << 20, false));
  KVT_ASSIGN_OR_RETURN(f->tcp_recv, AlignedBuffer::Allocate(4u << 20, false));
  std::memset(f->tcp_send.data(), 0x5a, f->tcp_send.size());
  std::memset(f->tcp_recv.data(), 0, f->tcp_recv.size());
  {
    KVT_ASSIGN_OR_RETURN(auto in, ScopedNetns::Enter(f->link->server_ns()));
    // Three prefixes: the pattern blocks, and KV-like ones for the zstd and fp8 rows.
    KVT_ASSIGN_OR_RETURN(f->node, OpenBenchStore(f->dir + "/node", (3 * kPrefixBlocks + 16) * f->block,
                                                 16ull << 20, 0, c.segment_bytes, "write_back"));
    ServerOptions so;
    so.codecs = wire::kCodecZstd | wire::kCodecFp8;  // what the compressed rows' client offers
    so.listen = std::string(WanLink::kServerAddr) + ":0";
    so.auth_secret = f->secret;
    so.insecure_plaintext = true;  // the link is the test's own; frames are still MACed
    KVT_ASSIGN_OR_RETURN(f->server, Server::Start(f->node.get(), so));
    const std::string san = std::string("IP:") + WanLink::kServerAddr;
    if (MakeLoopbackCerts(f->dir + "/certs", &f->certs, san).ok()) {
      so.codecs = 0;
      so.insecure_plaintext = false;
      so.tls_cert = f->certs.tls_node_cert;
      so.tls_key = f->certs.tls_node_key;
      so.tls_ca = f->certs.tls_ca;
      KVT_ASSIGN_OR_RETURN(f->tls_server, Server::Start(f->node.get(), so));
      f->tls_endpoint =
          std::string(WanLink::kServerAddr) + ":" + std::to_string(f->tls_server->port());
    }
    KVT_RETURN_IF_ERROR(ListenIn(f));
  }
  f->endpoint = std::string(WanLink::kServerAddr) + ":" + std::to_string(f->server->port());
  KVT_ASSIGN_OR_RETURN(f->ns_id, f->node->OpenNamespace(BenchNamespace(f->block, "kvtier-bench-wan")));
  std::vector<uint8_t> payload(f->block);
  for (uint64_t i = 0; i < kPrefixBlocks; ++i) {
    for (size_t b = 0; b < payload.size(); b += 8) {
      const uint64_t v = (i + 1) * 0x9E3779B97F4A7C15ull ^ b;
      std::memcpy(&payload[b], &v, 8);
    }
    f->keys.push_back(Hash128{i + 1, 0x3a4});
    const Hash128 parent = i > 0 ? f->keys[i - 1] : Hash128{};  // a chain: a prefix
    KVT_RETURN_IF_ERROR(f->node->Put(f->ns_id, f->keys.back(), parent, nullptr, payload.data(),
                                     payload.size()));
  }
  for (const char* mode : {"zstd", "fp8"}) {
    KVT_ASSIGN_OR_RETURN(uint64_t kv_ns, f->node->OpenNamespace(WanNamespace(f->block, mode)));
    for (uint64_t i = 0; i < kPrefixBlocks; ++i) {
      FillKvLike(payload.data(), payload.size(), i + 1);
      KVT_RETURN_IF_ERROR(f->node->Put(kv_ns, f->keys[i], i > 0 ? f->keys[i - 1] : Hash128{}, nullptr,
                                       payload.data(), payload.size()));
    }
  }
  const std::string r = std::to_string(rate_mbit) + "mbit";
  const std::string tcp = "wan/tcp_" + r, tuned = "wan/fetch_" + r, plain = "wan/fetch_1conn_" + r;
  {
    Test t;
    t.path = tcp;
    t.kind = Kind::kLimit;
    t.block_bytes = f->block;
    t.note = "limit: one raw TCP socket across the " + r + " tbf link (" + f->link->settings() + ")";
    t.run = [f, rate_mbit]() -> StatusOr<Sample> {
      const uint64_t bytes = kPrefixBlocks * f->block;
      const double c0 = CpuSeconds();
      KVT_ASSIGN_OR_RETURN(double secs, RawTcp(f, bytes));
      Sample s;
      s.seconds = secs;
      s.bytes = bytes;
      s.ops = kPrefixBlocks;
      char d[128];
      std::snprintf(d, sizeof d, "last round: %.2fx the link, cpu %.2f s/GB both ends",
                    bytes * 8 / secs / (rate_mbit * 1e6), (CpuSeconds() - c0) / (bytes / 1e9));
      s.detail = d;
      return s;
    };
    set->tests.push_back(std::move(t));
  }
  struct Mode {
    std::string name;  // PrepareClient's settings
    const char* note;
  };
  const Mode modes[] = {
      {"tuned", "a client store's Prefetch of a 256-block prefix across the link: 4 connections, "
                "batches of 16 pipelined 4 deep, socket buffers of the BDP"},
      {"1conn", "the same prefetch with one connection and one request"},
      {"zstd", "the tuned prefetch with remote_compression=zstd (node accepts it) of a prefix of "
               "KV-like blocks (normal(0,1) values as fp16); goodput counts decoded payload bytes"},
      {"fp8", "the tuned prefetch with remote_compression=fp8 (lossy; namespace flagged "
              "KVT_NS_LOSSY_OK) of KV-like blocks; goodput counts decoded payload bytes"},
      {"tls", "the tuned prefetch over TLS 1.3 (mutual certificates, AES-128-GCM; no frame MAC "
              "inside TLS)"},
  };
  for (const Mode& m : modes) {
    const std::string& mode = m.name;
    if (mode == "tls" && !f->tls_server) continue;
    Test t;
    const bool is_plain = mode == "1conn";
    t.path = mode == "tuned" ? tuned : is_plain ? plain : "wan/fetch_" + mode + "_" + r;
    t.kind = is_plain ? Kind::kBaseline : Kind::kEngine;
    t.block_bytes = f->block;
    t.limit = is_plain ? "" : tcp;
    if (!is_plain) t.baselines = {mode == "tuned" ? plain : tuned};
    t.note = m.note;
    t.prepare = [f, mode, rate_mbit] { return PrepareClient(f, mode, rate_mbit); };
    t.run = [f, rate_mbit] { return Fetch(f, rate_mbit); };
    set->tests.push_back(std::move(t));
  }
  set->fixtures.push_back(std::move(fx));
  return Status::Ok();
}

}  // namespace

Status AddWanTests(const Config& c, const std::string& dir, TestSet* set) {
  for (uint32_t rate : {1000u, 5000u}) KVT_RETURN_IF_ERROR(AddRate(c, rate, dir, set));
  return Status::Ok();
}

}  // namespace kvt::bench
