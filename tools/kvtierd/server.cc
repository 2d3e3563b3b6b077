#include "tools/kvtierd/server.h"

#include <mutex>
#include <thread>
#include <unordered_set>

#include <openssl/ssl.h>

#include <nlohmann/json.hpp>

#include <boost/asio.hpp>
#include <boost/asio/ssl/context.hpp>

#include "base/counter.h"
#include "base/log.h"
#include "base/units.h"
#include "io/tls_stream.h"

namespace kvt {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {
}  // namespace

// One io_context per thread, each connection pinned to one of them (round robin): a connection's
// handlers then run on one thread in order, without strands or cross-thread wake-ups.
struct Server::Impl {
  using Guard = asio::executor_work_guard<asio::io_context::executor_type>;
  std::vector<std::unique_ptr<asio::io_context>> ctxs;
  std::vector<Guard> work;
  std::optional<tcp::acceptor> acceptor;  // on ctxs[0]
  size_t next = 0;                        // the context of the next connection
  std::vector<std::thread> threads;
  std::optional<asio::ssl::context> tls;  // set when TLS is on
  std::mutex mu;
  std::unordered_set<std::shared_ptr<Connection>> conns;  // GUARDED_BY(mu)
  bool stopping = false;                                  // GUARDED_BY(mu)
};

// One client. Every handler runs on its io_context's single thread, so the session needs no lock.
class Server::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Server* srv, tcp::socket sock)
      : srv_(srv),
        sock_(std::move(sock)),
        timer_(sock_.get_executor()),
        session_(srv->store_, srv->session_cfg_, &srv->sessions_),
        buf_(256u << 10) {
    if (srv->impl_->tls) tls_.emplace(sock_, srv->impl_->tls->native_handle(), /*server=*/true);
  }

  void Start() {
    last_progress_ = Clock::now();
    ArmTimer();
    if (!tls_) return DoRead();
    // The handshake deadline covers the TLS handshake too (the connection is not authed_ yet).
    tls_->async_handshake([self = shared_from_this()](const error_code& ec) {
                            if (ec) {
                              Add(self->srv_->counters_.tls_handshake_failures);
                              return self->CloseNow();
                            }
                            self->tls_up_ = true;
                            const TlsChannel& ch = self->tls_->channel();
                            self->session_.SetTlsPeer(
                                {ch.PeerSubject(), ch.PeerCommonName(), ch.Binding()});
                            self->DoRead();
                          });
  }

  tcp::socket::executor_type executor() { return sock_.get_executor(); }
  // Whether this connection is still in its handshake and may be evicted for a new one (claims it:
  // true once). From the accepting thread, under the server's mutex.
  bool ClaimForEviction(Clock::time_point* accepted) {
    if (authed_flag_.load(std::memory_order_acquire) || evicting_) return false;
    *accepted = accepted_at_;
    return true;
  }
  void MarkEvicting() { evicting_ = true; }
  Clock::time_point accepted_at_ = Clock::now();  // set before the connection is shared

  // From any thread.
  void Close() {
    asio::post(sock_.get_executor(), [self = shared_from_this()] { self->CloseNow(); });
  }

 private:
  void DoRead() {
    if (reading_ || closed_ || (tls_ && !tls_up_) || !session_.WantsInput()) return;
    reading_ = true;
    auto on_read = [self = shared_from_this()](const error_code& ec, size_t n) {
      self->reading_ = false;
      if (ec) return self->CloseNow();
      const bool was_mid = self->session_.mid_frame();
      const uint64_t frames = self->session_.frames_handled();
      self->session_.Consume({self->buf_.data(), n});
      self->last_progress_ = Clock::now();
      if (!self->authed_ && self->session_.authenticated() && !self->OnAuthenticated()) return;
      // The partial-frame clock starts when a frame begins, not at each byte of it.
      if (self->session_.mid_frame() && (!was_mid || self->session_.frames_handled() != frames)) {
        self->frame_start_ = self->last_progress_;
      }
      self->DoWrite();
      self->DoRead();
    };
    if (tls_) tls_->async_read_some(asio::buffer(buf_), on_read);
    else sock_.async_read_some(asio::buffer(buf_), on_read);
  }

  void DoWrite() {
    if (writing_ || closed_) return;
    if (session_.output_bytes() == 0) {
      if (session_.closing()) CloseNow();
      return;
    }
    writing_ = true;
    std::vector<asio::const_buffer> seq;
    for (auto s : session_.Output()) seq.emplace_back(s.data(), s.size());
    auto on_write = [self = shared_from_this()](const error_code& ec, size_t n) {
      self->writing_ = false;
      if (ec) return self->CloseNow();
      self->last_progress_ = self->last_write_ = Clock::now();
      self->session_.Advance(n);
      self->DoWrite();
      self->DoRead();  // output drained below the limits: read again
    };
    if (tls_) asio::async_write(*tls_, seq, on_write);
    else asio::async_write(sock_, seq, on_write);
  }

  // Moves the connection from the handshake count to the authenticated one; false (closed) when
  // that is over its limit.
  bool OnAuthenticated() {
    authed_ = true;
    authed_flag_.store(true, std::memory_order_release);
    srv_->counters_.unauth_active.fetch_sub(1, std::memory_order_relaxed);
    const uint64_t active = srv_->counters_.active.load(std::memory_order_relaxed);
    const uint64_t unauth = srv_->counters_.unauth_active.load(std::memory_order_relaxed);
    if (active - std::min(active, unauth) > srv_->opts_.max_connections) {
      Add(srv_->counters_.rejected_limit);
      CloseNow();
      return false;
    }
    return true;
  }

  void ArmTimer() {
    const auto period = std::clamp(
        std::min({srv_->opts_.idle_timeout, srv_->opts_.frame_timeout,
                  srv_->opts_.handshake_timeout}) / 4,
        std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
    timer_.expires_after(period);
    timer_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (ec || self->closed_) return;
      const auto now = Clock::now();
      const auto& o = self->srv_->opts_;
      if (!self->authed_ && now - self->accepted_at_ > o.handshake_timeout) {
        Add(self->srv_->counters_.handshake_timeouts);
        return self->CloseNow();
      }
      // Mid-frame with nothing left to send: the server waits on the client's bytes. (Input
      // queued behind a long streamed answer is not a stalled frame; its clock starts when the
      // answer is sent.)
      const auto frame_clock = std::max(self->frame_start_, self->last_write_);
      if (self->session_.mid_frame() && !self->writing_ && self->session_.output_bytes() == 0 &&
          now - frame_clock > o.frame_timeout) {
        Add(self->srv_->counters_.frame_timeouts);
        return self->CloseNow();
      }
      if (self->writing_ && now - self->last_progress_ > o.frame_timeout) {
        Add(self->srv_->counters_.frame_timeouts);  // the client does not read its answers
        return self->CloseNow();
      }
      if (!self->writing_ && !self->session_.mid_frame() &&
          now - self->last_progress_ > o.idle_timeout) {
        Add(self->srv_->counters_.idle_timeouts);
        return self->CloseNow();
      }
      self->ArmTimer();
    });
  }

  void CloseNow() {
    if (closed_) return;
    closed_ = true;
    error_code ignored;
    sock_.shutdown(tcp::socket::shutdown_both, ignored);
    sock_.close(ignored);
    timer_.cancel();
    Add(srv_->counters_.closed);
    if (!authed_) srv_->counters_.unauth_active.fetch_sub(1, std::memory_order_relaxed);
    srv_->counters_.active.fetch_sub(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> l(srv_->impl_->mu);
    srv_->impl_->conns.erase(shared_from_this());
  }

  Server* srv_;
  tcp::socket sock_;
  std::optional<TlsStream> tls_;
  bool tls_up_ = false;
  asio::steady_timer timer_;
  ServerSession session_;
  std::vector<uint8_t> buf_;
  bool reading_ = false, writing_ = false, closed_ = false;
  bool authed_ = false;                  // on the connection's thread
  std::atomic<bool> authed_flag_{false};  // the same, for the accepting thread
  bool evicting_ = false;                // GUARDED_BY(srv_->impl_->mu)
  Clock::time_point last_progress_, frame_start_, last_write_;
};

