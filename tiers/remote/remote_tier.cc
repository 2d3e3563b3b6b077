#include "tiers/remote/remote_tier.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/counter.h"
#include "base/log.h"

namespace kvt {

wire::BlockInfo ToBlockInfo(const BlockMeta& m) {
  wire::BlockInfo b;
  b.key = m.key;
  b.parent = m.parent;
  b.tokens_digest = m.tokens_digest;
  b.has_tokens = m.has_tokens;
  b.payload_bytes = m.payload_bytes;
  b.checksum = m.checksum;
  return b;
}

BlockMeta ToBlockMeta(uint64_t ns, const wire::BlockInfo& b) {
  BlockMeta m;
  m.ns = ns;
  m.key = b.key;
  m.parent = b.parent;
  m.tokens_digest = b.tokens_digest;
  m.has_tokens = b.has_tokens;
  m.payload_bytes = b.payload_bytes;
  m.checksum = b.checksum;
  return m;
}
namespace {

uint8_t OpByte(wire::Op op) { return static_cast<uint8_t>(op); }

// The geometry of a namespace from its canonical encoding; nullopt when it does not parse (the
// server would refuse it anyway; an encoded block for it is then never accepted).
std::optional<Geometry> GeometryOfEncoding(std::string_view ns) {
  auto d = DecodeNamespace(ns);
  if (!d.ok()) return std::nullopt;
  auto g = ValidateNamespace(*d);
  if (!g.ok()) return std::nullopt;
  return *g;
}

// A response frame must answer the request we sent, in order.
Status CheckResponse(RemoteConn* c, const wire::FrameHeader& h, wire::Op op, uint64_t id) {
  // A protocol error ends the connection whatever request it names (its id may be another one's,
  // or 0 when the server could not parse a header): the caller reads it as the error.
  if (h.opcode == wire::kProtocolError && h.status != 0) return Status::Ok();
  if (h.opcode != (OpByte(op) | wire::kResponseBit) || h.request_id != id) {
    return Status::Corruption("from " + c->endpoint() + ": " + wire::OpName(h.opcode) + " for request " +
                              std::to_string(h.request_id) + " where " +
                              wire::OpName(OpByte(op) | wire::kResponseBit) + " for " +
                              std::to_string(id) + " was due");
  }
  return Status::Ok();
}

// Reads a plain (non-streamed) response: Ok with its body, or the error it carries.
Status ReadResponse(RemoteConn* c, wire::Op op, uint64_t id, std::vector<uint8_t>* body) {
  wire::FrameHeader h;
  KVT_RETURN_IF_ERROR(c->ReadHeader(&h));
  Status s = CheckResponse(c, h, op, id);
  if (!s.ok()) {
    (void)c->ReadBody(h, body);
    return s;
  }
  if (h.status != 0) return c->ReadErrorResponse(h);
  return c->ReadBody(h, body);
}

}  // namespace

struct RemoteTier::Node {
  std::string endpoint;
  uint64_t seed = 0;  // rendezvous weight seed: hash of the endpoint name
  std::mutex mu;
  std::vector<std::unique_ptr<RemoteConn>> idle;  // GUARDED_BY(mu)
  std::chrono::steady_clock::time_point down_until{};  // GUARDED_BY(mu)
};

Status RemotePayload::Read(uint8_t* dst) {
  consumed_ = true;
  if (info_.encoding == static_cast<uint8_t>(wire::Encoding::kRaw)) {
    KVT_RETURN_IF_ERROR(conn_->ReadExact(dst, info_.payload_bytes));
  } else {
    // ReadGetResponse let an encoded block through only with a negotiated codec and a decoding.
    std::vector<uint8_t>& in = *decoding_->scratch;
    in.resize(wire_bytes_);  // bounded: less than payload_bytes, within the frame limit
    KVT_RETURN_IF_ERROR(conn_->ReadExact(in.data(), in.size()));  // tag verified with the last byte
    Status ds = DecodePayload(static_cast<wire::Encoding>(info_.encoding), *decoding_->geometry, in,
                              dst, info_.payload_bytes, conn_->limits().max_body,
                              decoding_->counters);
    if (!ds.ok()) {
      conn_->MarkBroken();  // a node that sends what does not decode is not trusted further
      return ds.WithContext("block from " + conn_->endpoint());
    }
  }
  if (Checksum64(dst, info_.payload_bytes) != info_.checksum) {
    checksum_failures_->fetch_add(1, std::memory_order_relaxed);
    return Status::Corruption("block from " + conn_->endpoint() + " failed its payload checksum");
  }
  return Status::Ok();
}

RemoteTier::RemoteTier(const RemoteOptions& o) : opts_(o) {}
RemoteTier::~RemoteTier() = default;

StatusOr<std::unique_ptr<RemoteTier>> RemoteTier::Create(const RemoteOptions& o) {
  if (o.endpoints.empty() && !o.allow_empty) return Status::InvalidArgument("remote: no endpoints");
  std::unique_ptr<RemoteTier> t(new RemoteTier(o));
  t->nodes_ = std::make_shared<const NodeSet>();
  t->SetNodes(o.endpoints);
  t->counters_.node_set_changes = 0;
  return t;
}

// --- the node set (replaceable at runtime: etcd membership) --------------------------------------

std::shared_ptr<const RemoteTier::NodeSet> RemoteTier::Nodes() const {
  std::lock_guard<std::mutex> l(nodes_mu_);
  return nodes_;
}

void RemoteTier::SetNodes(const std::vector<std::string>& endpoints) {
  auto old = Nodes();
  auto set = std::make_shared<NodeSet>();
  for (const std::string& ep : endpoints) {
    std::shared_ptr<Node> n;
    for (const auto& o : *old) {
      if (o->endpoint == ep) n = o;  // kept: its idle connections stay pooled
    }
    if (!n) {
      n = std::make_shared<Node>();
      n->endpoint = ep;
      n->seed = Checksum64(ep.data(), ep.size());
    }
    set->push_back(std::move(n));
  }
  Add(counters_.node_set_changes);
  std::lock_guard<std::mutex> l(nodes_mu_);
  nodes_ = std::move(set);
}

std::string RemoteTier::endpoint(size_t node) const {
  auto set = Nodes();
  return node < set->size() ? (*set)[node]->endpoint : std::string();
}

size_t RemoteTier::Owner(const Hash128& key) const { return OwnerIn(*Nodes(), key); }

size_t RemoteTier::OwnerIn(const NodeSet& nodes, const Hash128& key) {
  size_t best = 0;
  uint64_t best_score = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const uint64_t in[3] = {nodes[i]->seed, key.lo, key.hi};
    const uint64_t score = Checksum64(in, sizeof in);
    if (i == 0 || score > best_score) {
      best = i;
      best_score = score;
    }
  }
  return best;
}

