#include "membership/etcd_codec.h"

#include <charconv>

#include <nlohmann/json.hpp>

namespace kvt::etcd {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int Sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// HOST:PORT with a non-empty host of printable characters and a port in 1..65535.
Status CheckHostPort(std::string_view ep, std::string* host, uint16_t* port) {
  const size_t colon = ep.rfind(':');
  if (ep.empty() || ep.size() > 300 || colon == std::string_view::npos || colon == 0) {
    return Status::InvalidArgument("'" + std::string(ep.substr(0, 64)) + "' is not HOST:PORT");
  }
  for (char c : ep) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '/' || static_cast<unsigned char>(c) >= 0x7f) {
      return Status::InvalidArgument("address '" + std::string(ep.substr(0, 64)) +
                                     "' has a character that cannot be in HOST:PORT");
    }
  }
  std::string_view digits = ep.substr(colon + 1);
  unsigned v = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || v == 0 ||
      v > 65535) {
    return Status::InvalidArgument("'" + std::string(ep.substr(0, 64)) +
                                   "' has no valid port (1-65535)");
  }
  std::string_view h = ep.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (host) *host = std::string(h);
  if (port) *port = static_cast<uint16_t>(v);
  return Status::Ok();
}

}  // namespace

std::string Base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (const size_t rest = in.size() - i; rest > 0) {
    uint32_t v = uint8_t(in[i]) << 16;
    if (rest == 2) v |= uint8_t(in[i + 1]) << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

StatusOr<std::string> Base64Decode(std::string_view in) {
  if (in.size() % 4 != 0) return Status::Corruption("base64 text of a length not a multiple of 4");
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    int s[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in[i + k];
      if (c == '=' && last && k >= 2) {
        s[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0 || (s[k] = Sextet(c)) < 0) return Status::Corruption("malformed base64 text");
    }
    const uint32_t v = (s[0] << 18) | (s[1] << 12) | (s[2] << 6) | s[3];
    out += static_cast<char>(v >> 16);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(v & 0xff);
  }
  return out;
}

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key (etcd's convention for "no end")
}

StatusOr<int64_t> Int64Field(const nlohmann::json& obj, const char* name, int64_t absent) {
  if (!obj.is_object()) return Status::Corruption(std::string("no object holding '") + name + "'");
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return absent;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (!s.empty() && ec == std::errc() && end == s.data() + s.size()) return v;
  }
  return Status::Corruption(std::string("field '") + name + "' is not an int64");
}

StatusOr<std::string> BytesField(const nlohmann::json& obj, const char* name) {
  if (!obj.is_object()) return Status::Corruption(std::string("no object holding '") + name + "'");
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string()) return Status::Corruption(std::string("field '") + name + "' is not base64 text");
  return Base64Decode(it->get_ref<const std::string&>());
}

StatusOr<Url> ParseHttpUrl(std::string_view text) {
  constexpr std::string_view kScheme = "http://";
  if (text.substr(0, kScheme.size()) != kScheme) {
    return Status::InvalidArgument("etcd URL '" + std::string(text.substr(0, 64)) +
                                   "' must start with http:// (https is not supported)");
  }
  std::string_view rest = text.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  Url u;
  KVT_RETURN_IF_ERROR(CheckHostPort(rest, &u.host, &u.port).WithContext("etcd URL"));
  return u;
}

StatusOr<std::string> NormalizePrefix(std::string_view p) {
  while (p.size() > 1 && p.back() == '/') p.remove_suffix(1);
  bool printable = true;
  for (char c : p) printable = printable && c > ' ' && static_cast<unsigned char>(c) < 0x7f;
  if (p.empty() || p.front() != '/' || p == "/" || p.size() > 512 || !printable) {
    return Status::InvalidArgument("etcd prefix '" + std::string(p.substr(0, 64)) +
                                   "' must start with '/' and name a cluster, e.g. /kvtier/prod");
  }
  return std::string(p);
}

StatusOr<Url> ParseEtcdUrl(std::string_view text, std::string* prefix) {
  constexpr std::string_view kScheme = "etcd://";
  if (text.substr(0, kScheme.size()) != kScheme) {
    return Status::InvalidArgument("'" + std::string(text.substr(0, 64)) + "' is not etcd://HOST:PORT/PREFIX");
  }
  std::string_view rest = text.substr(kScheme.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    return Status::InvalidArgument("'" + std::string(text.substr(0, 64)) +
                                   "' names no prefix: etcd://HOST:PORT/PREFIX");
  }
  Url u;
  KVT_RETURN_IF_ERROR(CheckHostPort(rest.substr(0, slash), &u.host, &u.port).WithContext("etcd URL"));
  KVT_ASSIGN_OR_RETURN(*prefix, NormalizePrefix(rest.substr(slash)));
  return u;
}

std::string EncodeNodeInfo(const NodeInfo& n) {
  nlohmann::json j = {{"address", n.address},
                      {"host_bytes", n.host_bytes},
                      {"nvme_bytes", n.nvme_bytes},
                      {"version", 1}};
  if (!n.tls_subject.empty() || !n.tls_sha256.empty()) {
    j["tls"] = {{"subject", n.tls_subject}, {"sha256", n.tls_sha256}};
  } else {
    j["tls"] = nullptr;
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

StatusOr<NodeInfo> ParseNodeInfo(std::string_view value) {
  if (value.size() > kMaxNodeValueBytes) return Status::Corruption("node value larger than 64 KiB");
  nlohmann::json j = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("node value is not a JSON object");
  auto a = j.find("address");
  if (a == j.end() || !a->is_string()) return Status::Corruption("node value has no \"address\" string");
  NodeInfo n;
  n.address = a->get<std::string>();
  Status s = CheckHostPort(n.address, nullptr, nullptr);
  if (!s.ok()) return Status::Corruption("node value: " + s.message());
  for (auto [name, out] : {std::pair{"host_bytes", &n.host_bytes}, {"nvme_bytes", &n.nvme_bytes}}) {
    auto it = j.find(name);
    if (it != j.end() && it->is_number_unsigned()) *out = it->get<uint64_t>();
  }
  if (auto t = j.find("tls"); t != j.end() && t->is_object()) {
    if (auto x = t->find("subject"); x != t->end() && x->is_string()) n.tls_subject = x->get<std::string>();
    if (auto x = t->find("sha256"); x != t->end() && x->is_string()) n.tls_sha256 = x->get<std::string>();
  }
  return n;
}

}  // namespace kvt::etcd