Status SplitHostPort(const std::string& s, std::string* host, uint16_t* port) {
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) {
    return Status::InvalidArgument("'" + s + "' is not HOST:PORT");
  }
  *host = s.substr(0, colon);
  if (host->size() > 2 && host->front() == '[' && host->back() == ']') {
    *host = host->substr(1, host->size() - 2);
  }
  auto p = ParseUint(s.substr(colon + 1));
  if (!p.ok() || *p > 65535) return Status::InvalidArgument("'" + s + "' has no valid port");
  *port = static_cast<uint16_t>(*p);
  return Status::Ok();
}

Server::Server(Store* store, const ServerOptions& o)
    : store_(store), opts_(o), impl_(std::make_unique<Impl>()) {
  session_cfg_.auth_secret = o.auth_secret;
  session_cfg_.credentials = o.credentials;
  session_cfg_.limits = o.limits;
  session_cfg_.out_high_water = o.out_high_water;
  session_cfg_.buffered = &buffered_;
  session_cfg_.max_buffered = o.max_buffered_bytes;
  session_cfg_.max_namespaces_per_connection = o.max_namespaces_per_connection;
  session_cfg_.max_namespaces = o.max_namespaces;
  session_cfg_.codecs = o.codecs;
  session_cfg_.metrics = [this] { return Metrics(); };
}

