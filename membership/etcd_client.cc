#include "membership/etcd_client.h"

#include <nlohmann/json.hpp>

namespace kvt::etcd {
namespace {

using nlohmann::json;

StatusOr<json> ParseObject(std::string_view text, const Url& url) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Corruption("etcd at " + url.ToString() + " sent a response that is not a JSON object");
  }
  return j;
}

// An etcd (gRPC) error as the gateway reports it: {"error": "...", "message": "...", "code": N}
// for unary calls, {"error": {"grpc_code": N, "message": "..."}} inside a stream.
Status ErrorStatus(const json& j, const Url& url, unsigned http_status) {
  int64_t code = 0;
  std::string msg = "HTTP " + std::to_string(http_status);
  const json* e = &j;
  if (auto it = j.find("error"); it != j.end() && it->is_object()) e = &*it;
  if (auto it = e->find("message"); it != e->end() && it->is_string()) msg = it->get<std::string>();
  for (const char* name : {"code", "grpc_code"}) {
    if (auto it = e->find(name); it != e->end() && it->is_number_integer()) code = it->get<int64_t>();
  }
  msg = "etcd at " + url.ToString() + ": " + msg.substr(0, 512);
  switch (code) {
    case 3: return Status::InvalidArgument(msg);
    case 4: return Status::Timeout(msg);
    case 5: return Status::NotFound(msg);
    case 7:
    case 16: return Status::PermissionDenied(msg);
    default: return Status::Unavailable(msg);
  }
}

StatusOr<KeyValue> ParseKv(const json& kv) {
  if (!kv.is_object()) return Status::Corruption("a key-value that is not an object");
  KeyValue out;
  KVT_ASSIGN_OR_RETURN(out.key, BytesField(kv, "key"));
  KVT_ASSIGN_OR_RETURN(out.value, BytesField(kv, "value"));
  KVT_ASSIGN_OR_RETURN(out.mod_revision, Int64Field(kv, "mod_revision"));
  KVT_ASSIGN_OR_RETURN(out.lease, Int64Field(kv, "lease"));
  return out;
}

}  // namespace

StatusOr<std::string> EtcdClient::Call(const char* target, const std::string& body, size_t max_body) {
  KVT_ASSIGN_OR_RETURN(HttpResponse r, Post(url_, target, body, timeout_, max_body));
  if (r.status != 200) {
    json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) j = json::object();
    return ErrorStatus(j, url_, r.status);
  }
  return std::move(r.body);
}

StatusOr<int64_t> EtcdClient::GrantLease(int64_t ttl_s, int64_t* granted_ttl) {
  KVT_ASSIGN_OR_RETURN(std::string body, Call("/v3/lease/grant", json{{"TTL", ttl_s}}.dump(), 64 << 10));
  KVT_ASSIGN_OR_RETURN(json j, ParseObject(body, url_));
  if (j.contains("error")) return ErrorStatus(j, url_, 200);
  KVT_ASSIGN_OR_RETURN(int64_t id, Int64Field(j, "ID"));
  KVT_ASSIGN_OR_RETURN(int64_t ttl, Int64Field(j, "TTL"));
  if (id == 0 || ttl <= 0) return Status::Corruption("etcd at " + url_.ToString() + " granted no lease");
  if (granted_ttl) *granted_ttl = ttl;
  return id;
}

StatusOr<int64_t> EtcdClient::KeepAlive(int64_t lease) {
  // The gateway maps the keepalive stream onto one request: it sends our single message,
  // answers it and ends the response.
  KVT_ASSIGN_OR_RETURN(std::string body,
                       Call("/v3/lease/keepalive", json{{"ID", std::to_string(lease)}}.dump(), 64 << 10));
  const size_t nl = body.find('\n');
  KVT_ASSIGN_OR_RETURN(json j, ParseObject(std::string_view(body).substr(0, nl), url_));
  if (j.contains("error")) return ErrorStatus(j, url_, 200);
  auto r = j.find("result");
  if (r == j.end() || !r->is_object()) {
    return Status::Corruption("etcd at " + url_.ToString() + ": keepalive answer without a result");
  }
  KVT_ASSIGN_OR_RETURN(int64_t ttl, Int64Field(*r, "TTL"));
  if (ttl <= 0) return Status::NotFound("etcd lease " + std::to_string(lease) + " has expired");
  return ttl;
}

Status EtcdClient::RevokeLease(int64_t lease) {
  return Call("/v3/lease/revoke", json{{"ID", std::to_string(lease)}}.dump(), 64 << 10).status();
}

Status EtcdClient::Put(const std::string& key, const std::string& value, int64_t lease) {
  json req = {{"key", Base64Encode(key)}, {"value", Base64Encode(value)}};
  if (lease != 0) req["lease"] = std::to_string(lease);
  return Call("/v3/kv/put", req.dump(), 64 << 10).status();
}

