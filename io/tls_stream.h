// TlsStream: TLS 1.3 over a Boost.Asio TCP socket, with OpenSSL reading and writing the socket
// itself (a socket BIO on the non-blocking fd) instead of through Asio's ssl::stream.
//
// Why not asio::ssl::stream: it moves every byte through a BIO pair and 17 KiB staging buffers
// (two extra copies each way), issues one read or write system call per TLS record, and writes
// only the first buffer of a gather list per call, so a 24-byte frame header became a TLS record
// of its own. Here:
//   - reads: OpenSSL reads ahead into a 1 MiB buffer (many records per recv), decrypts in place
//     and copies once into the caller's buffer; one async_read_some returns as many records as
//     are already in;
//   - writes: small buffers of a gather list (frame headers, block heads, tags) are coalesced
//     with the start of the next buffer into one full record; a large buffer is encrypted
//     straight from where it lies, whole records at a time.
// It models Asio's AsyncReadStream and AsyncWriteStream, so asio::async_read/async_write work on
// it unchanged. Waiting is the socket's async_wait: closing the socket cancels it (timeouts).
//
// Peer identity: after the handshake, the peer certificate's subject (RFC 2253) and CN, and an
// exporter value (RFC 8446 7.5) that binds kvtier's own AUTH exchange to this TLS session.
//
// Thread safety: none; one operation of each direction at a time, on the socket's executor.
#pragma once

#include <array>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio.hpp>

#include "base/status.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace kvt {

// The synchronous, non-blocking core: OpenSSL on a file descriptor.
class TlsChannel {
 public:
  enum class Want { kNone, kRead, kWrite };
  // `verify_host` (client side): the name or IP address the peer's certificate must name.
  TlsChannel(SSL_CTX* ctx, int fd, bool server, const std::string& verify_host);
  ~TlsChannel();
  TlsChannel(const TlsChannel&) = delete;
  TlsChannel& operator=(const TlsChannel&) = delete;

  bool valid() const { return ssl_ != nullptr; }
  // Each returns the error (empty: progress made or done), and sets *want when it must wait.
  boost::system::error_code Handshake(Want* want);
  // Up to n bytes into dst; *done bytes read (0 with *want set: wait).
  boost::system::error_code Read(void* dst, size_t n, size_t* done, Want* want);
  // From the gather list; *done bytes of it written (0 with *want set: wait, then call again
  // with the same buffers, as OpenSSL requires).
  boost::system::error_code Write(std::span<const std::span<const uint8_t>> bufs, size_t* done,
                                  Want* want);

  // After the handshake.
  std::string PeerSubject() const;  // RFC 2253, e.g. "CN=client-a,O=example"; empty: none
  std::string PeerCommonName() const;
  // 32 bytes from the TLS exporter with kvtier's label; zeros if the session has none.
  std::array<uint8_t, 32> Binding() const;
  // The TLS record payload limit (16 KiB): a write of whole records needs no staging.
  static constexpr size_t kRecord = 16u << 10;

  // Settings for a context kvtier uses (TLS 1.3 only, AES-GCM first, read-ahead, no tickets).
  static void Configure(SSL_CTX* ctx, bool server);

 private:
  boost::system::error_code Error(int ret, Want* want);
  SSL* ssl_ = nullptr;
  // Small buffers coalesced with the start of the next into one record. A retry after kWrite
  // stages the same bytes again at the same address, as OpenSSL requires.
  std::vector<uint8_t> stage_;
};

class TlsStream {
 public:
  using executor_type = boost::asio::ip::tcp::socket::executor_type;
  TlsStream(boost::asio::ip::tcp::socket& sock, SSL_CTX* ctx, bool server,
            const std::string& verify_host = "")
      : sock_(sock), ch_(ctx, sock.native_handle(), server, verify_host) {
    boost::system::error_code ignored;
    sock_.non_blocking(true, ignored);
  }
  executor_type get_executor() { return sock_.get_executor(); }
  TlsChannel& channel() { return ch_; }
  const TlsChannel& channel() const { return ch_; }

