// The HTTP/1.1 side of etcd's JSON gateway (Boost.Beast): one POST with a bounded response, and
// a streamed POST (the gateway's watch) read one JSON message at a time.
//
// A fresh connection per call: calls are rare (a lease keepalive every few seconds, a range at
// start and after a compaction), and a new connection never inherits a half-read response.
// Every byte from the peer is untrusted: the header is limited to 16 KiB, a body to the caller's
// limit, a streamed message to max_message bytes; anything else is a Status (Unavailable when
// etcd cannot be reached, Timeout past the deadline, Corruption for a malformed response).
//
// Thread safety: Post is a free function. An HttpStream is used by one thread, except Cancel,
// which any thread may call to make a blocked Next return.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "base/status.h"
#include "membership/etcd_codec.h"

namespace kvt::etcd {

struct HttpResponse {
  unsigned status = 0;
  std::string body;
};

// POSTs a JSON body to target at url; the whole exchange bounded by timeout.
StatusOr<HttpResponse> Post(const Url& url, std::string_view target, std::string_view body,
                            std::chrono::milliseconds timeout, size_t max_body = 8u << 20);

class HttpStream {
 public:
  // Connects, sends the request and reads the response header (all within timeout). A status
  // other than 200 is Unavailable, with the start of the body.
  static StatusOr<std::unique_ptr<HttpStream>> Open(const Url& url, std::string_view target,
                                                    std::string_view body,
                                                    std::chrono::milliseconds timeout,
                                                    size_t max_message = 16u << 20);
  ~HttpStream();
  HttpStream(const HttpStream&) = delete;
  HttpStream& operator=(const HttpStream&) = delete;

  // The next newline-delimited message of the response body (without the newline). Blocks with
  // no deadline: a watch may be quiet for hours. TCP keepalive (about 10 s) notices a peer that
  // vanished without closing. Unavailable when the stream ended, failed or was cancelled.
  Status Next(std::string* message);
  // Makes a blocked or later Next return Unavailable. Any thread.
  void Cancel();

 private:
  struct Impl;
  explicit HttpStream(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvt::etcd