void RemoteTier::Count(const Status& s) {
  if (s.ok()) return;
  Add(counters_.failures);
  if (s.code() == Code::kTimeout) Add(counters_.timeouts);
  if (s.code() == Code::kPermissionDenied) Add(counters_.auth_failures);
}

Status RemoteTier::WithConn(Node& n, const std::function<Status(RemoteConn*)>& fn) {
  Add(counters_.requests);
  for (int attempt = 0;; ++attempt) {
    std::unique_ptr<RemoteConn> c;
    {
      std::lock_guard<std::mutex> l(n.mu);
      if (attempt > 0) {
        // A pooled connection was dead: the node restarted or the path broke, so every other idle
        // one of that time is suspect too. The retry connects afresh.
        n.idle.clear();
      } else if (!n.idle.empty()) {
        c = std::move(n.idle.back());
        n.idle.pop_back();
      } else if (std::chrono::steady_clock::now() < n.down_until) {
        Add(counters_.skipped_down);
        return Status::Unavailable("kvtierd " + n.endpoint + " is unreachable (backing off)");
      }
    }
    const bool pooled = c != nullptr;
    if (!pooled) {
      Add(counters_.connects);
      auto r = RemoteConn::Connect(n.endpoint, opts_.secret, opts_.timeouts, opts_.credential,
                                   opts_.tls, opts_.socket_buffer_bytes, opts_.codecs);
      if (!r.ok()) {
        Add(counters_.connect_failures);
        Count(r.status());
        if (r.status().code() != Code::kPermissionDenied) {
          std::lock_guard<std::mutex> l(n.mu);
          n.down_until = std::chrono::steady_clock::now() + opts_.down_backoff;
        }
        return r.status();
      }
      c = std::move(r).value();
      if (c->codecs() != 0) Add(counters_.compressed_connections);
      if (c->fallback()) Add(counters_.codec_fallbacks);
    }
    const uint64_t in0 = c->bytes_in(), out0 = c->bytes_out();
    Status s = fn(c.get());
    Add(counters_.bytes_in, c->bytes_in() - in0);
    Add(counters_.bytes_out, c->bytes_out() - out0);
    if (c->tampered()) {
      // Someone on the path altered the stream: not a dead pooled connection, no retry.
      Add(counters_.frame_mac_failures);
      Count(s);
      return s;
    }
    if (!c->broken()) {
      std::lock_guard<std::mutex> l(n.mu);
      if (n.idle.size() < opts_.max_idle_per_node) n.idle.push_back(std::move(c));
      Count(s);
      return s;
    }
    // A pooled connection may have died while idle (the server restarted): one fresh try.
    if (!pooled || attempt > 0) {
      Count(s);
      return s;
    }
    Add(counters_.retries);
  }
}