Server::~Server() { Stop(); }

StatusOr<std::unique_ptr<Server>> Server::Start(Store* store, const ServerOptions& o) {
  std::string host;
  uint16_t port = 0;
  KVT_RETURN_IF_ERROR(SplitHostPort(o.listen, &host, &port));
  error_code ec;
  const asio::ip::address addr = asio::ip::make_address(host, ec);
  if (ec) {
    return Status::InvalidArgument("listen address '" + host + "' is not an IP address");
  }
  const bool tls = !o.tls_cert.empty() || !o.tls_key.empty() || !o.tls_ca.empty();
  if (!addr.is_loopback() && !tls && !o.insecure_plaintext) {
    return Status::InvalidArgument("refusing to listen on non-loopback " + host +
                                   " without TLS (--tls-cert/--tls-key/--tls-ca); "
                                   "--insecure-plaintext to run without");
  }
  if (!addr.is_loopback() && o.auth_secret.empty() && !o.credentials && !tls) {
    return Status::InvalidArgument("refusing to listen on non-loopback " + host +
                                   " without an auth secret (--auth-secret-file) or tenant "
                                   "credentials (--tenants)");
  }
  if (!addr.is_loopback() && !tls) {
    KVT_LOG(kWarn, "kvtierd: listening on " + o.listen +
                       " in PLAINTEXT (--insecure-plaintext): frames are authenticated, not "
                       "encrypted");
  }
  std::unique_ptr<Server> s(new Server(store, o));
  Impl& im = *s->impl_;
  if (tls) {
    if (o.tls_cert.empty() || o.tls_key.empty() || o.tls_ca.empty()) {
      return Status::InvalidArgument("TLS needs all of --tls-cert, --tls-key and --tls-ca");
    }
    im.tls.emplace(asio::ssl::context::tls_server);
    asio::ssl::context& c = *im.tls;
    TlsChannel::Configure(c.native_handle(), /*server=*/true);
    c.use_certificate_chain_file(o.tls_cert, ec);
    if (!ec) c.use_private_key_file(o.tls_key, asio::ssl::context::pem, ec);
    if (!ec) c.load_verify_file(o.tls_ca, ec);
    if (ec) return Status::InvalidArgument("TLS certificate files: " + ec.message());
    // Mutual: a client without a certificate that chains to the CA is refused in the handshake.
    c.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  }
  for (int i = 0; i < std::max(1, o.threads); ++i) {
    im.ctxs.push_back(std::make_unique<asio::io_context>(1));
    im.work.emplace_back(im.ctxs.back()->get_executor());
  }
  im.acceptor.emplace(*im.ctxs[0]);
  tcp::acceptor& acc = *im.acceptor;
  const tcp::endpoint ep(addr, port);
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::Unavailable("listen on " + o.listen + ": " + ec.message());
  s->port_ = acc.local_endpoint().port();
  s->Accept();
  for (auto& ctx : im.ctxs) im.threads.emplace_back([c = ctx.get()] { c->run(); });
  return s;
}

void Server::Accept() {
  asio::io_context& target = *impl_->ctxs[impl_->next++ % impl_->ctxs.size()];
  impl_->acceptor->async_accept(target, [this](const error_code& ec, tcp::socket sock) {
        if (ec == asio::error::operation_aborted || !impl_->acceptor->is_open()) return;
        if (!ec) {
          Add(counters_.accepted);
          const uint64_t active = counters_.active.load(std::memory_order_relaxed);
          const uint64_t unauth = counters_.unauth_active.load(std::memory_order_relaxed);
          const bool full = active - std::min(active, unauth) >= opts_.max_connections;
          // Room for a new handshake: the oldest connection still in its handshake goes, so
          // silent sockets cannot lock clients out (they would wait for the handshake deadline).
          if (!full && unauth >= opts_.max_unauth_connections) EvictOldestUnauthenticated();
          if (full) {  // no room to authenticate anyway
            // Over the limit: say why (BUSY), then close.
            Add(counters_.rejected_limit);
            auto frame = std::make_shared<std::vector<uint8_t>>();
            const std::string msg = "kvtierd: connection limit reached";
            wire::AppendFrame({wire::kProtocolError, static_cast<uint8_t>(Code::kBusy),
                               wire::kFlagEnd, 0, 0},
                              {reinterpret_cast<const uint8_t*>(msg.data()), msg.size()},
                              frame.get());
            auto s = std::make_shared<tcp::socket>(std::move(sock));
            asio::async_write(*s, asio::buffer(*frame), [s, frame](const error_code&, size_t) {
              error_code ignored;
              s->close(ignored);
            });
          } else {
            error_code ignored;
            sock.set_option(tcp::no_delay(true), ignored);
            auto c = std::make_shared<Connection>(this, std::move(sock));
            bool started = false;
            {
              std::lock_guard<std::mutex> l(impl_->mu);
              if (!impl_->stopping) {
                impl_->conns.insert(c);
                counters_.active.fetch_add(1, std::memory_order_relaxed);
                counters_.unauth_active.fetch_add(1, std::memory_order_relaxed);
                started = true;
              }
            }
            if (started) asio::post(c->executor(), [c] { c->Start(); });
          }
        } else {
          KVT_LOG(kWarn, "kvtierd: accept failed: " + ec.message());
        }
        Accept();
      });
}

