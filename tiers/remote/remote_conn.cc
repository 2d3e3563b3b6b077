#include "tiers/remote/remote_conn.h"

#include <cstring>
#include <functional>

#include <openssl/ssl.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl/context.hpp>

#include "io/tls_stream.h"
#include "io/wire_auth.h"

namespace kvt {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

struct RemoteConn::Impl {
  asio::io_context ctx;
  tcp::socket sock{ctx};
  std::optional<asio::ssl::context> tls_ctx;
  std::optional<TlsStream> tls;  // over sock, when TLS is on

  template <typename Bufs, typename Handler>
  void AsyncWrite(const Bufs& b, Handler h) {
    if (tls) asio::async_write(*tls, b, h);
    else asio::async_write(sock, b, h);
  }
  template <typename Bufs, typename Cond, typename Handler>
  void AsyncRead(const Bufs& b, Cond c, Handler h) {
    if (tls) asio::async_read(*tls, b, c, h);
    else asio::async_read(sock, b, c, h);
  }

  // Starts an async operation and runs the context until it completes or `timeout` passes; a
  // timed-out operation is cancelled by closing the socket.
  // On timeout the operation is cancelled by closing the socket (or by `cancel`, when given).
  template <typename Start>
  error_code RunFor(std::chrono::milliseconds timeout, Start start, size_t* done = nullptr,
                    const std::function<void()>& cancel = nullptr) {
    error_code result = asio::error::would_block;
    size_t n = 0;
    start([&](const error_code& ec, size_t bytes = 0) {
      result = ec;
      n = bytes;
    });
    ctx.restart();
    ctx.run_for(timeout);
    if (result == asio::error::would_block) {
      error_code ignored;
      sock.close(ignored);
      if (cancel) cancel();
      ctx.restart();
      ctx.run();  // lets the cancelled handler finish before `result` goes out of scope
      result = asio::error::timed_out;
    }
    if (done != nullptr) *done = n;
    return result;
  }

