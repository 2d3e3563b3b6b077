// libFuzzer target: ServerSession (the whole server state machine) against a real Store in a
// temporary directory. Input: byte 0 picks authentication (bit 0) and how the stream is cut into
// reads (bits 1..7); the rest is what a client sends. (Past AUTH, frames need MAC tags the fuzzer
// cannot forge, so the request handlers are reached through the unauthenticated mode.) The node
// accepts every payload codec a hello offers. Every output must be well-formed frames,
// and the session must stay within its output bounds.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "tools/kvtierd/server_session.h"

namespace {

std::string& TheDir() {
  static std::string dir;
  return dir;
}

kvt::Store* TheStore() {
  static std::unique_ptr<kvt::Store> store = [] {
    char tmpl[] = "/tmp/kvtier-fuzz-XXXXXX";
    const char* dir = ::mkdtemp(tmpl);
    if (dir == nullptr) std::abort();
    TheDir() = dir;
    // Registered before the store exists, so it runs after the store's destructor.
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(TheDir(), ec);
    });
    kvt::Options o;
    if (!o.Set("dir", dir).ok() || !o.Set("host_bytes", "8MiB").ok() ||
        !o.Set("host_slab_bytes", "1MiB").ok() || !o.Set("host_mlock", "false").ok()) {
      std::abort();
    }
    auto s = kvt::Store::Open(o);
    if (!s.ok()) std::abort();
    return std::move(s).value();
  }();
  return store.get();
}

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static kvt::SessionCounters counters;
  kvt::SessionConfig cfg;
  cfg.auth_secret = (data[0] & 1) ? "fuzz-secret" : "";
  cfg.nonce = [](std::array<uint8_t, kvt::wire::kNonceBytes>* n) { n->fill(0x42); };
  cfg.limits.max_body = 1 << 20;
  cfg.limits.max_keys = 64;
  cfg.out_high_water = 1 << 16;
  // The node accepts every codec, so a client hello that offers one reaches the encoded put
  // decoder and the encoding get path (a plain hello keeps the session uncompressed).
  cfg.codecs = kvt::wire::kKnownCodecs;
  // Reads of 1 to ~4700 bytes; never more than 256 of them per input, to keep runs fast.
  const size_t chunk = std::max<size_t>(1 + (data[0] >> 1) * 37, size / 256);
  kvt::ServerSession session(TheStore(), cfg, &counters);
  std::vector<uint8_t> out;
  for (size_t off = 1; off < size; off += chunk) {
    const size_t n = std::min(chunk, size - off);
    if (session.WantsInput()) session.Consume({data + off, n});
    // Drain what it produced, in two steps to exercise partial sends.
    for (int i = 0; i < 1000 && session.output_bytes() > 0; ++i) {
      size_t total = 0;
      for (auto s : session.Output(8)) {
        out.insert(out.end(), s.begin(), s.end());
        total += s.size();
      }
      Check(total > 0 && total <= session.output_bytes());
      const size_t first = total / 2;
      session.Advance(first);
      session.Advance(total - first);
    }
    if (session.closing() && session.output_bytes() == 0) break;
  }
  // Everything the server sent parses as frames.
  kvt::wire::Limits any;
  any.max_body = ~0u;
  std::span<const uint8_t> buf(out);
  // After a successful AUTH response every frame carries a MAC trailer (skipped here; the tamper
  // tests check tags).
  bool tagged = false;
  while (!buf.empty()) {
    kvt::wire::FrameHeader h;
    std::span<const uint8_t> body;
    size_t consumed = 0;
    Check(kvt::wire::ParseFrame(buf, any, &h, &body, &consumed).ok());
    Check((h.opcode & kvt::wire::kResponseBit) != 0);
    if (consumed == 0) break;  // the rest is still queued (output cap reached)
    const size_t tag = tagged ? kvt::wire::kTagBytes : 0;
    if (buf.size() < consumed + tag) break;
    buf = buf.subspan(consumed + tag);
    if (h.opcode == (static_cast<uint8_t>(kvt::wire::Op::kAuth) | kvt::wire::kResponseBit) &&
        h.status == 0) {
      tagged = true;
    }
  }
  return 0;
}
