#include "bench/loopback_bench.h"

#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include <boost/asio.hpp>

#include "base/units.h"
#include "kernels/kv_sample.h"
#include "tools/kvtierd/server.h"

namespace kvt {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
double GiBs(uint64_t bytes, double s) { return s > 0 ? bytes / s / double(1ull << 30) : 0; }

StatusOr<double> MeasureTcp(uint64_t total) {
  asio::io_context ctx;
  tcp::acceptor acc(ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const uint16_t port = acc.local_endpoint().port();
  boost::system::error_code rec;
  std::thread reader([&] {
    tcp::socket s(ctx);
    acc.accept(s, rec);
    if (rec) return;
    std::vector<uint8_t> buf(4u << 20);
    uint64_t got = 0;
    while (got < 2 * total && !rec) got += s.read_some(asio::buffer(buf), rec);
  });
  tcp::socket c(ctx);
  boost::system::error_code ec;
  c.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
  if (ec) {
    reader.join();
    return Status::Unavailable("loopback connect: " + ec.message());
  }
  c.set_option(tcp::no_delay(true), ec);
  std::vector<uint8_t> chunk(4u << 20, 0x5a);
  auto send = [&] {
    for (uint64_t sent = 0; sent < total && !ec;) {
      const size_t n = std::min<uint64_t>(chunk.size(), total - sent);
      asio::write(c, asio::buffer(chunk.data(), n), ec);
      sent += n;
    }
  };
  send();  // untimed: the socket buffers grow to their steady size, as for the remote figures
  const auto t0 = Clock::now();
  send();
  reader.join();
  const auto t1 = Clock::now();
  if (ec || rec) return Status::IoError("loopback transfer failed");
  return Seconds(t0, t1);
}

StatusOr<std::unique_ptr<Store>> OpenStore(const std::string& dir, uint64_t host_bytes,
                                           const std::string& remote,
                                           const LoopbackBenchOptions* sec = nullptr) {
  Options o;
  KVT_RETURN_IF_ERROR(o.Set("dir", dir));
  KVT_RETURN_IF_ERROR(o.Set("host_bytes", std::to_string(host_bytes)));
  KVT_RETURN_IF_ERROR(o.Set("host_slab_bytes", "64MiB"));
  // Locked (so populated) host memory, as in production: page faults on fresh memory would
  // otherwise dominate the figures on a VM.
  KVT_RETURN_IF_ERROR(o.Set("host_mlock", "true"));
  if (!remote.empty()) {
    KVT_RETURN_IF_ERROR(o.Set("remote", remote));
    KVT_RETURN_IF_ERROR(o.Set("remote_write", "off"));
    if (sec != nullptr) {
      o.auth_secret = sec->auth_secret;
      o.tls_ca = sec->tls_ca;
      o.tls_cert = sec->tls_client_cert;
      o.tls_key = sec->tls_client_key;
      KVT_RETURN_IF_ERROR(o.Set("remote_compression", sec->compression));
    }
  }
  return Store::Open(o);
}

Status MeasureFetch(const LoopbackBenchOptions& o, const std::string& ep, uint64_t host,
                    const NamespaceDesc& d, const std::vector<Hash128>& keys, LoopbackFigures* out);

}  // namespace

std::string LoopbackFigures::ToString() const {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "loopback %s in %llu blocks of %s:\n"
                "  tcp (plain socket)        %7.2f GiB/s  (%.3f s)\n"
                "  remote put                %7.2f GiB/s  (%.3f s)\n"
                "  remote get (pipelined)    %7.2f GiB/s  (%.3f s)\n"
                "  store fetch to host tier  %7.2f GiB/s  (%.3f s)\n",
                FormatBytes(bytes).c_str(), static_cast<unsigned long long>(blocks),
                FormatBytes(block_bytes).c_str(), tcp_gib_s, tcp_s, put_gib_s, put_s, get_gib_s,
                get_s, fetch_gib_s, fetch_s);
  return buf;
}

NamespaceDesc NetBenchNamespace(uint64_t block_bytes, const char* model) {
  NamespaceDesc d;
  d.model = model;
  d.kv_dtype = "fp16";
  d.layers = static_cast<uint32_t>(block_bytes / kNetLayerBytes);
  d.kv_heads = 8;
  d.head_dim = 128;
  d.block_tokens = 16;
  return d;
}

