// RemoteTier: the store's client of other nodes' kvtierd. Each block has one owning node, picked
// by rendezvous (highest-random-weight) hashing of its key over the configured endpoints, so every
// client agrees on the owner without coordination and removing a node moves only its blocks.
//
// A small pool keeps idle authenticated connections per node. A Get splits each node's keys into
// batches (`batch_blocks` keys per GET request) and schedules them batch by batch over up to
// `connections_per_node` connections of that node (each claims the next batch when it has room),
// keeping `pipeline_depth` requests in flight on each: on a link with a real bandwidth-delay
// product the node never waits for a request, and a slow or dead connection holds only the
// batches it claimed. A request that fails on a pooled
// connection (the server restarted meanwhile) is retried once on a fresh one; every operation is
// idempotent. After a failed connect a node is skipped for a short back-off, so a dead node costs
// one connect timeout, not one per lookup.
//
// Failures are statuses or misses, never wrong bytes: every payload is checked against the XXH3-64
// checksum in its block meta before the caller may keep it, and the meta (parent, tokens digest)
// goes back to the store to verify as for a local hit.
//
// The node set may be replaced while in use (SetNodes, from etcd membership): each operation
// works on the set it started with, so a node that leaves mid-request costs that request a miss.
//
// Thread safety: every method may be called concurrently.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/status.h"
#include "io/wire_format.h"
#include "tiers/policy/block_meta.h"
#include "tiers/remote/remote_conn.h"
#include "tiers/remote/wire_codec.h"

namespace kvt {

// A block's identity and checksum in wire form, and back (the namespace travels separately).
wire::BlockInfo ToBlockInfo(const BlockMeta& m);
BlockMeta ToBlockMeta(uint64_t ns, const wire::BlockInfo& b);

struct RemoteOptions {
  std::vector<std::string> endpoints;  // host:port
  std::string secret;                  // empty: no authentication
  std::string credential;              // the id of a per-tenant credential; empty: shared secret
  TlsOptions tls;
  RemoteTimeouts timeouts;
  size_t max_idle_per_node = 4;
  std::chrono::milliseconds down_backoff{500};
  bool allow_empty = false;  // etcd membership: the set may start (and become) empty
  // Transfers (see the class comment). batch_blocks 0: up to the node's max_keys per request.
  size_t connections_per_node = 1;
  size_t batch_blocks = 0;
  size_t pipeline_depth = 4;
  // SO_SNDBUF/SO_RCVBUF of each connection; 0: the kernel's autotuning. For a link of R bytes/s
  // and round trip T, give each of the N connections R*T/N at least (BdpBytes).
  size_t socket_buffer_bytes = 0;
  // Payload codecs to offer each node (remote_compression; wire::kCodec*). 0: none, and the
  // hello is the original one. A node uses what it accepts of them (kvtierd --compression).
  uint8_t codecs = 0;
};

// Bytes in flight a link of `bits_per_s` with round trip `rtt` holds (its bandwidth-delay product).
inline size_t BdpBytes(double bits_per_s, std::chrono::microseconds rtt) {
  return static_cast<size_t>(bits_per_s / 8 * static_cast<double>(rtt.count()) / 1e6);
}

struct RemoteCounters {
  std::atomic<uint64_t> requests{0}, failures{0}, timeouts{0}, retries{0};
  std::atomic<uint64_t> connects{0}, connect_failures{0}, auth_failures{0}, skipped_down{0};
  std::atomic<uint64_t> lookup_keys{0}, lookup_hits{0};
  std::atomic<uint64_t> get_keys{0}, get_hits{0}, checksum_failures{0}, frame_mac_failures{0};
  std::atomic<uint64_t> puts{0}, bytes_in{0}, bytes_out{0};
  std::atomic<uint64_t> node_set_changes{0}, no_node{0};  // SetNodes calls; requests with no node
  std::atomic<uint64_t> get_batches{0}, get_workers{0}, batches_resent{0};
  // Compression: connections whose HELLO accepted a codec, connections made plain again for a
  // node from before compression, and the codec's own counters (GET payloads decoded, PUT
  // payloads encoded).
  std::atomic<uint64_t> compressed_connections{0}, codec_fallbacks{0};
  WireCodecCounters codec;
};

// What a streamed payload needs to decode an encoded block (a Get with compression on).
struct PayloadDecoding {
  const Geometry* geometry = nullptr;  // the namespace's; null: the encoding could not be read
  WireCodecCounters* counters = nullptr;
  std::vector<uint8_t>* scratch = nullptr;  // the encoded bytes (one block at a time)
};

// Reads the payload of one streamed block. Read verifies the checksum after filling dst.
class RemotePayload {
 public:
  RemotePayload(RemoteConn* c, const wire::BlockInfo& info,
                std::atomic<uint64_t>* checksum_failures, uint32_t wire_bytes = 0,
                const PayloadDecoding* decoding = nullptr)
      : conn_(c),
        info_(info),
        checksum_failures_(checksum_failures),
        wire_bytes_(wire_bytes),
        decoding_(decoding) {}
  // Fills dst (info().payload_bytes), decoding an encoded block. Corruption: the checksum
  // failed (dst holds garbage; the stream is still in step), or an encoded payload did not
  // decode (the connection is then broken: nothing more is read from it). Other errors: the
  // connection failed.
  Status Read(uint8_t* dst);
  const wire::BlockInfo& info() const { return info_; }
  bool consumed() const { return consumed_; }

