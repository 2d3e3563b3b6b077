#include "tools/kvtierd/server_session.h"

#include <cstring>

#include <nlohmann/json.hpp>

#include "base/counter.h"
#include "io/wire_auth.h"

namespace kvt {
namespace {

uint8_t Resp(wire::Op op) { return static_cast<uint8_t>(op) | wire::kResponseBit; }

constexpr size_t kMaxCachedNamespaces = 64;
constexpr uint32_t kMaxHandshakeBody = 256;
// Bodies below this are not counted against the shared buffer budget: control traffic always
// flows, and a connection's small frames are bounded by its own read buffer anyway.
constexpr uint32_t kBudgetedBody = 64u << 10;

}  // namespace

ServerSession::ServerSession(Store* store, const SessionConfig& cfg, SessionCounters* counters)
    : store_(store), cfg_(cfg), counters_(counters) {
  // Without any authentication configured (loopback only), the peer has every right.
  if (cfg_.auth_secret.empty() && !cfg_.credentials) cred_ = Credential::Everything("");
}

ServerSession::~ServerSession() {
  for (OutItem& o : out_) {
    if (o.pin) store_->UnpinLocal(*o.pin);
  }
  ReleaseBudget();
  ForgetNamespaces();
}

void ServerSession::ForgetNamespaces() {
  for (const auto& [encoding, id] : ns_cache_) store_->ReleasePeerNamespace(id);
  ns_cache_.clear();
  ns_geometry_.clear();
}

void ServerSession::SetTlsPeer(TlsPeer peer) { tls_ = std::move(peer); }

void ServerSession::ReleaseBudget() {
  if (reserved_ > 0) cfg_.buffered->fetch_sub(reserved_, std::memory_order_relaxed);
  reserved_ = 0;
}

bool ServerSession::Discard() {
  Skip& k = *skip_;
  const size_t avail = in_.size() - in_off_;
  const size_t n = static_cast<size_t>(std::min<uint64_t>(avail, k.left));
  if (mac_in_.active()) mac_in_.Update({in_.data() + in_off_, n});
  in_off_ += n;
  k.left -= n;
  if (k.left > 0) return false;
  if (mac_in_.active()) {
    if (in_.size() - in_off_ < wire::kTagBytes) return false;
    const bool good = mac_in_.Verify(in_.data() + in_off_);
    in_off_ += wire::kTagBytes;
    if (!good) {
      Add(counters_->frame_mac_failures);
      Fail(wire::kProtocolError, k.h.request_id,
           Status::Corruption("frame authentication failed (altered, injected, replayed or "
                              "reordered frame)"));
      skip_.reset();
      return false;
    }
  }
  Add(counters_->frames_in);
  ++frames_handled_;
  Add(counters_->busy_budget);
  SendError(k.h.opcode | wire::kResponseBit, k.h.request_id,
            Status::Busy("the node's request buffer budget is spent; retry later"));
  skip_.reset();
  return true;
}

void ServerSession::Consume(std::span<const uint8_t> data) {
  Add(counters_->bytes_in, data.size());
  if (closing_) return;  // after a fatal error nothing more is read
  in_.insert(in_.end(), data.begin(), data.end());
  Pump();
}

bool ServerSession::WantsInput() const {
  return !closing_ && in_.size() - in_off_ < size_t{cfg_.limits.max_body} + wire::kHeaderBytes &&
         out_bytes_ < 2 * cfg_.out_high_water;
}

void ServerSession::Pump() {
  while (!closing_) {
    if (skip_ && !Discard()) break;
    if (get_) {
      ContinueGet();
      if (get_) break;  // resumes when output drains (Advance)
    }
    if (out_bytes_ >= cfg_.out_high_water) break;
    if (in_.size() - in_off_ < need_) break;  // the frame begun is still incomplete
    wire::FrameHeader h;
    std::span<const uint8_t> body;
    size_t consumed = 0;
    Status s = wire::ParseFrame(std::span<const uint8_t>(in_).subspan(in_off_), cfg_.limits, &h,
                                &body, &consumed);
    if (!s.ok()) {
      Add(counters_->protocol_errors);
      Fail(wire::kProtocolError, 0, s);
      break;
    }
    if (consumed == 0 && in_.size() - in_off_ < wire::kHeaderBytes) break;
    // Judged from the header alone, before its body is waited for (and buffered).
    if (!CheckHeader(h)) break;
    const size_t tag = mac_in_.active() ? wire::kTagBytes : 0;
    if (need_ == 0 && cfg_.buffered != nullptr && cfg_.max_buffered > 0 &&
        h.body_len >= kBudgetedBody) {
      // A large body: reserve its bytes in the shared budget before buffering them, or refuse it.
      const uint64_t now = cfg_.buffered->fetch_add(h.body_len, std::memory_order_relaxed);
      if (now + h.body_len > cfg_.max_buffered) {
        cfg_.buffered->fetch_sub(h.body_len, std::memory_order_relaxed);
        if (mac_in_.active()) {
          mac_in_.Begin(in_.data() + in_off_);
        }
        in_off_ += wire::kHeaderBytes;
        skip_ = Skip{h, h.body_len};
        continue;
      }
      reserved_ = h.body_len;
    }
    if (consumed == 0 || in_.size() - in_off_ < consumed + tag) {
      need_ = wire::kHeaderBytes + h.body_len + tag;  // wait for the whole frame
      break;
    }
    need_ = 0;
    if (tag > 0) {
      mac_in_.Begin(in_.data() + in_off_);
      mac_in_.Update(body);
      if (!mac_in_.Verify(in_.data() + in_off_ + consumed)) {
        Add(counters_->frame_mac_failures);
        Fail(wire::kProtocolError, h.request_id,
             Status::Corruption("frame authentication failed (altered, injected, replayed "
                                "or reordered frame)"));
        break;
      }
    }
    Handle(h, body);  // body points into in_, which Handle does not modify
    in_off_ += consumed + tag;
    ReleaseBudget();
  }
  if (in_off_ == in_.size()) {
    in_.clear();
    in_off_ = 0;
  } else if (in_off_ > (64u << 10) && in_off_ > in_.size() / 2) {
    in_.erase(in_.begin(), in_.begin() + static_cast<ptrdiff_t>(in_off_));
    in_off_ = 0;
  }
}

bool ServerSession::CheckHeader(const wire::FrameHeader& h) {
  if ((h.opcode & wire::kResponseBit) != 0) {
    Add(counters_->protocol_errors);
    Fail(wire::kProtocolError, h.request_id,
         Status::InvalidArgument(std::string("a ") + wire::OpName(h.opcode) +
                                 " frame sent to the server"));
    return false;
  }
  const auto op = static_cast<wire::Op>(h.opcode);
  if (state_ == State::kExpectHello && op != wire::Op::kHello) {
    Add(counters_->protocol_errors);
    Fail(h.opcode | wire::kResponseBit, h.request_id,
         Status::PermissionDenied("HELLO must be the first request"));
    return false;
  }
  if (state_ == State::kExpectAuth && op != wire::Op::kAuth) {
    Add(counters_->auth_failures);
    Fail(h.opcode | wire::kResponseBit, h.request_id,
         Status::PermissionDenied("authenticate (AUTH) before any other request"));
    return false;
  }
  // Before authentication only HELLO and AUTH, whose bodies are tiny: an unauthenticated peer
  // cannot make the server buffer a large body.
  if (state_ != State::kReady && h.body_len > kMaxHandshakeBody) {
    Add(counters_->protocol_errors);
    Fail(h.opcode | wire::kResponseBit, h.request_id,
         Status::InvalidArgument("handshake frame of " + std::to_string(h.body_len) + " bytes"));
    return false;
  }
  return true;
}

void ServerSession::Handle(const wire::FrameHeader& h, std::span<const uint8_t> body) {
  Add(counters_->frames_in);
  ++frames_handled_;
  const auto op = static_cast<wire::Op>(h.opcode);
  Status s;
  switch (op) {
    case wire::Op::kHello:
      if (state_ != State::kExpectHello) {
        s = Status::InvalidArgument("HELLO was already exchanged");
        break;
      }
      HandleHello(h, body);
      return;
    case wire::Op::kAuth:
      if (state_ != State::kExpectAuth) {
        s = Status::InvalidArgument("no authentication is pending on this connection");
        break;
      }
      HandleAuth(h, body);
      return;
    case wire::Op::kLookup: s = HandleLookup(h, body); break;
    case wire::Op::kGet: s = HandleGet(h, body); break;
    case wire::Op::kPut: s = HandlePut(h, body); break;
    case wire::Op::kDropNamespace: s = HandleDrop(h, body); break;
    case wire::Op::kStats: {
      Add(counters_->stats);
      if (s = Require(cred_.admin, "STATS needs the admin right"); !s.ok()) break;
      std::string text = cfg_.metrics ? cfg_.metrics() : StatsToPrometheus(store_->StatsJson());
      if (text.size() > cfg_.limits.max_body) text.resize(cfg_.limits.max_body);
      Send(Resp(op), h.request_id,
           {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
      return;
    }
  }
  if (!s.ok()) {
    Add(counters_->request_errors);
    SendError(h.opcode | wire::kResponseBit, h.request_id, s);
  }
}

void ServerSession::HandleHello(const wire::FrameHeader& h, std::span<const uint8_t> body) {
  wire::HelloRequest req;
  Status s = wire::DecodeHello(body, &req);
  if (!s.ok()) return Fail(Resp(wire::Op::kHello), h.request_id, s);
  client_nonce_ = req.client_nonce;
  if (cfg_.nonce) {
    cfg_.nonce(&server_nonce_);
  } else if (Status r = wire::RandomNonce(&server_nonce_); !r.ok()) {
    return Fail(Resp(wire::Op::kHello), h.request_id, r);
  }
  wire::HelloResponse resp;
  resp.server_nonce = server_nonce_;
  resp.auth_required = !cfg_.auth_secret.empty() || cfg_.credentials != nullptr;
  if (tls_ && cfg_.credentials) {
    // A verified client certificate named in the credentials is the credential: no AUTH.
    if (const Credential* c = cfg_.credentials->FindByCertificate(tls_->subject, tls_->cn)) {
      Add(counters_->cert_auth_ok);
      cred_ = *c;
      resp.auth_required = false;
    } else if (cfg_.auth_secret.empty() && !cfg_.credentials->has_secrets()) {
      // Nothing else could authenticate it: refuse now rather than after a pointless AUTH.
      Add(counters_->cert_unknown);
      Add(counters_->auth_failures);
      return Fail(Resp(wire::Op::kHello), h.request_id,
                  Status::PermissionDenied("client certificate '" + tls_->subject +
                                           "' is not in the node's tenant credentials"));
    } else {
      Add(counters_->cert_unknown);  // it may still prove a secret in AUTH
    }
  }
  resp.max_body = cfg_.limits.max_body;
  resp.max_keys = cfg_.limits.max_keys;
  // The offered codecs this node accepts (bits it does not know are dropped here).
  codecs_ = req.codecs & cfg_.codecs & wire::kKnownCodecs;
  resp.codecs = codecs_;
  if (codecs_ != 0) Add(counters_->compressed_connections);
  state_ = resp.auth_required ? State::kExpectAuth : State::kReady;
  Send(Resp(wire::Op::kHello), h.request_id, wire::EncodeHelloResponse(resp));
}

void ServerSession::HandleAuth(const wire::FrameHeader& h, std::span<const uint8_t> body) {
  wire::AuthMessage req;
  Status s = wire::DecodeAuth(body, &req);
  if (!s.ok()) return Fail(Resp(wire::Op::kAuth), h.request_id, s);
  // The credential named (none: the shared secret). An unknown id and a wrong secret get the
  // same answer, so ids cannot be probed.
  Credential cred;
  if (req.credential.empty()) {
    if (!cfg_.auth_secret.empty()) cred = Credential::Everything(cfg_.auth_secret);
  } else if (cfg_.credentials) {
    if (const Credential* c = cfg_.credentials->Find(req.credential)) cred = *c;
  }
  const std::span<const uint8_t> binding =
      tls_ ? std::span<const uint8_t>(tls_->binding) : std::span<const uint8_t>();
  if (cred.secret.empty() ||
      !wire::MacEqual(req.mac, wire::AuthMac(cred.secret, wire::AuthRole::kClient, server_nonce_,
                                             client_nonce_, binding))) {
    Add(counters_->auth_failures);
    return Fail(Resp(wire::Op::kAuth), h.request_id,
                Status::PermissionDenied("authentication failed: unknown credential or wrong "
                                         "secret"));
  }
  Add(counters_->auth_ok);
  state_ = State::kReady;
  cred_ = std::move(cred);
  wire::AuthMessage proof;
  proof.mac = wire::AuthMac(cred_.secret, wire::AuthRole::kServer, server_nonce_, client_nonce_,
                            binding);
  Send(Resp(wire::Op::kAuth), h.request_id, wire::EncodeAuth(proof));
  // Inside TLS every record is already authenticated (AEAD, per-record sequence numbers): a
  // second MAC per frame would add a GMAC over every byte for nothing (docs/decisions.md).
  if (tls_) return;
  // Every frame after this one, both ways, carries a tag under the session's keys.
  const wire::SessionKeys keys =
      wire::DeriveSessionKeys(cred_.secret, server_nonce_, client_nonce_);
  mac_in_ = wire::FrameMac(keys.client_to_server);
  mac_out_ = wire::FrameMac(keys.server_to_client);
}

Status ServerSession::Require(bool right, const char* what) {
  if (right) return Status::Ok();
  Add(counters_->denied);
  return Status::PermissionDenied(std::string(what) + " (credential '" + cred_.id + "')");
}

StatusOr<uint64_t> ServerSession::NamespaceOf(std::string_view encoding) {
  std::string key(encoding);
  auto it = ns_cache_.find(key);
  if (it != ns_cache_.end()) return it->second;  // its tenant was checked when cached
  KVT_ASSIGN_OR_RETURN(NamespaceDesc desc, DecodeNamespace(encoding));
  if (!cred_.AllowsTenant(desc.tenant_salt)) {
    Add(counters_->denied);
    return Status::PermissionDenied("credential '" + cred_.id + "' may not use tenant '" +
                                    desc.tenant_salt + "'");
  }
  if (cfg_.max_namespaces_per_connection > 0 &&
      ns_cache_.size() >= cfg_.max_namespaces_per_connection) {
    Add(counters_->namespace_limit);
    return Status::Busy("more than " + std::to_string(cfg_.max_namespaces_per_connection) +
                        " namespaces on one connection");
  }
  if (cfg_.max_namespaces_per_connection == 0 && ns_cache_.size() >= kMaxCachedNamespaces) {
    ForgetNamespaces();  // no limit per connection: keep only the recent ones registered
  }
  auto opened = store_->AcquirePeerNamespace(encoding, cfg_.max_namespaces);
  if (opened.status().code() == Code::kBusy) Add(counters_->namespace_limit);
  KVT_ASSIGN_OR_RETURN(NamespaceRef info, std::move(opened));
  ns_cache_.emplace(std::move(key), info->id);  // released when the connection closes
  ns_geometry_[info->id] = info->geometry;
  return info->id;
}

Status ServerSession::HandleLookup(const wire::FrameHeader& h, std::span<const uint8_t> body) {
  Add(counters_->lookups);
  KVT_RETURN_IF_ERROR(Require(cred_.read, "LOOKUP needs the read right"));
  wire::KeysRequest req;
  KVT_RETURN_IF_ERROR(wire::DecodeKeysRequest(body, cfg_.limits, /*allow_keys=*/true, &req));
  KVT_ASSIGN_OR_RETURN(uint64_t ns, NamespaceOf(req.ns));
  std::vector<wire::LookupEntry> entries(req.keys.size());
  for (size_t i = 0; i < req.keys.size(); ++i) {
    BlockMeta m;
    if (store_->PeekLocal(ns, req.keys[i], &m)) {
      entries[i].present = true;
      entries[i].info = ToBlockInfo(m);
    }
  }
  Send(Resp(wire::Op::kLookup), h.request_id, wire::EncodeLookupResponse(entries));
  return Status::Ok();
}

Status ServerSession::HandleGet(const wire::FrameHeader& h, std::span<const uint8_t> body) {
  Add(counters_->gets);
  KVT_RETURN_IF_ERROR(Require(cred_.read, "GET needs the read right"));
  wire::KeysRequest req;
  KVT_RETURN_IF_ERROR(wire::DecodeKeysRequest(body, cfg_.limits, /*allow_keys=*/true, &req));
  KVT_ASSIGN_OR_RETURN(uint64_t ns, NamespaceOf(req.ns));
  const Geometry& g = ns_geometry_.at(ns);
  get_ = PendingGet{h.request_id, ns, std::move(req.keys), 0, g, ChooseEncoding(codecs_, g)};
  return Status::Ok();  // Pump streams the blocks (ContinueGet)
}

void ServerSession::ContinueGet() {
  PendingGet& g = *get_;
  while (g.next < g.keys.size() && out_bytes_ < cfg_.out_high_water) {
    const size_t i = g.next++;
    wire::GetBlockHead head;
    head.index = static_cast<uint32_t>(i);
    OutItem item;
    PinnedBlock b;
    if (store_->PinLocal(g.ns, g.keys[i], &b)) {
      head.present = true;
      if (g.encoding != wire::Encoding::kRaw && !spare_.empty()) {
        item.encoded = std::move(spare_.back());
        spare_.pop_back();
      }
      head.info = ToBlockInfo(b.meta);
      const wire::Encoding used =
          EncodePayload(g.encoding, g.geometry, b.data, b.meta.payload_bytes, &item.encoded,
                        &head.info.checksum, &counters_->codec);
      if (used == wire::Encoding::kRaw) {
        item.pin = b;
        item.ext = b.data;
        item.ext_len = b.meta.payload_bytes;
      } else {
        store_->UnpinLocal(b);  // the encoded copy goes out instead
        head.info.encoding = static_cast<uint8_t>(used);
        item.ext = item.encoded.data();
        item.ext_len = item.encoded.size();
      }
      Add(counters_->blocks_sent);
    } else {
      Add(counters_->blocks_missing);
    }
    wire::FrameHeader fh;
    fh.opcode = Resp(wire::Op::kGet);
    fh.flags = g.next == g.keys.size() ? wire::kFlagEnd : 0;
    fh.request_id = g.request_id;
    fh.body_len = static_cast<uint32_t>(wire::kGetBlockHeadBytes + item.ext_len);
    item.bytes.resize(wire::kHeaderBytes + wire::kGetBlockHeadBytes);
    wire::EncodeHeader(fh, item.bytes.data());
    wire::EncodeGetBlockHead(head, item.bytes.data() + wire::kHeaderBytes);
    if (mac_out_.active()) {  // over the pinned payload in place: no copy
      mac_out_.Begin(item.bytes.data());
      mac_out_.Update(std::span<const uint8_t>(item.bytes).subspan(wire::kHeaderBytes));
      mac_out_.Update({item.ext, item.ext_len});
      item.tag = mac_out_.Finish();
      item.tag_len = wire::kTagBytes;
    }
    Push(std::move(item));
  }
  if (g.next == g.keys.size()) get_.reset();
}

Status ServerSession::HandlePut(const wire::FrameHeader& h, std::span<const uint8_t> body) {
  Add(counters_->puts);
  KVT_RETURN_IF_ERROR(Require(cred_.write, "PUT needs the write right"));
  wire::PutRequest req;
  KVT_RETURN_IF_ERROR(wire::DecodePut(body, cfg_.limits, &req));
  KVT_ASSIGN_OR_RETURN(uint64_t ns, NamespaceOf(req.ns));
  const uint8_t* payload = req.payload.data();
  if (req.info.encoding != static_cast<uint8_t>(wire::Encoding::kRaw)) {
    const auto e = static_cast<wire::Encoding>(req.info.encoding);
    if ((codecs_ & wire::CodecBit(e)) == 0) {
      return Status::InvalidArgument(std::string("put encoded as ") +
                                     wire::EncodingName(req.info.encoding) +
                                     ", which this connection did not negotiate");
    }
    // Bounded: DecodePayload wants exactly the namespace's block size, within max_body.
    decoded_.resize(req.info.payload_bytes <= cfg_.limits.max_body ? req.info.payload_bytes : 0);
    KVT_RETURN_IF_ERROR(DecodePayload(e, ns_geometry_.at(ns), req.payload, decoded_.data(),
                                      req.info.payload_bytes, cfg_.limits.max_body,
                                      &counters_->codec));
    payload = decoded_.data();
  }
  Status stored = store_->PutFromPeer(ToBlockMeta(ns, req.info), payload);
  // Not kept across puts when large: idle connections must not each hold a block's worth.
  if (decoded_.capacity() > (4u << 20)) std::vector<uint8_t>().swap(decoded_);
  KVT_RETURN_IF_ERROR(stored);
  Add(counters_->blocks_received);
  Send(Resp(wire::Op::kPut), h.request_id, {});
  return Status::Ok();
}

Status ServerSession::HandleDrop(const wire::FrameHeader& h, std::span<const uint8_t> body) {
  Add(counters_->drops);
  KVT_RETURN_IF_ERROR(Require(cred_.drop, "DROP_NAMESPACE needs the drop (or admin) right"));
  wire::KeysRequest req;
  KVT_RETURN_IF_ERROR(wire::DecodeKeysRequest(body, cfg_.limits, /*allow_keys=*/false, &req));
  KVT_ASSIGN_OR_RETURN(uint64_t ns, NamespaceOf(req.ns));
  KVT_RETURN_IF_ERROR(store_->DropNamespace(ns));
  Send(Resp(wire::Op::kDropNamespace), h.request_id, {});
  return Status::Ok();
}

void ServerSession::Send(uint8_t opcode, uint64_t id, std::span<const uint8_t> body,
                         uint8_t flags) {
  OutItem item;
  wire::AppendFrame({opcode, 0, flags, id, 0}, body, &item.bytes);
  Push(std::move(item));
}

void ServerSession::Push(OutItem item) {
  if (mac_out_.active() && item.tag_len == 0) {
    item.tag = mac_out_.Tag(item.bytes);
    item.tag_len = wire::kTagBytes;
  }
  out_bytes_ += item.size();
  out_.push_back(std::move(item));
}

void ServerSession::SendError(uint8_t opcode, uint64_t id, const Status& s) {
  std::string msg = s.message();
  if (msg.size() > cfg_.limits.max_message) msg.resize(cfg_.limits.max_message);
  OutItem item;
  wire::AppendFrame({opcode, static_cast<uint8_t>(s.code()), wire::kFlagEnd, id, 0},
                    {reinterpret_cast<const uint8_t*>(msg.data()), msg.size()}, &item.bytes);
  Push(std::move(item));
}

void ServerSession::Fail(uint8_t opcode, uint64_t id, const Status& s) {
  SendError(opcode, id, s);
  closing_ = true;
  get_.reset();
}

std::vector<std::span<const uint8_t>> ServerSession::Output(size_t max_bufs) const {
  std::vector<std::span<const uint8_t>> v;
  for (const OutItem& o : out_) {
    if (v.size() + 3 > max_bufs) break;
    // Three parts: header (+ body), pinned payload, tag; `sent` may be inside any of them.
    const std::span<const uint8_t> parts[] = {
        o.bytes, {o.ext, o.ext_len}, {o.tag.data(), o.tag_len}};
    size_t skip = o.sent;
    for (const auto& p : parts) {
      if (skip >= p.size()) {
        skip -= p.size();
        continue;
      }
      v.push_back(p.subspan(skip));
      skip = 0;
    }
  }
  return v;
}

void ServerSession::Advance(size_t n) {
  Add(counters_->bytes_out, n);
  out_bytes_ -= n;
  while (n > 0 && !out_.empty()) {
    OutItem& o = out_.front();
    const size_t take = std::min(n, o.size() - o.sent);
    o.sent += take;
    n -= take;
    if (o.sent == o.size()) {
      if (o.pin) store_->UnpinLocal(*o.pin);
      if (o.encoded.capacity() > 0 && spare_.size() < 4) spare_.push_back(std::move(o.encoded));
      out_.pop_front();
      Add(counters_->frames_out);
    }
  }
  // Spare encode buffers live only while a get streams (bounded by the output high-water mark).
  if (!get_ && out_.empty()) spare_.clear();
  Pump();
}

namespace {

void Flatten(const nlohmann::json& j, const std::string& name, std::string* out,
             std::vector<std::pair<std::string, std::string>>* labels) {
  if (j.is_object()) {
    std::vector<std::pair<std::string, std::string>> mine;
    for (auto it = j.begin(); it != j.end(); ++it) {
      std::string k = it.key();
      for (char& c : k) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      Flatten(*it, name + "_" + k, out, &mine);
    }
    if (!mine.empty()) {
      *out += name + "_info{";
      for (size_t i = 0; i < mine.size(); ++i) {
        std::string v = mine[i].second;
        std::string esc;
        for (char c : v) {
          if (c == '"' || c == '\\') esc += '\\';
          if (c == '\n') {
            esc += "\\n";
            continue;
          }
          esc += c;
        }
        *out += (i ? "," : "") + mine[i].first + "=\"" + esc + "\"";
      }
      *out += "} 1\n";
    }
    return;
  }
  if (j.is_boolean()) {
    *out += name + (j.get<bool>() ? " 1\n" : " 0\n");
  } else if (j.is_number()) {
    *out += name + " " + j.dump() + "\n";
  } else if (j.is_string()) {
    labels->emplace_back(name.substr(name.rfind('_') + 1), j.get<std::string>());
  }
}

}  // namespace

std::string StatsToPrometheus(const std::string& stats_json) {
  nlohmann::json j = nlohmann::json::parse(stats_json, nullptr, /*allow_exceptions=*/false);
  std::string out;
  std::vector<std::pair<std::string, std::string>> labels;
  if (!j.is_discarded()) Flatten(j, "kvtier", &out, &labels);
  return out;
}

}  // namespace kvt