Status RemoteTier::Probe() {
  for (const auto& node : *Nodes()) {
    Status s = WithConn(*node, [](RemoteConn*) { return Status::Ok(); });
    if (s.code() == Code::kPermissionDenied) return s;
    if (!s.ok()) KVT_LOG(kWarn, "remote tier: " + s.ToString() + " (will retry on demand)");
  }
  return Status::Ok();
}

namespace {

// Keys grouped by owning node, with their positions in the caller's array.
struct Group {
  std::vector<Hash128> keys;
  std::vector<size_t> index;
};

}  // namespace

Status RemoteTier::Lookup(std::string_view ns, std::span<const Hash128> keys,
                          std::vector<wire::LookupEntry>* out) {
  out->assign(keys.size(), wire::LookupEntry{});
  const auto nodes = Nodes();
  if (nodes->empty()) {
    Add(counters_.no_node);
    return Status::Ok();  // no node: every key is absent
  }
  std::vector<Group> groups(nodes->size());
  for (size_t i = 0; i < keys.size(); ++i) {
    Group& g = groups[OwnerIn(*nodes, keys[i])];
    g.keys.push_back(keys[i]);
    g.index.push_back(i);
  }
  Add(counters_.lookup_keys, keys.size());
  for (size_t node = 0; node < nodes->size(); ++node) {
    const Group& g = groups[node];
    if (g.keys.empty()) continue;
    Status s = WithConn(*(*nodes)[node], [&](RemoteConn* c) -> Status {
      // Pipelined: every chunk's request in one write, then the responses in order.
      const size_t chunk = c->limits().max_keys;
      std::vector<std::vector<uint8_t>> frames;
      std::vector<uint64_t> ids;
      for (size_t at = 0; at < g.keys.size(); at += chunk) {
        const size_t n = std::min(chunk, g.keys.size() - at);
        ids.push_back(c->NextRequestId());
        frames.emplace_back();
        wire::AppendFrame({OpByte(wire::Op::kLookup), 0, wire::kFlagEnd, ids.back(), 0},
                          wire::EncodeKeysRequest(ns, std::span(g.keys).subspan(at, n)),
                          &frames.back());
      }
      std::vector<std::span<const uint8_t>> bufs(frames.begin(), frames.end());
      KVT_RETURN_IF_ERROR(c->Write(bufs));
      std::vector<uint8_t> body;
      std::vector<wire::LookupEntry> entries;
      for (size_t k = 0; k < ids.size(); ++k) {
        KVT_RETURN_IF_ERROR(ReadResponse(c, wire::Op::kLookup, ids[k], &body));
        KVT_RETURN_IF_ERROR(wire::DecodeLookupResponse(body, c->limits(), &entries));
        const size_t at = k * chunk, n = std::min(chunk, g.keys.size() - at);
        if (entries.size() != n) return Status::Corruption("lookup response count mismatch");
        for (size_t j = 0; j < n; ++j) {
          wire::LookupEntry& e = entries[j];
          // An entry for another key than asked is not an answer: drop it.
          if (e.present && !(e.info.key == g.keys[at + j])) e.present = false;
          if (e.present) Add(counters_.lookup_hits);
          (*out)[g.index[at + j]] = e;
        }
      }
      return Status::Ok();
    });
    if (s.code() == Code::kPermissionDenied) return s;
    if (!s.ok()) KVT_LOG(kDebug, "remote lookup: " + s.ToString());
  }
  return Status::Ok();
}