 private:
  RemoteConn* conn_;
  wire::BlockInfo info_;
  std::atomic<uint64_t>* checksum_failures_;
  uint32_t wire_bytes_;
  const PayloadDecoding* decoding_;
  bool consumed_ = false;
};

class RemoteTier {
 public:
  static StatusOr<std::unique_ptr<RemoteTier>> Create(const RemoteOptions& o);
  ~RemoteTier();

  // Create with no endpoints is allowed only with allow_empty (the set comes later, SetNodes).
  size_t nodes() const { return Nodes()->size(); }
  std::string endpoint(size_t node) const;
  // The owning node of a key (rendezvous hashing over the endpoint names), an index into the
  // current set. REQUIRES: nodes() > 0.
  size_t Owner(const Hash128& key) const;
  // Replaces the node set (endpoints as host:port). Nodes in both sets keep their pooled
  // connections; operations already running finish on the old set. With an empty set every
  // lookup and get misses and puts are skipped (counted in no_node).
  void SetNodes(const std::vector<std::string>& endpoints);

  // Connects to every node once. PermissionDenied when a node rejects our secret (or cannot prove
  // its own); nodes that cannot be reached are only logged (they may come up later).
  Status Probe();

  // Metadata of each key at its owner (out: keys.size() entries). Unreachable nodes give absent
  // entries; PermissionDenied is returned as a status.
  Status Lookup(std::string_view ns, std::span<const Hash128> keys,
                std::vector<wire::LookupEntry>* out);

  // Streams every present block to sink(index, payload): batches of keys per node, pipelined, over
  // up to connections_per_node connections each (class comment). The sink reads the payload (or
  // leaves it; it is then skipped). It may run on several threads but never concurrently (calls
  // are serialized), and at most once per index. A block whose checksum fails is reported to the
  // sink as Corruption by Read and counted. Returns the first connection-level failure; blocks
  // delivered before it stay delivered, the rest are misses.
  using Sink = std::function<void(size_t index, RemotePayload* payload)>;
  Status Get(std::string_view ns, std::span<const Hash128> keys, const Sink& sink);

  // Stores one block at its owner (gather write: head, then the payload from `data`, no copy).
  Status Put(std::string_view ns, const wire::BlockInfo& info, const void* data);
  // Drops the namespace on every node; the first failure.
  Status DropNamespace(std::string_view ns);
  // One node's metrics, Prometheus text.
  Status Metrics(size_t node, std::string* text);

  const RemoteCounters& counters() const { return counters_; }
  void StatsJson(nlohmann::json* out) const;

 private:
  struct Node;
  using NodeSet = std::vector<std::shared_ptr<Node>>;
  explicit RemoteTier(const RemoteOptions& o);
  std::shared_ptr<const NodeSet> Nodes() const;
  static size_t OwnerIn(const NodeSet& set, const Hash128& key);
  // Runs fn on a pooled (or new) connection of `node`; retries once on a fresh connection when a
  // pooled one turns out dead. Broken connections are dropped, healthy ones go back to the pool.
  Status WithConn(Node& node, const std::function<Status(RemoteConn*)>& fn);
  struct GetJob;
  // One worker of a Get on one connection: resends the batches it holds from an attempt on a
  // connection that died, then claims batches until none are left.
  Status RunGetBatches(RemoteConn* c, GetJob* job, std::vector<size_t>* mine, const Sink& sink);
  // Reads the response of one GET request for keys [at, at + n) of the job.
  // `decoding`: for encoded blocks (null when this tier offers no codec).
  Status ReadGetResponse(RemoteConn* c, GetJob* job, uint64_t id, size_t at, size_t n,
                         const Sink& sink, std::vector<uint8_t>* scratch,
                         const PayloadDecoding* decoding);
  void Count(const Status& s);

  RemoteOptions opts_;
  mutable std::mutex nodes_mu_;
  std::shared_ptr<const NodeSet> nodes_;  // GUARDED_BY(nodes_mu_); replaced whole, never edited
  mutable RemoteCounters counters_;
};

}  // namespace kvt
