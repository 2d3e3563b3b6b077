// kvtierd: serves a node's kvtier store to other nodes over TCP (see docs/PROTOCOL.md).
//
//   kvtierd --listen HOST:PORT --dir DIR [--auth-secret-file FILE] [--tenants FILE]
//           [--tls-cert PEM --tls-key PEM --tls-ca PEM] [--insecure-plaintext]
//           [--host-bytes SIZE] [--nvme-bytes SIZE] [--config FILE] [--max-connections N] [--idle-timeout-ms N]
//           [--frame-timeout-ms N] [--threads N] [--port-file FILE] [--compression none|zstd|fp8]
//           [--etcd http://HOST:PORT [--etcd-prefix /kvtier/CLUSTER] [--etcd-ttl S] [--advertise HOST:PORT]]
//   kvtierd --metrics HOST:PORT [--auth-secret-file FILE] [--auth-id ID]     print a node's metrics and exit
// (Loopback throughput of this server next to plain TCP: kvtier-bench's net/ rows.)
//
// --etcd: registers the node under the prefix with a lease kept alive (membership/); clients
// with remote = etcd://HOST:PORT/PREFIX find it. SIGTERM or SIGINT: delete the etcd key first
// (clients stop routing here at once), stop accepting, close connections, flush the store, exit 0.
// Exit 2: usage error, or a bad option value or config file (with a message); 1: any other failure.
#include <csignal>
#include <exception>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "base/units.h"
#include "tools/kvtierd/etcd_register.h"
#include "tools/kvtierd/server.h"