// One node's share of a Get: its keys in batches, claimed one by one by the workers.
struct RemoteTier::GetJob {
  size_t node = 0;
  std::string_view ns;
  std::vector<Hash128> keys;   // the node's keys
  std::vector<size_t> index;   // their positions in the caller's array
  size_t batch = 0;            // keys per batch
  size_t batches = 0;
  std::atomic<size_t> next{0};  // the next batch nobody has claimed
  // Per key: given to the sink already (a batch resent after a dead connection skips these).
  // Each batch belongs to one worker at a time, so its entries need no lock.
  std::vector<uint8_t> delivered;
  std::optional<Geometry> geometry;  // the namespace's, when this tier offers codecs
};

Status RemoteTier::ReadGetResponse(RemoteConn* c, GetJob* job, uint64_t id, size_t at, size_t n,
                                   const Sink& sink, std::vector<uint8_t>* scratch,
                                   const PayloadDecoding* decoding) {
  for (;;) {  // one frame per key, the last flagged End (or one error frame)
    wire::FrameHeader h;
    KVT_RETURN_IF_ERROR(c->ReadHeader(&h));
    KVT_RETURN_IF_ERROR(CheckResponse(c, h, wire::Op::kGet, id));
    if (h.status != 0) return c->ReadErrorResponse(h);  // the caller tells broken from not
    uint8_t head_bytes[wire::kGetBlockHeadBytes];
    if (h.body_len < sizeof head_bytes) {
      return Status::Corruption("get response from " + c->endpoint() + " is too short");
    }
    KVT_RETURN_IF_ERROR(c->ReadExact(head_bytes, sizeof head_bytes));
    wire::GetBlockHead head;
    Status hs = wire::DecodeGetBlockHead(head_bytes, h.body_len, &head);
    if (!hs.ok() || head.index >= n ||
        (head.present && !(head.info.key == job->keys[at + head.index]))) {
      // The stream cannot be trusted past this point.
      c->MarkBroken();
      return Status::Corruption("get response from " + c->endpoint() + ": " +
                                (hs.ok() ? "a block for another key" : hs.message()));
    }
    const auto enc = static_cast<wire::Encoding>(head.info.encoding);
    if (head.present && enc != wire::Encoding::kRaw &&
        ((c->codecs() & wire::CodecBit(enc)) == 0 || decoding == nullptr ||
         decoding->geometry == nullptr)) {
      c->MarkBroken();
      Add(counters_.codec.decode_failures);
      return Status::Corruption("get response from " + c->endpoint() + ": a block encoded as " +
                                wire::EncodingName(head.info.encoding) +
                                ", which this connection did not negotiate");
    }
    if (head.present) {
      const size_t k = at + head.index;
      RemotePayload p(c, head.info, &counters_.checksum_failures, head.wire_bytes, decoding);
      if (!job->delivered[k]) {
        job->delivered[k] = 1;
        sink(job->index[k], &p);
        if (c->broken()) {
          return Status::Unavailable("connection to " + c->endpoint() + " failed mid-block");
        }
        Add(counters_.get_hits);
      }
      if (!p.consumed()) {  // not wanted (or delivered before): skip it to stay in step
        size_t left = head.wire_bytes;
        scratch->resize(std::min<size_t>(left, 1 << 20));
        while (left > 0) {
          const size_t step = std::min(left, scratch->size());
          KVT_RETURN_IF_ERROR(c->ReadExact(scratch->data(), step));
          left -= step;
        }
      }
    }
    if (h.flags & wire::kFlagEnd) return Status::Ok();
  }
}

