#include "membership/etcd_http.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

namespace kvt::etcd {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr uint32_t kHeaderLimit = 16 * 1024;
constexpr size_t kReadBufferLimit = 1u << 20;  // unparsed bytes held at once

// Runs one asynchronous operation to completion on a private io_context: the tcp_stream's
// expiry is the deadline (Beast completes the operation with error::timeout).
template <typename Start>
error_code RunOne(asio::io_context& ioc, Start&& start) {
  error_code ec = asio::error::would_block;
  ioc.restart();
  start([&ec](error_code e, auto&&...) { ec = e; });
  ioc.run();
  return ec;
}

Status NetError(const Url& url, const char* what, const error_code& ec,
                std::chrono::milliseconds timeout) {
  if (ec == beast::error::timeout) {
    return Status::Timeout("etcd at " + url.ToString() + " did not answer (" + what + ") within " +
                           std::to_string(timeout.count()) + " ms");
  }
  return Status::Unavailable("cannot reach etcd at " + url.ToString() + " (" + what + "): " +
                             ec.message());
}

Status Connect(const Url& url, asio::io_context& ioc, tcp::resolver& resolver,
               beast::tcp_stream& stream, std::chrono::milliseconds timeout) {
  error_code ec;
  // Numeric hosts resolve without a lookup; a name goes through getaddrinfo (not bounded by the
  // deadline: use an address for etcd where DNS may hang).
  auto results = resolver.resolve(url.host, std::to_string(url.port), ec);
  if (ec) return NetError(url, "resolve", ec, timeout);
  stream.expires_after(timeout);
  ec = RunOne(ioc, [&](auto h) { stream.async_connect(results, h); });
  if (ec) return NetError(url, "connect", ec, timeout);
  stream.socket().set_option(tcp::no_delay(true), ec);
  return Status::Ok();
}

http::request<http::string_body> MakeRequest(const Url& url, std::string_view target,
                                             std::string_view body) {
  http::request<http::string_body> req{http::verb::post, std::string(target), 11};
  req.set(http::field::host, url.host + ":" + std::to_string(url.port));
  req.set(http::field::content_type, "application/json");
  req.body() = std::string(body);
  req.prepare_payload();
  return req;
}

}  // namespace

StatusOr<HttpResponse> Post(const Url& url, std::string_view target, std::string_view body,
                            std::chrono::milliseconds timeout, size_t max_body) {
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  KVT_RETURN_IF_ERROR(Connect(url, ioc, resolver, stream, timeout));
  auto req = MakeRequest(url, target, body);
  stream.expires_at(deadline);
  error_code ec = RunOne(ioc, [&](auto h) { http::async_write(stream, req, h); });
  if (ec) return NetError(url, "send", ec, timeout);
  beast::flat_buffer buf(kReadBufferLimit);
  http::response_parser<http::string_body> p;
  p.header_limit(kHeaderLimit);
  p.body_limit(max_body);
  stream.expires_at(deadline);
  ec = RunOne(ioc, [&](auto h) { http::async_read(stream, buf, p, h); });
  if (ec == beast::error::timeout || ec == asio::error::connection_refused ||
      ec == asio::error::connection_reset || ec == http::error::end_of_stream ||
      ec == asio::error::eof) {
    return NetError(url, "response", ec, timeout);
  }
  if (ec) {
    return Status::Corruption("malformed HTTP response from etcd at " + url.ToString() + ": " +
                              ec.message());
  }
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  HttpResponse r;
  r.status = p.get().result_int();
  r.body = std::move(p.get().body());
  return r;
}

struct HttpStream::Impl {
  Url url;
  asio::io_context ioc;
  tcp::resolver resolver{ioc};
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buf{kReadBufferLimit};
  http::response_parser<http::buffer_body> parser;
  std::string pending;  // body bytes after the last complete message
  size_t max_message = 0;
  std::atomic<int> fd{-1};
  std::atomic<bool> cancelled{false};
  char chunk[64 * 1024];
};

HttpStream::HttpStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpStream::~HttpStream() = default;

StatusOr<std::unique_ptr<HttpStream>> HttpStream::Open(const Url& url, std::string_view target,
                                                       std::string_view body,
                                                       std::chrono::milliseconds timeout,
                                                       size_t max_message) {
  auto im = std::make_unique<Impl>();
  im->url = url;
  im->max_message = max_message;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  KVT_RETURN_IF_ERROR(Connect(url, im->ioc, im->resolver, im->stream, timeout));
  // A watch is quiet while nothing changes: keepalive probes notice a peer that vanished
  // without closing (a partition, a power cut) in about 5 + 3 * 2 = 11 s.
  const int fd = im->stream.socket().native_handle();
  int on = 1, idle = 5, intvl = 2, cnt = 3;
  ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  im->fd = fd;
  auto req = MakeRequest(url, target, body);
  im->stream.expires_at(deadline);
  error_code ec = RunOne(im->ioc, [&](auto h) { http::async_write(im->stream, req, h); });
  if (ec) return NetError(url, "send", ec, timeout);
  im->parser.header_limit(kHeaderLimit);
  im->parser.body_limit(boost::none);  // endless by design; each message is bounded in Next
  im->stream.expires_at(deadline);
  ec = RunOne(im->ioc, [&](auto h) { http::async_read_header(im->stream, im->buf, im->parser, h); });
  if (ec == beast::error::timeout) return NetError(url, "response header", ec, timeout);
  if (ec) return Status::Unavailable("etcd at " + url.ToString() + ": bad stream response: " + ec.message());
  if (im->parser.get().result_int() != 200) {
    return Status::Unavailable("etcd at " + url.ToString() + " answered HTTP " +
                               std::to_string(im->parser.get().result_int()) + " to " +
                               std::string(target));
  }
  im->stream.expires_never();
  return std::unique_ptr<HttpStream>(new HttpStream(std::move(im)));
}

Status HttpStream::Next(std::string* message) {
  Impl& im = *impl_;
  for (;;) {
    const size_t nl = im.pending.find('\n');
    if (nl != std::string::npos) {
      message->assign(im.pending, 0, nl);
      im.pending.erase(0, nl + 1);
      while (!message->empty() && (message->back() == '\r' || message->back() == ' ')) message->pop_back();
      if (message->empty()) continue;
      return Status::Ok();
    }
    if (im.pending.size() > im.max_message) {
      return Status::Corruption("etcd at " + im.url.ToString() + " sent a stream message over " +
                                std::to_string(im.max_message) + " bytes");
    }
    if (im.cancelled.load()) return Status::Unavailable("etcd stream cancelled");
    if (im.parser.is_done()) {
      return Status::Unavailable("etcd at " + im.url.ToString() + " ended the stream");
    }
    im.parser.get().body().data = im.chunk;
    im.parser.get().body().size = sizeof im.chunk;
    error_code ec = RunOne(im.ioc, [&](auto h) { http::async_read_some(im.stream, im.buf, im.parser, h); });
    if (ec == http::error::need_buffer) ec = {};
    if (im.cancelled.load()) return Status::Unavailable("etcd stream cancelled");
    if (ec) {
      return Status::Unavailable("etcd stream from " + im.url.ToString() + " failed: " + ec.message());
    }
    im.pending.append(im.chunk, sizeof im.chunk - im.parser.get().body().size);
  }
}

void HttpStream::Cancel() {
  impl_->cancelled = true;
  // shutdown(2) on the descriptor wakes the reader blocked in Next; the socket object itself
  // is only touched by the reading thread.
  const int fd = impl_->fd.load();
  if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
}

}  // namespace kvt::etcd