void Server::EvictOldestUnauthenticated() {
  std::shared_ptr<Connection> oldest;
  Clock::time_point oldest_at = Clock::time_point::max();
  std::lock_guard<std::mutex> l(impl_->mu);
  for (const auto& c : impl_->conns) {
    Clock::time_point at;
    if (c->ClaimForEviction(&at) && at < oldest_at) {
      oldest = c;
      oldest_at = at;
    }
  }
  if (!oldest) return;
  oldest->MarkEvicting();
  Add(counters_.unauth_evicted);
  oldest->Close();
}

void Server::Stop() {
  if (impl_->work.empty()) return;
  std::vector<std::shared_ptr<Connection>> conns;
  {
    std::lock_guard<std::mutex> l(impl_->mu);
    impl_->stopping = true;
    conns.assign(impl_->conns.begin(), impl_->conns.end());
  }
  asio::post(*impl_->ctxs[0], [this] {
    error_code ignored;
    impl_->acceptor->close(ignored);
  });
  for (auto& c : conns) c->Close();
  conns.clear();
  impl_->work.clear();  // the threads return once every handler has run
  for (auto& t : impl_->threads) t.join();
  impl_->threads.clear();
}

std::string Server::Metrics() const {
  std::string out = StatsToPrometheus(store_->StatsJson());
  auto line = [&](const char* name, const std::atomic<uint64_t>& c) {
    out += std::string("kvtierd_") + name + " " +
           std::to_string(c.load(std::memory_order_relaxed)) + "\n";
  };
  line("connections_accepted", counters_.accepted);
  line("connections_rejected_limit", counters_.rejected_limit);
  line("connections_unauthenticated", counters_.unauth_active);
  line("connections_unauthenticated_evicted", counters_.unauth_evicted);
  line("handshake_timeouts", counters_.handshake_timeouts);
  line("tls_handshake_failures", counters_.tls_handshake_failures);
  line("requests_busy_buffer_budget", sessions_.busy_budget);
  line("requests_namespace_limit", sessions_.namespace_limit);
  line("buffered_request_bytes", buffered_);
  line("connections_active", counters_.active);
  line("connections_closed", counters_.closed);
  line("idle_timeouts", counters_.idle_timeouts);
  line("frame_timeouts", counters_.frame_timeouts);
  line("frames_in", sessions_.frames_in);
  line("frames_out", sessions_.frames_out);
  line("bytes_in", sessions_.bytes_in);
  line("bytes_out", sessions_.bytes_out);
  line("protocol_errors", sessions_.protocol_errors);
  line("request_errors", sessions_.request_errors);
  line("auth_ok", sessions_.auth_ok);
  line("auth_failures", sessions_.auth_failures);
  line("frame_mac_failures", sessions_.frame_mac_failures);
  line("tls_certificate_credentials", sessions_.cert_auth_ok);
  line("tls_certificate_unknown", sessions_.cert_unknown);
  line("requests_denied", sessions_.denied);
  line("lookups", sessions_.lookups);
  line("gets", sessions_.gets);
  line("puts", sessions_.puts);
  line("drops", sessions_.drops);
  line("stats_requests", sessions_.stats);
  line("blocks_sent", sessions_.blocks_sent);
  line("blocks_missing", sessions_.blocks_missing);
  line("blocks_received", sessions_.blocks_received);
  line("compressed_connections", sessions_.compressed_connections);
  // The codec's counters (GET payloads encoded, PUT payloads decoded), as kvtierd_compression_*.
  nlohmann::json cj;
  sessions_.codec.ToJson(&cj);
  for (auto it = cj.begin(); it != cj.end(); ++it) {
    out += "kvtierd_compression_" + it.key() + " " + it.value().dump() + "\n";
  }
  return out;
}

}  // namespace kvt