namespace {

int Usage(const std::string& why) {
  if (!why.empty()) std::fprintf(stderr, "kvtierd: %s\n", why.c_str());
  std::fprintf(stderr,
               "usage: kvtierd --listen HOST:PORT --dir DIR [--auth-secret-file FILE]\n"
               "               [--tenants FILE] (per-tenant credentials, JSON: tools/kvtierd/credentials.h)\n"
               "               [--tls-cert PEM --tls-key PEM --tls-ca PEM] [--insecure-plaintext]\n"
               "               [--host-bytes SIZE] [--nvme-bytes SIZE] [--config FILE]\n"
               "               [--max-connections N] [--idle-timeout-ms N] [--frame-timeout-ms N]\n"
               "               [--threads N] [--port-file FILE]\n"
               "               [--max-unauth-connections N] [--handshake-timeout-ms N]\n"
               "               [--max-buffered-bytes N] [--max-namespaces-per-connection N]\n"
               "               [--max-namespaces N] [--compression none|zstd|fp8]\n"
               "               [--etcd http://HOST:PORT [--etcd-prefix /kvtier/CLUSTER]\n"
               "                [--etcd-ttl SECONDS] [--advertise HOST:PORT]]\n"
               "       kvtierd --metrics HOST:PORT [--auth-secret-file FILE] [--auth-id ID]\n");
  return 2;
}

kvt::Status ReadSecret(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return kvt::Status::FromErrno(errno, "open auth secret file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  while (!out->empty() && (out->back() == '\n' || out->back() == '\r')) out->pop_back();
  if (out->empty()) return kvt::Status::InvalidArgument("auth secret file " + path + " is empty");
  return kvt::Status::Ok();
}

int Fail(const kvt::Status& s) {
  std::fprintf(stderr, "kvtierd: %s\n", s.ToString().c_str());
  return 1;
}

// A bad option value or config file: the caller's mistake, exit 2 like a usage error.
int BadConfig(const kvt::Status& s) {
  std::fprintf(stderr, "kvtierd: %s\n", s.ToString().c_str());
  return 2;
}

int Main(int argc, char** argv) {
  std::string listen = "127.0.0.1:7420", dir, secret_file, metrics, config, port_file;
  std::string tenants_file, auth_id;
  kvt::TlsOptions client_tls;
  std::string host_bytes, nvme_bytes;
  kvt::ServerOptions so;
  kvt::KvtierdEtcdOptions eo;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    auto number = [&](auto* out) {
      std::string v;
      if (!value(&v)) return false;
      auto n = kvt::ParseUint(v);
      if (!n.ok()) return false;
      *out = static_cast<std::remove_pointer_t<decltype(out)>>(*n);
      return true;
    };
    uint64_t ms = 0;
    bool ok = true;
    if (a == "--listen") ok = value(&listen);
    else if (a == "--dir") ok = value(&dir);
    else if (a == "--auth-secret-file") ok = value(&secret_file);
    else if (a == "--tenants") ok = value(&tenants_file);
    else if (a == "--tls-cert") ok = value(&so.tls_cert);
    else if (a == "--tls-key") ok = value(&so.tls_key);
    else if (a == "--tls-ca") ok = value(&so.tls_ca);
    else if (a == "--insecure-plaintext") so.insecure_plaintext = true;
    else if (a == "--auth-id") ok = value(&auth_id);
    else if (a == "--host-bytes") ok = value(&host_bytes);
    else if (a == "--nvme-bytes") ok = value(&nvme_bytes);
    else if (a == "--config") ok = value(&config);
    else if (a == "--port-file") ok = value(&port_file);
    else if (a == "--metrics") ok = value(&metrics);
    else if (a == "--max-connections") ok = number(&so.max_connections);
    else if (a == "--threads") ok = number(&so.threads);
    else if (a == "--max-unauth-connections") ok = number(&so.max_unauth_connections);
    else if (a == "--max-buffered-bytes") ok = number(&so.max_buffered_bytes);
    else if (a == "--max-namespaces-per-connection") ok = number(&so.max_namespaces_per_connection);
    else if (a == "--max-namespaces") ok = number(&so.max_namespaces);
    else if (a == "--etcd") ok = value(&eo.url);
    else if (a == "--etcd-prefix") ok = value(&eo.prefix);
    else if (a == "--etcd-ttl") ok = number(&eo.ttl_s) && eo.ttl_s > 0;
    else if (a == "--advertise") ok = value(&eo.advertise);
    else if (a == "--compression") {
      // Codecs accepted from clients that offer them (fp8 only for KVT_NS_LOSSY_OK namespaces).
      std::string v;
      ok = value(&v);
      auto c = kvt::ParseWireCompression(v);
      if (ok && !c.ok()) return Usage(c.status().message());
      if (ok) so.codecs = *c;
    }
    else if (a == "--handshake-timeout-ms") {
      ok = number(&ms);
      so.handshake_timeout = std::chrono::milliseconds(ms);
    }
    else if (a == "--idle-timeout-ms") {
      ok = number(&ms);
      so.idle_timeout = std::chrono::milliseconds(ms);
    } else if (a == "--frame-timeout-ms") {
      ok = number(&ms);
      so.frame_timeout = std::chrono::milliseconds(ms);
    } else if (a == "--help" || a == "-h") {
      return Usage("");
    } else {
      return Usage("unknown argument '" + a + "'");
    }
    if (!ok) return Usage("missing or bad value for " + a);
  }

  std::string secret;
  if (!secret_file.empty()) {
    if (kvt::Status s = ReadSecret(secret_file, &secret); !s.ok()) return Fail(s);
  }

  if (!metrics.empty()) {
    kvt::RemoteOptions ro;
    ro.endpoints = {metrics};
    ro.secret = secret;
    ro.credential = auth_id;
    ro.tls = {so.tls_cert, so.tls_key, so.tls_ca};
    auto r = kvt::RemoteTier::Create(ro);
    if (!r.ok()) return Fail(r.status());
    std::string text;
    if (kvt::Status s = (*r)->Metrics(0, &text); !s.ok()) return Fail(s);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
  }

  if (dir.empty()) return Usage("--dir is required");
  kvt::Options o;
  if (!config.empty()) {
    if (kvt::Status s = o.LoadFile(config); !s.ok()) return BadConfig(s);
  }
  kvt::Status s = o.Set("dir", dir);
  if (s.ok() && !host_bytes.empty()) s = o.Set("host_bytes", host_bytes);
  if (s.ok() && !nvme_bytes.empty()) s = o.Set("nvme_bytes", nvme_bytes);
  if (!s.ok()) return BadConfig(s);
  if (!o.remote.empty() || !o.remote_etcd.empty()) return Fail(kvt::Status::InvalidArgument("kvtierd's own store cannot have a remote tier"));

  // Signals are caught from here on: a SIGTERM while the store opens still shuts down cleanly.
  boost::asio::io_context sig_ctx;
  boost::asio::signal_set signals(sig_ctx, SIGINT, SIGTERM);
  auto store = kvt::Store::Open(o);
  if (!store.ok()) return Fail(store.status());
  so.listen = listen;
  so.auth_secret = secret;
  if (!tenants_file.empty()) {
    auto c = kvt::CredentialSet::Load(tenants_file);
    if (!c.ok()) return Fail(c.status());
    so.credentials = *c;
  }
  auto server = kvt::Server::Start(store->get(), so);
  const bool tls = !so.tls_ca.empty();
  if (!server.ok()) return Fail(server.status());
  std::fprintf(stderr, "kvtierd: serving %s on port %u%s\n", dir.c_str(), (*server)->port(),
               tls ? " (TLS 1.3, mutual certificates)"
               : !secret.empty() || so.credentials ? " (authenticated, PLAINTEXT)"
                                                   : " (no authentication: loopback only)");
  // Registered before the port file appears, so whoever waits for that file finds the node in etcd.
  std::unique_ptr<kvt::etcd::EtcdRegistration> reg;
  if (!eo.url.empty()) {
    auto r = kvt::RegisterWithEtcd(eo, listen, (*server)->port(), o, so.tls_cert);
    if (!r.ok()) {
      (*server)->Stop();
      return r.status().code() == kvt::Code::kInvalidArgument ? BadConfig(r.status()) : Fail(r.status());
    }
    reg = std::move(r).value();
    std::fprintf(stderr, "kvtierd: registered in etcd as %s (lease TTL %lld s)\n", reg->key().c_str(),
                 static_cast<long long>(reg->ttl_s()));
  }
  if (!port_file.empty()) {
    std::ofstream pf(port_file + ".tmp");
    pf << (*server)->port() << "\n";
    pf.close();
    std::rename((port_file + ".tmp").c_str(), port_file.c_str());
  }

  int got = 0;
  signals.async_wait([&](const boost::system::error_code&, int sig) { got = sig; });
  sig_ctx.run();
  std::fprintf(stderr, "kvtierd: signal %d: shutting down\n", got);
  if (reg) {
    // First: clients stop routing here while we drain.
    if (kvt::Status d = reg->Deregister(); !d.ok()) {
      std::fprintf(stderr, "kvtierd: %s (the key goes when its lease expires)\n", d.ToString().c_str());
    }
    reg.reset();
  }
  (*server)->Stop();
  server->reset();
  s = (*store)->Flush();
  store->reset();
  if (!s.ok()) return Fail(s.WithContext("flush at shutdown"));
  std::fprintf(stderr, "kvtierd: store flushed, bye\n");
  return 0;
}

}  // namespace

// Nothing should throw past the store's statuses; if something does, exit with its message
// rather than abort.
int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kvtierd: unexpected error: %s\n", e.what());
    return 1;
  }
}
