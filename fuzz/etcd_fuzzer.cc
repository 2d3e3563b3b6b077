// libFuzzer target: what kvtier reads from etcd's JSON gateway (membership/), all untrusted: watch
// messages, node values, base64 fields, and the etcd:// / http:// forms users give. Every input
// must give a value or a Status (never an exception, never a crash), and what parses must
// survive a round trip.
//
// Input: byte 0 picks the parser; the rest is its text.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "membership/etcd_client.h"
#include "membership/etcd_codec.h"

namespace {
void Check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvt::etcd;
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0: {
      auto w = ParseWatchResponse(text);
      if (w.ok()) {
        for (const WatchEvent& e : w->events) Check(e.kv.key.size() <= text.size());
      }
      break;
    }
    case 1: {
      auto n = ParseNodeInfo(text);
      if (n.ok()) {
        auto back = ParseNodeInfo(EncodeNodeInfo(*n));
        Check(back.ok() && back->address == n->address && back->host_bytes == n->host_bytes);
      }
      break;
    }
    case 2: {
      (void)Base64Decode(text);
      auto back = Base64Decode(Base64Encode(text));
      Check(back.ok() && *back == text);
      break;
    }
    case 3: {
      std::string prefix;
      auto u = ParseEtcdUrl(text, &prefix);
      if (u.ok()) Check(!prefix.empty() && prefix[0] == '/' && u->port != 0);
      (void)ParseHttpUrl(text);
      break;
    }
    default: {
      auto p = NormalizePrefix(text);
      if (p.ok()) Check(NormalizePrefix(*p).ok() && *NormalizePrefix(*p) == *p);
      const std::string end = PrefixEnd(text);
      Check(text.empty() || end.size() <= text.size());
      break;
    }
  }
  return 0;
}