  Status StartTls(const std::string& host, const TlsOptions& o, std::chrono::milliseconds timeout);
};

namespace {

Status FromAsio(const error_code& ec, const std::string& what) {
  if (ec == asio::error::timed_out) return Status::Timeout(what + ": timed out");
  return Status::Unavailable(what + ": " + ec.message());
}

}  // namespace

Status RemoteConn::Impl::StartTls(const std::string& host, const TlsOptions& o,
                                  std::chrono::milliseconds timeout) {
  error_code ec;
  tls_ctx.emplace(asio::ssl::context::tls_client);
  TlsChannel::Configure(tls_ctx->native_handle(), /*server=*/false);
  tls_ctx->load_verify_file(o.ca, ec);
  if (ec) return Status::InvalidArgument("tls_ca " + o.ca + ": " + ec.message());
  if (!o.cert.empty()) {
    tls_ctx->use_certificate_chain_file(o.cert, ec);
    if (ec) return Status::InvalidArgument("tls_cert " + o.cert + ": " + ec.message());
    tls_ctx->use_private_key_file(o.key.empty() ? o.cert : o.key, asio::ssl::context::pem, ec);
    if (ec) return Status::InvalidArgument("tls_key " + o.key + ": " + ec.message());
  }
  // The node's certificate must chain to the CA and name `host` (TlsChannel sets the check).
  tls_ctx->set_verify_mode(asio::ssl::verify_peer);
  tls.emplace(sock, tls_ctx->native_handle(), /*server=*/false, host);
  ec = RunFor(timeout, [&](auto handler) {
    tls->async_handshake([handler](const error_code& e) { handler(e); });
  });
  if (ec) return Status::Unavailable("handshake failed: " + ec.message());
  return Status::Ok();
}

RemoteConn::RemoteConn(std::unique_ptr<Impl> impl, std::string endpoint, RemoteTimeouts t)
    : impl_(std::move(impl)), endpoint_(std::move(endpoint)), timeouts_(t) {}

RemoteConn::~RemoteConn() = default;

StatusOr<std::unique_ptr<RemoteConn>> RemoteConn::Connect(const std::string& endpoint,
                                                          const std::string& secret,
                                                          const RemoteTimeouts& t,
                                                          const std::string& credential,
                                                          const TlsOptions& tls,
                                                          size_t socket_buffer, uint8_t codecs) {
  auto c = ConnectOnce(endpoint, secret, t, credential, tls, socket_buffer, codecs);
  // A node from before compression answers the longer hello with INVALID_ARGUMENT and closes:
  // the same connection again, plain. (A node that knows the field never refuses it.)
  if (codecs != 0 && !c.ok() && c.status().code() == Code::kInvalidArgument &&
      c.status().message().find("hello body") != std::string::npos) {
    c = ConnectOnce(endpoint, secret, t, credential, tls, socket_buffer, 0);
    if (c.ok()) (*c)->fallback_ = true;
  }
  return c;
}

StatusOr<std::unique_ptr<RemoteConn>> RemoteConn::ConnectOnce(const std::string& endpoint,
                                                              const std::string& secret,
                                                              const RemoteTimeouts& t,
                                                              const std::string& credential,
                                                              const TlsOptions& tls,
                                                              size_t socket_buffer,
                                                              uint8_t codecs) {
  const size_t colon = endpoint.rfind(':');
  if (colon == std::string::npos) {
    return Status::InvalidArgument("remote endpoint '" + endpoint + "' is not host:port");
  }
  auto impl = std::make_unique<Impl>();
  tcp::resolver resolver(impl->ctx);
  tcp::resolver::results_type results;
  std::string host = endpoint.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  error_code ec = impl->RunFor(t.connect, [&](auto handler) {
    resolver.async_resolve(host, endpoint.substr(colon + 1),
                           [&, handler](const error_code& e, tcp::resolver::results_type r) {
                             results = std::move(r);
                             handler(e);
                           });
  }, nullptr, [&] { resolver.cancel(); });
  if (ec) return FromAsio(ec, "resolve " + endpoint);
  if (socket_buffer == 0) {
    ec = impl->RunFor(t.connect, [&](auto handler) {
      asio::async_connect(impl->sock, results,
                          [handler](const error_code& e, const tcp::endpoint&) { handler(e); });
    });
  } else {
    // Buffers must be sized before the connect (the window scale is fixed by the SYN), so each
    // address gets a socket opened and sized here.
    ec = asio::error::host_not_found;
    for (const auto& r : results) {
      error_code ignored;
      impl->sock.close(ignored);
      impl->sock.open(r.endpoint().protocol(), ec);
      if (ec) continue;
      const int bytes = static_cast<int>(std::min<size_t>(socket_buffer, INT32_MAX));
      impl->sock.set_option(asio::socket_base::send_buffer_size(bytes), ignored);
      impl->sock.set_option(asio::socket_base::receive_buffer_size(bytes), ignored);
      ec = impl->RunFor(t.connect, [&](auto handler) {
        impl->sock.async_connect(r.endpoint(), [handler](const error_code& e) { handler(e); });
      });
      if (!ec) break;
    }
  }
  if (ec) return FromAsio(ec, "connect to " + endpoint);
  impl->sock.set_option(tcp::no_delay(true), ec);
  if (tls.enabled()) {
    KVT_RETURN_IF_ERROR(impl->StartTls(host, tls, t.connect).WithContext("TLS to " + endpoint));
  }
  std::unique_ptr<RemoteConn> c(new RemoteConn(std::move(impl), endpoint, t));
  KVT_RETURN_IF_ERROR(c->Handshake(secret, credential, codecs).WithContext("kvtierd " + endpoint));
  return c;
}

Status RemoteConn::Handshake(const std::string& secret, const std::string& credential,
                             uint8_t codecs) {
  wire::HelloRequest hello;
  hello.codecs = codecs;
  KVT_RETURN_IF_ERROR(wire::RandomNonce(&hello.client_nonce));
  std::vector<uint8_t> frame;
  const uint64_t id = NextRequestId();
  wire::AppendFrame({static_cast<uint8_t>(wire::Op::kHello), 0, wire::kFlagEnd, id, 0},
                    wire::EncodeHello(hello), &frame);
  std::span<const uint8_t> bufs[] = {frame};
  KVT_RETURN_IF_ERROR(Write(bufs));
  wire::FrameHeader h;
  std::vector<uint8_t> body;
  KVT_RETURN_IF_ERROR(ReadHeader(&h));
  if (h.status != 0) return ReadErrorResponse(h);
  KVT_RETURN_IF_ERROR(ReadBody(h, &body));
  wire::HelloResponse hr;
  KVT_RETURN_IF_ERROR(wire::DecodeHelloResponse(body, &hr));
  if ((hr.codecs & ~codecs) != 0) {
    broken_ = true;
    return Status::Corruption("the server accepted codecs 0x" + std::to_string(hr.codecs) +
                              " that were not offered");
  }
  codecs_ = hr.codecs;
  // The server's limits, never above our own defaults: they bound what we allocate.
  limits_.max_body = std::min(limits_.max_body, hr.max_body);
  limits_.max_keys = std::min(limits_.max_keys, hr.max_keys);
  if (!hr.auth_required && secret.empty()) return Status::Ok();
  if (secret.empty()) {
    return Status::PermissionDenied("the server requires authentication and no auth_secret is set");
  }
  // With a secret we always authenticate, even to a server that does not ask: a node without
  // the secret must not be able to serve us blocks. Under TLS the node proved itself with its
  // certificate, and may have taken ours as the credential.
  if (!hr.auth_required) {
    if (impl_->tls) return Status::Ok();
    return Status::PermissionDenied("the server does not authenticate, but auth_secret is set");
  }
  // Under TLS the proofs are bound to this TLS session (its exporter value).
  std::array<uint8_t, 32> binding{};
  if (impl_->tls) binding = impl_->tls->channel().Binding();
  const std::span<const uint8_t> bound =
      impl_->tls ? std::span<const uint8_t>(binding) : std::span<const uint8_t>();
  wire::AuthMessage am;
  am.mac = wire::AuthMac(secret, wire::AuthRole::kClient, hr.server_nonce, hello.client_nonce,
                         bound);
  am.credential = credential;
  frame.clear();
  wire::AppendFrame({static_cast<uint8_t>(wire::Op::kAuth), 0, wire::kFlagEnd, NextRequestId(), 0},
                    wire::EncodeAuth(am), &frame);
  std::span<const uint8_t> abufs[] = {frame};
  KVT_RETURN_IF_ERROR(Write(abufs));
  KVT_RETURN_IF_ERROR(ReadHeader(&h));
  if (h.status != 0) return ReadErrorResponse(h);
  KVT_RETURN_IF_ERROR(ReadBody(h, &body));
  wire::AuthMessage server_proof;
  KVT_RETURN_IF_ERROR(wire::DecodeAuth(body, &server_proof));
  const auto want = wire::AuthMac(secret, wire::AuthRole::kServer, hr.server_nonce,
                                  hello.client_nonce, bound);
  if (!wire::MacEqual(want, server_proof.mac)) {
    broken_ = true;
    return Status::PermissionDenied("the server could not prove it knows the shared secret");
  }
  // Inside TLS every record is authenticated already: no frame MAC (docs/decisions.md).
  if (impl_->tls) return Status::Ok();
  const wire::SessionKeys keys =
      wire::DeriveSessionKeys(secret, hr.server_nonce, hello.client_nonce);
  mac_out_ = wire::FrameMac(keys.client_to_server);
  mac_in_ = wire::FrameMac(keys.server_to_client);
  return Status::Ok();
}

Status RemoteConn::Write(std::span<const std::span<const uint8_t>> bufs) {
  if (broken_) return Status::Unavailable("connection to " + endpoint_ + " is broken");
  std::vector<asio::const_buffer> seq;
  seq.reserve(bufs.size());
  size_t total = 0;
  for (const auto& b : bufs) {
    seq.emplace_back(b.data(), b.size());
    total += b.size();
  }
  std::vector<std::array<uint8_t, wire::kTagBytes>> tags;
  if (mac_out_.active()) {
    // Walk the frames across the buffers: MAC each, and put its tag right after its last byte.
    tags.reserve(bufs.size());
    seq.clear();
    uint8_t hdr[wire::kHeaderBytes];
    size_t hdr_have = 0;
    uint64_t body_left = 0;
    bool in_body = false;
    for (const auto& b : bufs) {
      std::span<const uint8_t> rest = b;
      while (!rest.empty()) {
        size_t take;
        if (!in_body) {
          take = std::min(rest.size(), wire::kHeaderBytes - hdr_have);
          std::memcpy(hdr + hdr_have, rest.data(), take);
          hdr_have += take;
          if (hdr_have == wire::kHeaderBytes) {
            mac_out_.Begin(hdr);
            body_left = uint64_t{hdr[16]} | uint64_t{hdr[17]} << 8 | uint64_t{hdr[18]} << 16 |
                        uint64_t{hdr[19]} << 24;
            in_body = true;
            hdr_have = 0;
          }
        } else {
          take = static_cast<size_t>(std::min<uint64_t>(rest.size(), body_left));
          mac_out_.Update(rest.first(take));
          body_left -= take;
        }
        seq.emplace_back(rest.data(), take);
        rest = rest.subspan(take);
        if (in_body && body_left == 0) {
          tags.push_back(mac_out_.Finish());
          seq.emplace_back(tags.back().data(), tags.back().size());
          total += wire::kTagBytes;
          in_body = false;
        }
      }
    }
    if (in_body || hdr_have != 0) {
      broken_ = true;
      return Status::Internal("RemoteConn::Write given a partial frame");
    }
  }
  size_t done = 0;
  error_code ec = impl_->RunFor(
      timeouts_.io, [&](auto handler) { impl_->AsyncWrite(seq, handler); }, &done);
  bytes_out_ += done;
  if (ec || done != total) {
    broken_ = true;
    return FromAsio(ec, "write to " + endpoint_);
  }
  return Status::Ok();
}

Status RemoteConn::ReadExact(void* dst, size_t n) {
  if (!mac_in_.active()) return ReadRaw(dst, n);
  if (n > body_left_) {
    broken_ = true;
    return Status::Internal("read of " + std::to_string(n) + " bytes past the frame body");
  }
  KVT_RETURN_IF_ERROR(ReadRaw(dst, n));
  mac_in_.Update({static_cast<const uint8_t*>(dst), n});
  body_left_ -= n;
  return body_left_ == 0 ? VerifyTag() : Status::Ok();
}

Status RemoteConn::VerifyTag() {
  uint8_t tag[wire::kTagBytes];
  KVT_RETURN_IF_ERROR(ReadRaw(tag, sizeof tag));
  if (!mac_in_.Verify(tag)) {
    broken_ = tampered_ = true;
    return Status::Corruption("from " + endpoint_ +
                              ": frame authentication failed (altered, injected, replayed or "
                              "reordered frame)");
  }
  return Status::Ok();
}

Status RemoteConn::ReadRaw(void* dst, size_t n) {
  if (broken_) return Status::Unavailable("connection to " + endpoint_ + " is broken");
  auto* out = static_cast<uint8_t*>(dst);
  const size_t have = std::min(n, rlen_ - rpos_);
  if (have > 0) std::memcpy(out, rbuf_.data() + rpos_, have);
  rpos_ += have;
  out += have;
  n -= have;
  if (n == 0) return Status::Ok();
  rpos_ = rlen_ = 0;  // the read-ahead buffer is empty from here
  size_t done = 0;
  error_code ec;
  if (n >= kDirectRead) {
    // Payloads go straight to their destination (the host slot), never through the buffer.
    ec = impl_->RunFor(
        timeouts_.io,
        [&](auto handler) {
          impl_->AsyncRead(asio::buffer(out, n), asio::transfer_all(), handler);
        },
        &done);
  } else {
    // Small reads (frame headers, block heads) read ahead: one read usually brings a header and
    // its head, or several small frames.
    if (rbuf_.empty()) rbuf_.resize(kReadAhead);
    ec = impl_->RunFor(
        timeouts_.io,
        [&](auto handler) {
          impl_->AsyncRead(asio::buffer(rbuf_), asio::transfer_at_least(n), handler);
        },
        &done);
    if (done >= n) {
      std::memcpy(out, rbuf_.data(), n);
      rpos_ = n;
      rlen_ = done;
      ec = {};  // an error after the bytes we need shows up on the next read
    }
  }
  bytes_in_ += done;
  if (ec || done < n) {
    broken_ = true;
    return FromAsio(ec ? ec : asio::error::eof, "read from " + endpoint_);
  }
  return Status::Ok();
}

Status RemoteConn::ReadHeader(wire::FrameHeader* h) {
  uint8_t buf[wire::kHeaderBytes];
  if (body_left_ != 0) {
    broken_ = true;
    return Status::Internal("frame header read before the previous body was read");
  }
  KVT_RETURN_IF_ERROR(ReadRaw(buf, sizeof buf));
  Status s = wire::DecodeHeader(buf, limits_, h);
  if (!s.ok()) {
    broken_ = true;
    return Status::Corruption("from " + endpoint_ + ": " + s.message());
  }
  if (mac_in_.active()) {
    mac_in_.Begin(buf);
    body_left_ = h->body_len;
    // Nothing of a frame is acted on before its tag checks: an empty body is verified now.
    if (body_left_ == 0) KVT_RETURN_IF_ERROR(VerifyTag());
  }
  if ((h->opcode & wire::kResponseBit) == 0) {
    broken_ = true;
    return Status::Corruption("from " + endpoint_ + ": a request frame where a response belongs");
  }
  return Status::Ok();
}

Status RemoteConn::ReadBody(const wire::FrameHeader& h, std::vector<uint8_t>* out) {
  out->resize(h.body_len);  // bounded: DecodeHeader checked body_len against limits_.max_body
  return h.body_len == 0 ? Status::Ok() : ReadExact(out->data(), h.body_len);
}

Status RemoteConn::ReadErrorResponse(const wire::FrameHeader& h) {
  std::vector<uint8_t> body;
  if (h.body_len > limits_.max_message) {
    broken_ = true;
    return Status::Corruption("from " + endpoint_ + ": error message over the limit");
  }
  KVT_RETURN_IF_ERROR(ReadBody(h, &body));
  std::string msg(body.begin(), body.end());
  // A protocol error (opcode 0xFF) ends the connection on the server side.
  if (h.opcode == wire::kProtocolError) broken_ = true;
  const Code c = static_cast<Code>(h.status);
  const std::string m = "kvtierd " + endpoint_ + ": " + msg;
  switch (c) {
    case Code::kNotFound: return Status::NotFound(m);
    case Code::kInvalidArgument: return Status::InvalidArgument(m);
    case Code::kIoError: return Status::IoError(m);
    case Code::kCorruption: return Status::Corruption(m);
    case Code::kNoSpace: return Status::NoSpace(m);
    case Code::kBusy: return Status::Busy(m);
    case Code::kTimeout: return Status::Timeout(m);
    case Code::kUnavailable: return Status::Unavailable(m);
    case Code::kPermissionDenied: return Status::PermissionDenied(m);
    default: return Status::Internal(m);
  }
}

}  // namespace kvt
