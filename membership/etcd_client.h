// EtcdClient: the few etcd v3 calls kvtier needs, through etcd's JSON gateway (/v3/..., etcd
// 3.4): leases (grant, one keepalive, revoke), put, prefix range, delete, compaction (tests), and
// a prefix watch from a revision (EtcdWatch).
//
// Responses are untrusted: every field is checked (type, base64, int64) and a response that does
// not parse is Corruption, never an exception. etcd's own errors come back as statuses with its
// message (a lease it does not know is NotFound).
//
// Thread safety: an EtcdClient holds only its URL and options; every call opens its own
// connection, so calls from several threads are safe. An EtcdWatch is read by one thread;
// Cancel may come from any.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "membership/etcd_codec.h"
#include "membership/etcd_http.h"

namespace kvt::etcd {

struct KeyValue {
  std::string key, value;
  int64_t mod_revision = 0;
  int64_t lease = 0;
};

struct RangeResult {
  int64_t revision = 0;  // the store's revision the range was read at
  std::vector<KeyValue> kvs;
};

class EtcdClient {
 public:
  explicit EtcdClient(Url url, std::chrono::milliseconds timeout = std::chrono::milliseconds(2000))
      : url_(std::move(url)), timeout_(timeout) {}
  const Url& url() const { return url_; }

  // A lease of (at least) ttl_s seconds; etcd may raise the TTL to its minimum.
  StatusOr<int64_t> GrantLease(int64_t ttl_s, int64_t* granted_ttl = nullptr);
  // One keepalive: the lease's TTL again. NotFound when the lease expired or was revoked.
  StatusOr<int64_t> KeepAlive(int64_t lease);
  Status RevokeLease(int64_t lease);
  Status Put(const std::string& key, const std::string& value, int64_t lease = 0);
  // Every key starting with prefix, at one revision.
  StatusOr<RangeResult> RangePrefix(const std::string& prefix);
  Status Delete(const std::string& key);
  // Compacts history up to revision (tests use it to force a watch's compaction path).
  Status Compact(int64_t revision);

 private:
  StatusOr<std::string> Call(const char* target, const std::string& body, size_t max_body);
  Url url_;
  std::chrono::milliseconds timeout_;
};

// One message of a watch stream.
struct WatchEvent {
  bool deleted = false;
  KeyValue kv;
};
struct WatchResponse {
  int64_t header_revision = 0;
  bool created = false;
  bool canceled = false;
  int64_t compact_revision = 0;  // > 0: the start revision was compacted; re-read the range
  std::string cancel_reason;
  std::vector<WatchEvent> events;
};
// Parses one watch message ({"result": {...}} or {"error": ...}). Corruption on a malformed one.
StatusOr<WatchResponse> ParseWatchResponse(std::string_view message);

class EtcdWatch {
 public:
  // Watches every key under prefix from start_revision (etcd replays what happened since).
  // The stream is open when this returns; the "created" message is read by Next like any other.
  static StatusOr<std::unique_ptr<EtcdWatch>> Open(const Url& url, const std::string& prefix,
                                                   int64_t start_revision,
                                                   std::chrono::milliseconds timeout);
  // Blocks for the next message. Unavailable when the stream ended or was cancelled.
  Status Next(WatchResponse* out);
  void Cancel() { stream_->Cancel(); }

 private:
  explicit EtcdWatch(std::unique_ptr<HttpStream> s) : stream_(std::move(s)) {}
  std::unique_ptr<HttpStream> stream_;
};

}  // namespace kvt::etcd