  template <typename Handler>
  void async_handshake(Handler&& h) {
    if (!ch_.valid()) return Post(std::forward<Handler>(h), boost::asio::error::no_memory);
    StepHandshake(std::forward<Handler>(h), true);
  }
  template <typename MutableBuffers, typename Handler>
  void async_read_some(const MutableBuffers& bufs, Handler&& h) {
    boost::asio::mutable_buffer b;
    for (auto it = boost::asio::buffer_sequence_begin(bufs);
         it != boost::asio::buffer_sequence_end(bufs); ++it) {
      if (it->size() > 0) {
        b = *it;
        break;
      }
    }
    StepRead(b, std::forward<Handler>(h), true);
  }
  template <typename ConstBuffers, typename Handler>
  void async_write_some(const ConstBuffers& bufs, Handler&& h) {
    std::vector<std::span<const uint8_t>> v;
    for (auto it = boost::asio::buffer_sequence_begin(bufs);
         it != boost::asio::buffer_sequence_end(bufs); ++it) {
      if (it->size() > 0) v.emplace_back(static_cast<const uint8_t*>(it->data()), it->size());
      if (v.size() == 64) break;
    }
    StepWrite(std::move(v), std::forward<Handler>(h), true);
  }

 private:
  using Want = TlsChannel::Want;
  using error_code = boost::system::error_code;
  // A completion found while initiating is posted (Asio's rule: never from the initiator).
  template <typename Handler, typename... Args>
  void Post(Handler&& h, Args... args) {
    boost::asio::post(sock_.get_executor(),
                      [h = std::forward<Handler>(h), args...]() mutable { h(args...); });
  }
  template <typename F>
  void Wait(Want w, F&& then) {
    sock_.async_wait(w == Want::kWrite ? boost::asio::socket_base::wait_write
                                       : boost::asio::socket_base::wait_read,
                     std::forward<F>(then));
  }
  template <typename Handler>
  void StepHandshake(Handler&& h, bool first) {
    Want want = Want::kNone;
    const error_code ec = ch_.Handshake(&want);
    if (ec || want == Want::kNone) {
      if (first) return Post(std::forward<Handler>(h), ec);
      return h(ec);
    }
    Wait(want, [this, h = std::forward<Handler>(h)](const error_code& e) mutable {
      if (e) return h(e);
      StepHandshake(std::move(h), false);
    });
  }
  template <typename Handler>
  void StepRead(boost::asio::mutable_buffer b, Handler&& h, bool first) {
    size_t done = 0;
    Want want = Want::kNone;
    const error_code ec = b.size() == 0 ? error_code() : ch_.Read(b.data(), b.size(), &done, &want);
    if (ec || want == Want::kNone) {
      if (first) return Post(std::forward<Handler>(h), ec, done);
      return h(ec, done);
    }
    Wait(want, [this, b, h = std::forward<Handler>(h)](const error_code& e) mutable {
      if (e) return h(e, size_t{0});
      StepRead(b, std::move(h), false);
    });
  }
  template <typename Handler>
  void StepWrite(std::vector<std::span<const uint8_t>> v, Handler&& h, bool first) {
    size_t done = 0;
    Want want = Want::kNone;
    const error_code ec = v.empty() ? error_code() : ch_.Write(v, &done, &want);
    if (ec || want == Want::kNone) {
      if (first) return Post(std::forward<Handler>(h), ec, done);
      return h(ec, done);
    }
    Wait(want, [this, v = std::move(v), h = std::forward<Handler>(h)](const error_code& e) mutable {
      if (e) return h(e, size_t{0});
      StepWrite(std::move(v), std::move(h), false);
    });
  }

  boost::asio::ip::tcp::socket& sock_;
  TlsChannel ch_;
};

}  // namespace kvt
