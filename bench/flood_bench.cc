#include "bench/flood_bench.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "io/unique_fd.h"
#include "tools/kvtierd/server.h"

namespace kvt {
namespace {

using Clock = std::chrono::steady_clock;

UniqueFd ConnectLoopback(uint16_t port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (!fd.valid() || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    return UniqueFd();
  }
  return fd;
}

// Keeps `n` hostile sockets open until `stop`: silent ones, and every fourth one announcing a
// 64 MiB PUT before HELLO. Sockets the node closed are reopened, at most kReopenPerMs each
// millisecond (2000 connections/s): on loopback the attacker's CPU is the victim's, and an
// unpaced loop would measure the two sharing a small machine, not the node's defences.
constexpr int kReopenPerMs = 2;
void Flood(uint16_t port, int n, const std::atomic<bool>& stop, uint64_t* connects) {
  std::vector<UniqueFd> socks(n);
  std::vector<pollfd> pfds(n);
  uint8_t put[wire::kHeaderBytes];
  wire::EncodeHeader({static_cast<uint8_t>(wire::Op::kPut), 0, wire::kFlagEnd, 1, 64u << 20}, put);
  uint8_t sink[4096];
  bool first = true;
  while (!stop.load(std::memory_order_relaxed)) {
    int opened = 0;
    for (int i = 0; i < n && (first || opened < kReopenPerMs); ++i) {
      if (socks[i].valid()) continue;
      ++opened;
      socks[i] = ConnectLoopback(port);
      ++*connects;
      if (socks[i].valid() && i % 4 == 0) {
        (void)::send(socks[i].get(), put, sizeof put, MSG_NOSIGNAL);
      }
    }
    first = false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // pacing, see kReopenPerMs
    for (int i = 0; i < n; ++i) pfds[i] = {socks[i].get(), POLLIN, 0};
    if (::poll(pfds.data(), pfds.size(), 0) <= 0) continue;
    for (int i = 0; i < n; ++i) {
      if ((pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t r = ::recv(socks[i].get(), sink, sizeof sink, MSG_DONTWAIT);
      if (r <= 0) socks[i] = UniqueFd();  // closed by the node: reopen next pass
    }
  }
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

}  // namespace

StatusOr<FloodFigures> RunFloodBench(const FloodBenchOptions& o) {
  if (o.block_bytes == 0 || o.block_bytes % kNetLayerBytes != 0 || o.gets < 10) {
    return Status::InvalidArgument("flood bench: block_bytes a multiple of 64 KiB, gets >= 10");
  }
  const std::string secret = "flood-bench-secret";
  std::error_code fec;
  std::filesystem::remove_all(o.dir, fec);
  Options so_store;
  KVT_RETURN_IF_ERROR(so_store.Set("dir", o.dir + "/server"));
  KVT_RETURN_IF_ERROR(so_store.Set("host_bytes", std::to_string(64 * o.block_bytes + (64u << 20))));
  KVT_RETURN_IF_ERROR(so_store.Set("host_slab_bytes", "16MiB"));
  KVT_ASSIGN_OR_RETURN(auto store, Store::Open(so_store));
  ServerOptions so;  // the node's default limits
  so.auth_secret = secret;
  KVT_ASSIGN_OR_RETURN(auto server, Server::Start(store.get(), so));
  RemoteOptions ro;
  ro.endpoints = {"127.0.0.1:" + std::to_string(server->port())};
  ro.secret = secret;
  ro.timeouts.connect = ro.timeouts.io = std::chrono::milliseconds(1000);
  KVT_ASSIGN_OR_RETURN(auto client, RemoteTier::Create(ro));

  const NamespaceDesc d = NetBenchNamespace(o.block_bytes, "flood-bench");
  const std::string enc = EncodeNamespace(d);
  std::vector<uint8_t> payload(o.block_bytes);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 29 + 3);
  std::vector<Hash128> keys(64);
  for (uint64_t i = 0; i < keys.size(); ++i) {
    keys[i] = {i + 1, 0xF100D};
    wire::BlockInfo info{keys[i], {}, {}, Checksum64(payload.data(), payload.size()),
                         static_cast<uint32_t>(payload.size()), false};
    KVT_RETURN_IF_ERROR(client->Put(enc, info, payload.data()).WithContext("flood bench put"));
  }
  std::vector<uint8_t> dst(o.block_bytes);
  auto phase = [&](std::vector<double>* lat) -> Status {
    for (int i = 0; i < o.gets; ++i) {
      const Hash128 k = keys[static_cast<size_t>(i) % keys.size()];
      bool got = false;
      const auto t0 = Clock::now();
      Status s = client->Get(enc, std::span<const Hash128>(&k, 1),
                             [&](size_t, RemotePayload* p) { got = p->Read(dst.data()).ok(); });
      lat->push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      // A get that failed or missed under the flood is what the row is about: report it.
      if (!s.ok()) return s.WithContext("flood bench get");
      if (!got) return Status::Unavailable("flood bench: a block was not served");
    }
    return Status::Ok();
  };
  std::vector<double> warm, unloaded, flooded;
  KVT_RETURN_IF_ERROR(phase(&warm));
  KVT_RETURN_IF_ERROR(phase(&unloaded));
  FloodFigures f;
  std::atomic<bool> stop{false};
  const uint64_t evicted0 = server->counters().unauth_evicted.load();
  std::thread flood(Flood, server->port(), o.flood_sockets, std::cref(stop), &f.flood_connects);
  // The flood is in place before the timed gets: the node holds its limit of handshakes.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (server->counters().unauth_active.load() < std::min<uint64_t>(o.flood_sockets, so.max_unauth_connections) &&
         Clock::now() < deadline) {
    std::this_thread::yield();
  }
  Status s = phase(&flooded);
  stop = true;
  flood.join();
  f.evicted = server->counters().unauth_evicted.load() - evicted0;
  KVT_RETURN_IF_ERROR(s);
  f.p50_unloaded_s = Percentile(unloaded, 0.50);
  f.p99_unloaded_s = Percentile(unloaded, 0.99);
  f.p50_flood_s = Percentile(flooded, 0.50);
  f.p99_flood_s = Percentile(flooded, 0.99);
  client.reset();
  server->Stop();
  server.reset();
  store.reset();
  std::filesystem::remove_all(o.dir, fec);
  return f;
}

Status MakeLoopbackCerts(const std::string& dir, LoopbackBenchOptions* o, const std::string& san) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IoError("mkdir " + dir + ": " + ec.message());
  std::ofstream(dir + "/san.ext") << "subjectAltName=" << san << "\n";
  const std::string kEc = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes ";
  std::string sh = "cd '" + dir + "' && exec > openssl.log 2>&1 && openssl req -x509" + kEc +
                   "-keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca && ";
  for (const char* n : {"node", "client"}) {
    const std::string s(n);
    sh += "openssl req" + kEc + "-keyout " + s + ".key -out " + s + ".csr -subj /CN=" + s +
          " && openssl x509 -req -in " + s + ".csr -CA ca.pem -CAkey ca.key -CAcreateserial " +
          "-days 2 -extfile san.ext -out " + s + ".pem && ";
  }
  sh += "true";
  if (std::system(sh.c_str()) != 0) {
    return Status::Unavailable("openssl command line missing or failed (see " + dir +
                               "/openssl.log): no TLS figures");
  }
  o->tls_ca = dir + "/ca.pem";
  o->tls_node_cert = dir + "/node.pem";
  o->tls_node_key = dir + "/node.key";
  o->tls_client_cert = dir + "/client.pem";
  o->tls_client_key = dir + "/client.key";
  return Status::Ok();
}

}  // namespace kvt
