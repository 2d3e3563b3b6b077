// kvtier-wan-example: two clusters joined by a rate-limited link (WanLink: two network namespaces,
// a veth pair, tbf). On the prefill side an etcd and a kvtierd process run; kvtierd registers in
// etcd under /kvtier/prefill, and a prefill node's store (remote = etcd://...) writes a long
// prompt's KV through to it. On the decode side, across the link, a decode node's store finds the
// node through etcd, finds the prompt's prefix there and loads it. The load time is printed next to
// the time the model preset would take to recompute those tokens (kvtier-sim's prefill model:
// GPU preset FLOP/s x MFU / (2 x active params) tokens/s).
//
//   kvtier-wan-example [--rate-mbit 5000] [--model deepseek-v3] [--kv-dtype bf16] [--gpu h100]
//                      [--gpus 1] [--mfu 0.5] [--tokens 8192] [--block-tokens 64]
//                      [--connections 4] [--batch-blocks 4] [--socket-buffer BYTES]
//                      [--kvtierd PATH] [--etcd PATH]
// Needs root (network namespaces); exits 77 with a message where they cannot be made.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "membership/etcd_client.h"
#include "src/store.h"
#include "tools/sim/model.h"
#include "tools/wan/wan_link.h"

namespace kvt {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int Fail(const std::string& m, int rc = 1) {
  std::fprintf(stderr, "kvtier-wan-example: %s\n", m.c_str());
  return rc;
}

int Main(int argc, char** argv) {
  uint32_t rate = 5000, gpus = 1, block_tokens = 64, conns = 4, batch = 4;
  int64_t sockbuf = -1;  // -1: the link's BDP over a 20 ms queue, per connection
  uint64_t tokens = 8192;
  double mfu = 0.5;
  std::string model = "deepseek-v3", dtype = "bf16", gpu = "h100", kvtierd = KVTIERD_PATH;
  std::string etcd_bin = "/usr/bin/etcd";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return Fail("flag " + a + " needs a value (see the header of wan_example.cc)", 2);
    const std::string v = argv[++i];
    if (a == "--rate-mbit") rate = std::stoul(v);
    else if (a == "--model") model = v;
    else if (a == "--kv-dtype") dtype = v;
    else if (a == "--gpu") gpu = v;
    else if (a == "--gpus") gpus = std::stoul(v);
    else if (a == "--mfu") mfu = std::stod(v);
    else if (a == "--tokens") tokens = std::stoull(v);
    else if (a == "--block-tokens") block_tokens = std::stoul(v);
    else if (a == "--connections") conns = std::stoul(v);
    else if (a == "--batch-blocks") batch = std::stoul(v);
    else if (a == "--socket-buffer") sockbuf = std::stoll(v);
    else if (a == "--kvtierd") kvtierd = v;
    else if (a == "--etcd") etcd_bin = v;
    else return Fail("unknown flag " + a, 2);
  }
  auto dt = ParseKvDType(dtype);
  if (!dt.ok()) return Fail(dt.status().ToString(), 2);
  auto spec = sim::ModelFromPreset(model, *dt, block_tokens);
  if (!spec.ok()) return Fail(spec.status().ToString(), 2);
  auto g = sim::FindGpu(gpu);
  if (!g.ok()) return Fail(g.status().ToString(), 2);
  const double prefill_tps = (*g)->dense_bf16_flops * gpus * mfu / (2.0 * spec->active_params);
  const Geometry& geo = spec->geometry;
  NamespaceDesc d;
  d.model = spec->name;
  d.kv_dtype = dtype;
  d.layers = geo.layers;
  d.kv_heads = geo.kv_heads;
  d.head_dim = geo.head_dim;
  d.block_tokens = geo.block_tokens;
  d.flags = geo.mla ? 1 : 0;
  const uint64_t blocks = tokens / block_tokens, block_bytes = geo.BlockBytes();
  if (blocks == 0) return Fail("--tokens must be at least one block", 2);