Status RemoteTier::RunGetBatches(RemoteConn* c, GetJob* job, std::vector<size_t>* mine,
                                 const Sink& sink) {
  // Encoded blocks need the namespace's geometry (to check the decoded size and dequantize).
  std::vector<uint8_t> encoded;
  PayloadDecoding decoding{job->geometry ? &*job->geometry : nullptr, &counters_.codec, &encoded};
  // A batch larger than this connection's max_keys goes as several requests.
  struct InFlight {
    size_t batch, at, n;
    uint64_t id;
    bool last;  // the batch's last request
  };
  std::deque<InFlight> inflight;
  size_t batches_in_flight = 0;
  const size_t chunk = c->limits().max_keys;
  std::vector<uint8_t> frames;
  auto send = [&](size_t b) -> Status {
    frames.clear();
    const size_t from = b * job->batch, to = std::min(job->keys.size(), from + job->batch);
    for (size_t at = from; at < to; at += chunk) {
      const size_t n = std::min(chunk, to - at);
      const uint64_t id = c->NextRequestId();
      wire::AppendFrame({OpByte(wire::Op::kGet), 0, wire::kFlagEnd, id, 0},
                        wire::EncodeKeysRequest(job->ns, std::span(job->keys).subspan(at, n)),
                        &frames);
      inflight.push_back({b, at, n, id, at + n == to});
    }
    ++batches_in_flight;
    Add(counters_.get_batches);
    std::span<const uint8_t> bufs[] = {frames};
    return c->Write(bufs);
  };
  // Batches held from an attempt whose connection died: sent again, delivered blocks skipped.
  for (size_t b : *mine) {
    Add(counters_.batches_resent);
    KVT_RETURN_IF_ERROR(send(b));
  }
  const size_t depth = std::max<size_t>(1, opts_.pipeline_depth);
  Status first;
  std::vector<uint8_t> scratch;
  for (;;) {
    while (batches_in_flight < depth) {
      const size_t b = job->next.fetch_add(1, std::memory_order_relaxed);
      if (b >= job->batches) break;
      mine->push_back(b);
      KVT_RETURN_IF_ERROR(send(b));
    }
    if (inflight.empty()) return first;
    const InFlight r = inflight.front();
    inflight.pop_front();
    Status s = ReadGetResponse(c, job, r.id, r.at, r.n, sink, &scratch,
                               c->codecs() != 0 ? &decoding : nullptr);
    if (!s.ok()) {
      if (c->broken()) return s;
      if (first.ok()) first = s;  // an error response: the connection stays usable
    }
    if (r.last) {
      --batches_in_flight;
      mine->erase(std::find(mine->begin(), mine->end(), r.batch));
    }
  }
}