StatusOr<RangeResult> EtcdClient::RangePrefix(const std::string& prefix) {
  json req = {{"key", Base64Encode(prefix)}, {"range_end", Base64Encode(PrefixEnd(prefix))}};
  KVT_ASSIGN_OR_RETURN(std::string body, Call("/v3/kv/range", req.dump(), 64u << 20));
  KVT_ASSIGN_OR_RETURN(json j, ParseObject(body, url_));
  RangeResult out;
  auto h = j.find("header");
  if (h == j.end()) return Status::Corruption("etcd at " + url_.ToString() + ": range answer without a header");
  KVT_ASSIGN_OR_RETURN(out.revision, Int64Field(*h, "revision"));
  if (out.revision <= 0) return Status::Corruption("etcd at " + url_.ToString() + ": range at revision 0");
  if (auto kvs = j.find("kvs"); kvs != j.end()) {
    if (!kvs->is_array()) return Status::Corruption("etcd range: kvs is not an array");
    for (const json& kv : *kvs) {
      KVT_ASSIGN_OR_RETURN(KeyValue v, ParseKv(kv));
      out.kvs.push_back(std::move(v));
    }
  }
  return out;
}

Status EtcdClient::Delete(const std::string& key) {
  return Call("/v3/kv/deleterange", json{{"key", Base64Encode(key)}}.dump(), 64 << 10).status();
}

Status EtcdClient::Compact(int64_t revision) {
  return Call("/v3/kv/compaction", json{{"revision", std::to_string(revision)}}.dump(), 64 << 10)
      .status();
}

StatusOr<WatchResponse> ParseWatchResponse(std::string_view message) {
  json j = json::parse(message, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("watch message is not a JSON object");
  if (auto e = j.find("error"); e != j.end()) return ErrorStatus(j, Url{"etcd", 0}, 200);
  auto r = j.find("result");
  if (r == j.end() || !r->is_object()) return Status::Corruption("watch message without a result");
  WatchResponse out;
  if (auto h = r->find("header"); h != r->end()) {
    KVT_ASSIGN_OR_RETURN(out.header_revision, Int64Field(*h, "revision"));
  }
  auto flag = [&](const char* name) {
    auto it = r->find(name);
    return it != r->end() && it->is_boolean() && it->get<bool>();
  };
  out.created = flag("created");
  out.canceled = flag("canceled");
  KVT_ASSIGN_OR_RETURN(out.compact_revision, Int64Field(*r, "compact_revision"));
  if (auto it = r->find("cancel_reason"); it != r->end() && it->is_string()) {
    out.cancel_reason = it->get<std::string>().substr(0, 512);
  }
  if (auto evs = r->find("events"); evs != r->end()) {
    if (!evs->is_array()) return Status::Corruption("watch events is not an array");
    for (const json& ev : *evs) {
      if (!ev.is_object()) return Status::Corruption("a watch event that is not an object");
      WatchEvent w;
      if (auto t = ev.find("type"); t != ev.end()) {
        // PUT is proto3's zero value and left out; DELETE comes as a name (or its number, 1).
        if (t->is_string()) {
          if (*t == "DELETE") w.deleted = true;
          else if (*t != "PUT") return Status::Corruption("a watch event of unknown type");
        } else if (t->is_number_integer()) {
          w.deleted = t->get<int64_t>() == 1;
        } else {
          return Status::Corruption("a watch event of unknown type");
        }
      }
      auto kv = ev.find("kv");
      if (kv == ev.end()) return Status::Corruption("a watch event without a key");
      KVT_ASSIGN_OR_RETURN(w.kv, ParseKv(*kv));
      out.events.push_back(std::move(w));
    }
  }
  return out;
}

StatusOr<std::unique_ptr<EtcdWatch>> EtcdWatch::Open(const Url& url, const std::string& prefix,
                                                     int64_t start_revision,
                                                     std::chrono::milliseconds timeout) {
  json req = {{"create_request",
               {{"key", Base64Encode(prefix)},
                {"range_end", Base64Encode(PrefixEnd(prefix))},
                {"start_revision", std::to_string(start_revision)}}}};
  KVT_ASSIGN_OR_RETURN(auto s, HttpStream::Open(url, "/v3/watch", req.dump(), timeout));
  return std::unique_ptr<EtcdWatch>(new EtcdWatch(std::move(s)));
}

Status EtcdWatch::Next(WatchResponse* out) {
  std::string msg;
  KVT_RETURN_IF_ERROR(stream_->Next(&msg));
  KVT_ASSIGN_OR_RETURN(*out, ParseWatchResponse(msg));
  return Status::Ok();
}

}  // namespace kvt::etcd
