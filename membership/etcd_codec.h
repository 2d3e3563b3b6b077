// What travels between kvtier and etcd's JSON gateway, as pure functions: base64 (keys and values
// are base64 in the gateway's JSON), int64 fields (the gateway writes them as JSON strings), the
// end of a prefix range, and the value a node registers under its key.
//
// Every input is untrusted (it comes from the network): malformed text is a Status, never an
// exception or an abort. Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

#include "base/status.h"

namespace kvt::etcd {

std::string Base64Encode(std::string_view bytes);
// Standard alphabet with '=' padding, as the gateway writes it. Corruption on anything else.
StatusOr<std::string> Base64Decode(std::string_view text);

// The smallest key greater than every key that starts with prefix (etcd's range_end for a prefix).
std::string PrefixEnd(std::string_view prefix);

// An int64 field of a gateway response: a JSON string of digits (how the gateway writes int64),
// or a number. An absent field is `absent` (proto3 leaves zero values out).
StatusOr<int64_t> Int64Field(const nlohmann::json& obj, const char* name, int64_t absent = 0);
// A bytes field (base64 in JSON), decoded; absent: "".
StatusOr<std::string> BytesField(const nlohmann::json& obj, const char* name);

// "http://HOST:PORT" (an optional trailing '/'), the form kvtierd's --etcd takes.
struct Url {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const { return "http://" + host + ":" + std::to_string(port); }
};
StatusOr<Url> ParseHttpUrl(std::string_view text);
// "etcd://HOST:PORT/PREFIX", the form a store's `remote` option takes. The prefix is normalized
// (NormalizePrefix).
StatusOr<Url> ParseEtcdUrl(std::string_view text, std::string* prefix);
// A cluster prefix: starts with '/', no trailing '/', not just "/". InvalidArgument otherwise.
StatusOr<std::string> NormalizePrefix(std::string_view prefix);
// Where a node registers: PREFIX "/" ADDRESS. Watchers read every key under PREFIX "/".
inline std::string NodeKey(const std::string& prefix, const std::string& address) {
  return prefix + "/" + address;
}

// The JSON value a node registers (kvtierd --etcd). Readers ignore fields they do not know.
struct NodeInfo {
  std::string address;        // HOST:PORT that clients dial
  uint64_t host_bytes = 0;    // capacity of the node's store
  uint64_t nvme_bytes = 0;
  std::string tls_subject;    // empty: the node serves without TLS
  std::string tls_sha256;     // SHA-256 fingerprint of its certificate, hex
};
std::string EncodeNodeInfo(const NodeInfo& n);
// Corruption naming what is wrong: not JSON, not an object, no "address", an address that is
// not HOST:PORT, a value larger than kMaxNodeValueBytes.
constexpr size_t kMaxNodeValueBytes = 64 * 1024;
StatusOr<NodeInfo> ParseNodeInfo(std::string_view value);

}  // namespace kvt::etcd