Status RemoteTier::Get(std::string_view ns, std::span<const Hash128> keys, const Sink& sink) {
  const auto nodes = Nodes();
  if (nodes->empty()) {
    Add(counters_.no_node);
    return Status::Ok();  // no node: nothing is delivered, every key misses
  }
  std::vector<std::unique_ptr<GetJob>> jobs(nodes->size());
  for (size_t i = 0; i < keys.size(); ++i) {
    const size_t node = OwnerIn(*nodes, keys[i]);
    if (!jobs[node]) {
      jobs[node] = std::make_unique<GetJob>();
      jobs[node]->node = node;
      jobs[node]->ns = ns;
    }
    jobs[node]->keys.push_back(keys[i]);
    jobs[node]->index.push_back(i);
  }
  Add(counters_.get_keys, keys.size());
  if (opts_.codecs != 0) {
    // Only with compression on is the encoding parsed: a plain Get costs nothing more.
    std::optional<Geometry> g = GeometryOfEncoding(ns);
    for (auto& j : jobs) {
      if (j) j->geometry = g;
    }
  }
  // Workers: up to connections_per_node per node, never more than the node has batches.
  std::vector<GetJob*> workers;
  for (auto& j : jobs) {
    if (!j) continue;
    const wire::Limits defaults;
    j->batch = opts_.batch_blocks > 0 ? opts_.batch_blocks : defaults.max_keys;
    j->batches = (j->keys.size() + j->batch - 1) / j->batch;
    j->delivered.assign(j->keys.size(), 0);
    const size_t w = std::min(std::max<size_t>(1, opts_.connections_per_node), j->batches);
    for (size_t k = 0; k < w; ++k) workers.push_back(j.get());
  }
  Add(counters_.get_workers, workers.size());
  // With several workers the sink's calls are serialized (the caller's sink need not be
  // thread-safe); each worker still reads its own socket while another one is in the sink.
  std::mutex sink_mu;
  const Sink locked = [&](size_t i, RemotePayload* p) {
    std::lock_guard<std::mutex> l(sink_mu);
    sink(i, p);
  };
  const Sink& use = workers.size() > 1 ? locked : sink;
  std::vector<Status> results(workers.size());
  auto work = [&](size_t w) {
    GetJob* job = workers[w];
    std::vector<size_t> mine;  // claimed and not finished; kept across WithConn's retry
    results[w] = WithConn(*(*nodes)[job->node], [&](RemoteConn* c) {
      return RunGetBatches(c, job, &mine, use);
    });
  };
  std::vector<std::thread> threads;
  for (size_t w = 1; w < workers.size(); ++w) threads.emplace_back(work, w);
  if (!workers.empty()) work(0);
  for (auto& t : threads) t.join();
  for (const Status& s : results) {
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

Status RemoteTier::Put(std::string_view ns, const wire::BlockInfo& info, const void* data) {
  Add(counters_.puts);
  const auto nodes = Nodes();
  if (nodes->empty()) {
    Add(counters_.no_node);
    return Status::Ok();  // no node to own the block: it stays local only
  }
  std::optional<Geometry> geometry;
  if (opts_.codecs != 0) geometry = GeometryOfEncoding(ns);
  std::vector<uint8_t> encoded;
  return WithConn(*(*nodes)[OwnerIn(*nodes, info.key)], [&](RemoteConn* c) -> Status {
    wire::BlockInfo sent = info;
    std::span<const uint8_t> payload(static_cast<const uint8_t*>(data), info.payload_bytes);
    if (c->codecs() != 0 && geometry) {
      const wire::Encoding e =
          EncodePayload(ChooseEncoding(c->codecs(), *geometry), *geometry, payload.data(),
                        payload.size(), &encoded, &sent.checksum, &counters_.codec);
      if (e != wire::Encoding::kRaw) {
        sent.encoding = static_cast<uint8_t>(e);
        payload = encoded;
      }
    }
    const std::vector<uint8_t> head = wire::EncodePutHead(ns, sent);
    const uint64_t body = head.size() + uint64_t{payload.size()};
    if (body > c->limits().max_body) {
      return Status::InvalidArgument("a block of " + std::to_string(info.payload_bytes) +
                                     " bytes exceeds the frame limit of " + c->endpoint());
    }
    const uint64_t id = c->NextRequestId();
    uint8_t hdr[wire::kHeaderBytes];
    wire::EncodeHeader({OpByte(wire::Op::kPut), 0, wire::kFlagEnd, id, static_cast<uint32_t>(body)},
                       hdr);
    std::span<const uint8_t> bufs[] = {{hdr, sizeof hdr}, head, payload};
    KVT_RETURN_IF_ERROR(c->Write(bufs));
    std::vector<uint8_t> resp;
    return ReadResponse(c, wire::Op::kPut, id, &resp);
  });
}

Status RemoteTier::DropNamespace(std::string_view ns) {
  Status first;
  for (const auto& node : *Nodes()) {
    Status s = WithConn(*node, [&](RemoteConn* c) -> Status {
      std::vector<uint8_t> frame, resp;
      const uint64_t id = c->NextRequestId();
      wire::AppendFrame({OpByte(wire::Op::kDropNamespace), 0, wire::kFlagEnd, id, 0},
                        wire::EncodeNamespaceRequest(ns), &frame);
      std::span<const uint8_t> bufs[] = {frame};
      KVT_RETURN_IF_ERROR(c->Write(bufs));
      return ReadResponse(c, wire::Op::kDropNamespace, id, &resp);
    });
    if (first.ok() && !s.ok()) first = s;
  }
  return first;
}

Status RemoteTier::Metrics(size_t node, std::string* text) {
  const auto nodes = Nodes();
  if (node >= nodes->size()) return Status::InvalidArgument("no remote node " + std::to_string(node));
  return WithConn(*(*nodes)[node], [&](RemoteConn* c) -> Status {
    std::vector<uint8_t> frame, resp;
    const uint64_t id = c->NextRequestId();
    wire::AppendFrame({OpByte(wire::Op::kStats), 0, wire::kFlagEnd, id, 0}, {}, &frame);
    std::span<const uint8_t> bufs[] = {frame};
    KVT_RETURN_IF_ERROR(c->Write(bufs));
    KVT_RETURN_IF_ERROR(ReadResponse(c, wire::Op::kStats, id, &resp));
    text->assign(resp.begin(), resp.end());
    return Status::Ok();
  });
}

void RemoteTier::StatsJson(nlohmann::json* out) const {
  auto& j = *out;
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  j["nodes"] = Nodes()->size();
  j["requests"] = get(counters_.requests);
  j["failures"] = get(counters_.failures);
  j["timeouts"] = get(counters_.timeouts);
  j["retries"] = get(counters_.retries);
  j["connects"] = get(counters_.connects);
  j["connect_failures"] = get(counters_.connect_failures);
  j["auth_failures"] = get(counters_.auth_failures);
  j["skipped_down"] = get(counters_.skipped_down);
  j["lookup_keys"] = get(counters_.lookup_keys);
  j["lookup_hits"] = get(counters_.lookup_hits);
  j["get_keys"] = get(counters_.get_keys);
  j["get_hits"] = get(counters_.get_hits);
  j["checksum_failures"] = get(counters_.checksum_failures);
  j["frame_mac_failures"] = get(counters_.frame_mac_failures);
  j["puts"] = get(counters_.puts);
  j["bytes_in"] = get(counters_.bytes_in);
  j["bytes_out"] = get(counters_.bytes_out);
  j["node_set_changes"] = get(counters_.node_set_changes);
  j["no_node"] = get(counters_.no_node);
  j["get_batches"] = get(counters_.get_batches);
  j["get_workers"] = get(counters_.get_workers);
  j["batches_resent"] = get(counters_.batches_resent);
  j["compression"] = WireCompressionName(opts_.codecs);
  j["compressed_connections"] = get(counters_.compressed_connections);
  j["codec_fallbacks"] = get(counters_.codec_fallbacks);
  counters_.codec.ToJson(&j["codec"]);
}

}  // namespace kvt