  auto link = WanLink::Create({.rate_mbit = rate, .delay_ms = 0});
  if (!link.ok()) {
    return Fail(link.status().message(), link.status().code() == Code::kUnavailable ? 77 : 1);
  }
  char tmpl[] = "/tmp/kvtier-wan-example-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return Fail("mkdtemp failed");
  const std::string dir = tmpl, secret_file = dir + "/secret", port_file = dir + "/port";
  std::ofstream(secret_file) << "two-clusters-example-secret\n";
  // Host pools: slabs of 4 blocks, room for the prompt and some; the node's twice that (its slabs
  // are the default 16 MiB, which a 4 MiB block does not divide).
  const uint64_t slab = (block_bytes + 4095) / 4096 * 4096 * 4;
  const uint64_t pool = (blocks / 4 + 2) * slab;
  const std::string host_bytes = std::to_string(2 * pool + (64ull << 20));
  // The prefill cluster's etcd (a real process in the server namespace; its log in the temporary
  // directory), then its kvtierd, registered there under a lease.
  if (::access(etcd_bin.c_str(), X_OK) != 0) {
    return Fail("no etcd at " + etcd_bin + " (Debian: apt-get install etcd-server; or --etcd PATH)", 77);
  }
  const std::string server = WanLink::kServerAddr, etcd_url = "http://" + server + ":2379";
  const std::string etcd_cmd =
      "exec '" + etcd_bin + "' --name prefill --data-dir '" + dir + "/etcd' --listen-client-urls " +
      etcd_url + " --advertise-client-urls " + etcd_url +
      " --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls"
      " http://127.0.0.1:2380 --initial-cluster prefill=http://127.0.0.1:2380 > '" + dir +
      "/etcd.log' 2>&1";
  auto etcd = NetnsProcess::Start((*link)->server_ns(), {"/bin/sh", "-c", etcd_cmd});
  if (!etcd.ok()) return Fail(etcd.status().ToString());
  {  // kvtierd fails to start while etcd does not answer: wait for it (30 s bound)
    auto in = ScopedNetns::Enter((*link)->server_ns());
    if (!in.ok()) return Fail(in.status().ToString());
    etcd::EtcdClient c(etcd::Url{server, 2379}, std::chrono::milliseconds(500));
    bool up = false;
    for (int i = 0; i < 300 && !(up = c.RangePrefix("/").ok()); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!up) return Fail("etcd did not start (its log: " + dir + "/etcd.log)");
  }
  auto node = NetnsProcess::Start(
      (*link)->server_ns(),
      {kvtierd, "--listen", server + ":7070", "--dir", dir + "/node", "--auth-secret-file",
       secret_file, "--insecure-plaintext", "--host-bytes", host_bytes, "--port-file", port_file,
       "--etcd", etcd_url, "--etcd-prefix", "/kvtier/prefill", "--advertise", server + ":7070"});
  if (!node.ok()) return Fail(node.status().ToString());
  // kvtierd registers in etcd before it writes its port file.
  for (int i = 0; i < 3000 && ::access(port_file.c_str(), F_OK) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // a child process: no counter to wait on
  }
  if (::access(port_file.c_str(), F_OK) != 0) {
    return Fail("kvtierd did not start and register in etcd (its log: " + dir + "/etcd.log)");
  }
  const std::string discovery = "etcd://" + server + ":2379/kvtier/prefill";
  auto open = [&](const std::string& sub, bool write) -> StatusOr<std::unique_ptr<Store>> {
    Options o;
    KVT_RETURN_IF_ERROR(o.Set("remote", discovery));  // the nodes come from etcd
    o.dir = dir + "/" + sub;
    o.host_bytes = pool;
    o.host_slab_bytes = slab;
    o.host_mlock = std::getenv("KVT_EXAMPLE_NO_MLOCK") == nullptr;  // populated at open
    o.auth_secret = "two-clusters-example-secret";
    o.remote_write = write ? "write_through" : "off";
    o.remote_connections = conns;
    o.remote_batch_blocks = batch;
    o.remote_socket_buffer =
        sockbuf >= 0 ? static_cast<uint64_t>(sockbuf)
                     : std::max<uint64_t>(256u << 10,
                                          BdpBytes(rate * 1e6, std::chrono::milliseconds(20)) / conns);
    return Store::Open(o);
  };
  std::vector<int32_t> prompt(blocks * block_tokens);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(1000 + i * 7 % 50000);
  auto pattern = [](const Hash128& k, uint64_t n) {
    std::vector<uint8_t> v(n);
    for (uint64_t b = 0; b + 8 <= n; b += 8) {
      const uint64_t x = (k.lo + b) * 0x9E3779B97F4A7C15ull;
      std::memcpy(&v[b], &x, 8);
    }
    return v;
  };
  {  // Prefill side: compute (here: fill) the prompt's KV and store it; it goes to the node.
    auto in = ScopedNetns::Enter((*link)->server_ns());
    if (!in.ok()) return Fail(in.status().ToString());
    auto prefill = open("prefill", true);
    if (!prefill.ok()) return Fail(prefill.status().ToString());
    const uint64_t ns = *(*prefill)->OpenNamespace(d);
    std::vector<Hash128> keys;
    if (!(*prefill)->HashTokens(ns, prompt, &keys).ok()) return Fail("hash");
    for (size_t i = 0; i < keys.size(); ++i) {
      const auto data = pattern(keys[i], block_bytes);
      Status s = (*prefill)->Put(ns, keys[i], i ? keys[i - 1] : Hash128{}, &prompt[i * block_tokens],
                                 data.data(), data.size());
      if (!s.ok()) return Fail("prefill put: " + s.ToString());
    }
  }
  // Decode side, across the link: find the prefix at the node, load it into host memory.
  auto in = ScopedNetns::Enter((*link)->client_ns());
  if (!in.ok()) return Fail(in.status().ToString());
  auto decode = open("decode", false);
  if (!decode.ok()) return Fail(decode.status().ToString());
  const uint64_t ns = *(*decode)->OpenNamespace(d);
  const double t0 = Now();
  std::vector<Hash128> keys;
  size_t prefix = 0;
  Status s = (*decode)->MatchPrefix(ns, prompt, &keys, &prefix, nullptr);
  if (!s.ok()) return Fail("match: " + s.ToString());
  const double t1 = Now();
  auto ticket = (*decode)->Prefetch(ns, std::span(keys).first(prefix), Tier::kHost);
  const double t2 = Now();
  if (!ticket.ok()) return Fail("prefetch: " + ticket.status().ToString());
  s = (*ticket)->Wait(120'000'000);
  const double load_s = Now() - t0;
  std::printf("remote tier: %s\n",
              nlohmann::json::parse((*decode)->StatsJson())["tiers"]["remote"].dump().c_str());
  std::printf("timing: prefix lookup %.3f s, fetch %.3f s, prefetch wait %.3f s\n", t1 - t0, t2 - t1,
              t0 + load_s - t2);
  ticket->reset();
  if (!s.ok()) return Fail("load: " + s.ToString());
  size_t exact = 0;
  std::vector<uint8_t> buf(block_bytes);
  for (size_t i = 0; i < prefix; ++i) {
    if ((*decode)->Get(ns, keys[i], buf.data(), buf.size()).ok() && buf == pattern(keys[i], block_bytes)) {
      ++exact;
    }
  }
  const double recompute_s = static_cast<double>(prefix * block_tokens) / prefill_tps;
  const double bytes = static_cast<double>(prefix * block_bytes);
  std::printf("link: %s (%s)\n", (*link)->settings().c_str(), "veth pair, tbf both ends");
  std::printf("prompt: %llu tokens of %s %s, %llu blocks of %llu KiB, %.1f MiB of KV\n",
              static_cast<unsigned long long>(prefix * block_tokens), spec->name.c_str(),
              dtype.c_str(), static_cast<unsigned long long>(prefix),
              static_cast<unsigned long long>(block_bytes >> 10), bytes / (1 << 20));
  std::printf("decode node: found the node through %s, %zu of %llu blocks there, %zu byte-exact "
              "after the load\n",
              discovery.c_str(), prefix, static_cast<unsigned long long>(blocks), exact);
  std::printf("load across the link: %.3f s (%.2f Gbit/s goodput, %.2fx the link)\n", load_s,
              bytes * 8 / load_s / 1e9, bytes * 8 / load_s / (rate * 1e6));
  std::printf("recompute on %ux %s at MFU %.2f (%.0f tokens/s): %.3f s\n", gpus, (*g)->name, mfu,
              prefill_tps, recompute_s);
  std::printf("=> %s is faster by %.2fx\n", load_s < recompute_s ? "loading" : "recomputing",
              load_s < recompute_s ? recompute_s / load_s : load_s / recompute_s);
  decode->reset();
  in->reset();
  node->reset();  // SIGTERM (kvtierd deletes its etcd key), reaped
  etcd->reset();
  std::string rm = "rm -rf '" + dir + "'";
  (void)std::system(rm.c_str());
  return exact == prefix && prefix == blocks ? 0 : 1;
}

}  // namespace
}  // namespace kvt

int main(int argc, char** argv) {
  try {
    return kvt::Main(argc, argv);
  } catch (const std::exception& e) {  // std::stoul and friends on a malformed flag value
    return kvt::Fail(std::string("a flag's value is not a number (") + e.what() + ")", 2);
  }
}