StatusOr<LoopbackFigures> RunLoopbackBench(const LoopbackBenchOptions& o) {
  if (o.block_bytes == 0 || o.block_bytes % kNetLayerBytes != 0) {
    return Status::InvalidArgument("block_bytes must be a positive multiple of 64 KiB");
  }
  LoopbackFigures f;
  f.block_bytes = o.block_bytes;
  f.blocks = std::max<uint64_t>(1, o.total_bytes / o.block_bytes);
  f.bytes = f.blocks * f.block_bytes;

  KVT_ASSIGN_OR_RETURN(f.tcp_s, MeasureTcp(f.bytes));
  f.tcp_gib_s = GiBs(f.bytes, f.tcp_s);

  std::error_code fec;
  std::filesystem::remove_all(o.dir, fec);
  const uint64_t host = f.bytes + (128ull << 20);
  KVT_ASSIGN_OR_RETURN(auto server_store, OpenStore(o.dir + "/server", host, ""));
  KVT_ASSIGN_OR_RETURN(const uint8_t codecs, ParseWireCompression(o.compression));
  ServerOptions so;
  so.threads = o.server_threads;
  so.codecs = codecs;
  so.auth_secret = o.auth_secret;
  if (!o.tls_ca.empty()) {
    so.tls_cert = o.tls_node_cert;
    so.tls_key = o.tls_node_key;
    so.tls_ca = o.tls_ca;
  }
  KVT_ASSIGN_OR_RETURN(auto server, Server::Start(server_store.get(), so));
  const std::string ep = "127.0.0.1:" + std::to_string(server->port());

  NamespaceDesc d = NetBenchNamespace(o.block_bytes, "loopback-bench");
  if (codecs & wire::kCodecFp8) d.flags |= kNsLossyOk;
  const std::string enc = EncodeNamespace(d);
  KeyHasher hasher;
  std::vector<Hash128> keys(f.blocks);
  std::vector<wire::BlockInfo> infos(f.blocks);
  std::vector<uint8_t> payload(f.block_bytes);
  if (codecs != 0) {
    FillKvLike(payload.data(), payload.size(), 42);
  } else {
    for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 131 + 7);
  }
  const uint64_t checksum = Checksum64(payload.data(), payload.size());
  Hash128 parent = hasher.RootKey(d);
  for (uint64_t i = 0; i < f.blocks; ++i) {
    const int32_t tok[16] = {static_cast<int32_t>(i)};
    keys[i] = hasher.BlockKey(parent, tok);
    infos[i] = {keys[i], parent, {}, checksum, static_cast<uint32_t>(f.block_bytes), false};
    parent = keys[i];
  }

  RemoteOptions ro;
  ro.endpoints = {ep};
  ro.secret = o.auth_secret;
  ro.codecs = codecs;
  if (!o.tls_ca.empty()) ro.tls = {o.tls_client_cert, o.tls_client_key, o.tls_ca};
  KVT_ASSIGN_OR_RETURN(auto remote, RemoteTier::Create(ro));
  // Steady state: a first, untimed round of puts makes the server's host slabs; dropped again.
  for (uint64_t i = 0; i < f.blocks; ++i) {
    KVT_RETURN_IF_ERROR(remote->Put(enc, infos[i], payload.data()).WithContext("bench put"));
  }
  KVT_RETURN_IF_ERROR(remote->DropNamespace(enc));
  auto t0 = Clock::now();
  for (uint64_t i = 0; i < f.blocks; ++i) {
    KVT_RETURN_IF_ERROR(remote->Put(enc, infos[i], payload.data()).WithContext("bench put"));
  }
  f.put_s = Seconds(t0, Clock::now());
  f.put_gib_s = GiBs(f.bytes, f.put_s);

  // Scatter into a ring of destinations (as an engine's KV slots), verified on arrival.
  std::vector<std::vector<uint8_t>> dst(8, std::vector<uint8_t>(f.block_bytes, 1));  // touched
  uint64_t got = 0;
  Status bad;
  auto sink = [&](size_t i, RemotePayload* p) {
    Status s = p->Read(dst[i % dst.size()].data());
    if (s.ok()) ++got;
    else if (bad.ok()) bad = s;
  };
  KVT_RETURN_IF_ERROR(remote->Get(enc, keys, sink));  // untimed: the connection's buffers grow
  got = 0;
  const WireCodecCounters& enc_c = server->session_counters().codec;
  const WireCodecCounters& dec_c = remote->counters().codec;
  const uint64_t out0 = enc_c.encode_bytes_out.load(), ens0 = enc_c.encode_ns.load();
  const uint64_t dns0 = dec_c.decode_ns.load();
  t0 = Clock::now();
  KVT_RETURN_IF_ERROR(remote->Get(enc, keys, sink));
  f.get_s = Seconds(t0, Clock::now());
  f.get_gib_s = GiBs(f.bytes, f.get_s);
  KVT_RETURN_IF_ERROR(bad);
  if (got != f.blocks) return Status::Internal("bench get: " + std::to_string(got) + " blocks arrived");
  f.get_wire_bytes = codecs != 0 ? enc_c.encode_bytes_out.load() - out0 : f.bytes;
  f.get_encode_s = (enc_c.encode_ns.load() - ens0) / 1e9;
  f.get_decode_s = (dec_c.decode_ns.load() - dns0) / 1e9;
  if (o.fetch) KVT_RETURN_IF_ERROR(MeasureFetch(o, ep, host, d, keys, &f));
  remote.reset();
  server->Stop();
  server.reset();
  server_store.reset();
  std::filesystem::remove_all(o.dir, fec);
  return f;
}

namespace {

// The store path: a client Store's prefetch of every block into its host tier.
Status MeasureFetch(const LoopbackBenchOptions& o, const std::string& ep, uint64_t host,
                    const NamespaceDesc& d, const std::vector<Hash128>& keys, LoopbackFigures* out) {
  LoopbackFigures& f = *out;
  KVT_ASSIGN_OR_RETURN(auto client, OpenStore(o.dir + "/client", host, ep, &o));
  KVT_ASSIGN_OR_RETURN(uint64_t ns, client->OpenNamespace(d));
  {  // untimed round: the client's host slabs come into being
    KVT_ASSIGN_OR_RETURN(auto warm, client->Prefetch(ns, keys, Tier::kHost));
    KVT_RETURN_IF_ERROR(warm->Wait(-1).WithContext("bench fetch (warm-up)"));
  }
  KVT_RETURN_IF_ERROR(client->DropNamespace(ns));
  const auto t0 = Clock::now();
  KVT_ASSIGN_OR_RETURN(auto ticket, client->Prefetch(ns, keys, Tier::kHost));
  // The prefetch pipeline completes the ticket on its worker: the fetch ends when the wait does.
  KVT_RETURN_IF_ERROR(ticket->Wait(-1).WithContext("bench fetch"));
  f.fetch_s = Seconds(t0, Clock::now());
  f.fetch_gib_s = GiBs(f.bytes, f.fetch_s);
  return Status::Ok();
}

}  // namespace
}  // namespace kvt
