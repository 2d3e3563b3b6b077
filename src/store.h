// Store: the engine. Owns the tiers, the namespace registry and the key hasher, and verifies every
// hit (stored parent and token digest against the caller's). It loops over its configured tiers
// (the tier contract, tiers/tier.h; fastest first) for lookups, removal and drops, and hands every
// movement of bytes to its Mover (src/mover.h). The C API (c_api.cc) is a thin shell over it.
//
// Thread safety: every method may be called concurrently, except Close, which must not race any
// other call.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/status.h"
#include "io/unique_fd.h"
#include "src/batch_runner.h"
#include "src/block_key.h"
#include "src/events.h"
#include "src/mover.h"
#include "src/options.h"
#include "src/prefetch.h"
#include "src/registered_memory.h"
#include "src/ticket.h"
#include "tiers/policy/admission.h"
#include "tiers/hbm/device_memory.h"
#include "tiers/hbm/hbm_tier.h"
#include "tiers/host/host_tier.h"
#include "tiers/nvme/nvme_tier.h"
#include "membership/etcd_membership.h"
#include "tiers/remote/remote_tier.h"

namespace kvt {

enum class Tier : int8_t { kNone = -1, kHbm = 0, kHost = 1, kNvme = 2, kRemote = 3 };

struct NamespaceInfo {
  uint64_t id = 0;
  NamespaceDesc desc;
  std::string encoding;
  Geometry geometry;
  Hash128 root;
  uint64_t block_bytes = 0;
};
// A namespace stays valid for as long as a caller holds its reference, even if the store forgets
// it meanwhile (a peer's namespace once no connection uses it).
using NamespaceRef = std::shared_ptr<const NamespaceInfo>;

// The store's own counters; the mover's (demotions, promotions, write-through, remote fetches)
// are the Mover's, visited into the same "store" object of kvt_stats_json.
struct StoreCounters {
  std::atomic<uint64_t> puts{0}, gets{0}, get_hits{0}, get_misses{0};
  std::atomic<uint64_t> lookups{0}, lookup_keys{0}, lookup_prefix_blocks{0};
  std::atomic<uint64_t> matches{0}, match_keys{0}, match_prefix_blocks{0};
  std::atomic<uint64_t> collisions{0}, unverified_hits{0};
  std::atomic<uint64_t> removes{0}, namespace_drops{0}, namespaces_forgotten{0}, prefetches{0};
  // Remote tier (client side) and serving peers (kvtierd side).
  std::atomic<uint64_t> remote_hits{0};
  std::atomic<uint64_t> peer_puts{0}, peer_put_rejects{0};
  void Visit(const CounterVisitor& visit) const;
};

// One block of a batch (kvt_io): what to move, and its outcome.
struct BatchEntry {
  Hash128 key;
  Hash128 parent;                   // put: {0,0} means the namespace root
  const int32_t* tokens = nullptr;  // put: block_tokens ids or nullptr
  void* buf = nullptr;              // get: destination; put: source (only read)
  size_t bytes = 0;
  Status status;                    // out
  Tier tier = Tier::kNone;          // out, get: where it was served from
};

// Counters of the engine-facing calls (batches, caller memory, events); src/store_batch.cc.
struct EngineCounters {
  std::atomic<uint64_t> get_batches{0}, put_batches{0}, batch_entries{0};
  std::atomic<uint64_t> async_batches{0}, async_cancelled_entries{0};
  std::atomic<uint64_t> direct_reads{0};  // NVMe reads straight into registered caller memory
  std::atomic<uint64_t> memory_registrations{0};
};

class Store {
 public:
  static StatusOr<std::unique_ptr<Store>> Open(const Options& o);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  Status Flush();
  // Waits until the background demotion writer has written (or failed) every block evicted so
  // far; nothing is synced. kvtier-sim --validate compares the store step by step with a model
  // whose demotions are synchronous.
  void WaitForDemotions() { mover_->DrainDemotions(); }

  // A local namespace (the C API's kvt_namespace_open): registered until the store closes.
  StatusOr<uint64_t> OpenNamespace(const NamespaceDesc& d);
  // The namespace, or InvalidArgument naming the unknown id.
  StatusOr<NamespaceRef> Namespace(uint64_t ns) const;

  // Keys of every full block of tokens.
  Status HashTokens(uint64_t ns, std::span<const int32_t> tokens, std::vector<Hash128>* keys) const;
  // Verified longest cached prefix of keys; tiers (optional, keys.size() entries).
  Status Lookup(uint64_t ns, std::span<const Hash128> keys, size_t* prefix_blocks, Tier* tiers);
  // Hash, look up and verify tokens; tiers (optional) gets one entry per key.
  Status MatchPrefix(uint64_t ns, std::span<const int32_t> tokens, std::vector<Hash128>* keys,
                     size_t* prefix_blocks, std::vector<Tier>* tiers);

  // parent {0,0} means the namespace root. tokens: block_tokens ids or nullptr.
  Status Put(uint64_t ns, const Hash128& key, const Hash128& parent, const int32_t* tokens,
             const void* data, size_t bytes);
  Status Get(uint64_t ns, const Hash128& key, void* dst, size_t bytes);
  Status Remove(uint64_t ns, const Hash128& key);
  Status DropNamespace(uint64_t ns);

  // Starts moving keys into the target tier (kHbm or kHost) on the prefetch pipeline and returns
  // its ticket at once (see src/prefetch.h). kHbm without an HBM tier: Unavailable.
  StatusOr<std::unique_ptr<Ticket>> Prefetch(uint64_t ns, std::span<const Hash128> keys,
                                             Tier target);

  // --- HBM tier and GPU paths (store_hbm.cc) ---
  // Every movement of bytes between tiers (prefetch and the kvt_gpu_* paths use it too).
  Mover* mover() const { return mover_.get(); }
  // The tiers themselves, for tests and tools that inspect them (the engine's own paths go
  // through the mover). hbm(): null when hbm_bytes == 0.
  HbmTier* hbm() const { return hbm_.get(); }
  HostTier* host() const { return host_.get(); }
  NvmeTier* nvme() const { return nvme_.get(); }
  PrefetchPipeline* prefetcher() const { return prefetch_.get(); }
  // The device the HBM tier and the kvt_gpu_* paths use: the HBM tier's, or one opened on first
  // use (CUDA when built with it and a device is visible, else emulated). Never null.
  DeviceMemory* Device();

  std::string StatsJson() const;
  const Options& options() const { return opts_; }

  // --- engine-facing calls (src/store_batch.cc) ---
  // Gets (puts) every entry; all arguments are checked first (InvalidArgument: nothing done, no
  // entry touched). Then OK, with each entry's own status and tier filled.
  Status GetBatch(uint64_t ns, std::span<BatchEntry> v);
  Status PutBatch(uint64_t ns, std::span<BatchEntry> v);
  // The same on a background worker; returns the ticket at once (after the checks). `publish`
  // receives each finished run of entries [first, first + done.size()) as it completes, and the
  // cancelled ones (status Unavailable) when the ticket is released early; the ticket completes
  // (Wait returns OK) once every entry was published.
  using BatchPublish = std::function<void(size_t first, std::span<const BatchEntry> done)>;
  StatusOr<std::unique_ptr<Ticket>> StartBatch(bool put, uint64_t ns, std::vector<BatchEntry> v,
                                               BatchPublish publish);
  // A caller's block id mapped into namespace ns's key space (keyed hash).
  StatusOr<Hash128> KeyFromBytes(uint64_t ns, const void* id, size_t len) const;
  Status RegisterMemory(void* addr, size_t bytes);
  Status UnregisterMemory(void* addr);
  // Up to cap events, oldest first; Unavailable when the event_queue option is 0.
  StatusOr<size_t> PollEvents(BlockEvent* out, size_t cap, uint64_t* lost);

  // --- serving remote peers (kvtierd's ServerSession; src/store_remote.cc) ---
  // The namespace of a peer's canonical encoding, registered when new, with one more peer using
  // it. Blocks of two tenants never meet: the encoding holds every field of the description
  // (tenant salt included) and is checked byte for byte against the registered one.
  // max_namespaces > 0: Busy instead of registering a new one when the store holds that many.
  // Every acquire is paired with ReleasePeerNamespace (kvtierd: when the connection closes).
  StatusOr<NamespaceRef> AcquirePeerNamespace(std::string_view encoding,
                                              size_t max_namespaces = 0);
  // One peer fewer uses ns. A namespace no peer uses and no local caller opened is forgotten:
  // its description leaves memory, its blocks stay in the tiers (a namespace id is a hash of its
  // description, so registering it again finds them).
  void ReleasePeerNamespace(uint64_t ns);
  // A block's stored meta in the local tiers (host, then NVMe), unverified: the asking peer holds
  // the parent and digest and verifies.
  bool PeekLocal(uint64_t ns, const Hash128& key, BlockMeta* meta);
  // Pins a local block in the host tier for sending without a copy, promoting it from NVMe first.
  bool PinLocal(uint64_t ns, const Hash128& key, PinnedBlock* out);
  void UnpinLocal(const PinnedBlock& b) { host_->Unpin(b); }
  // Stores a block a peer sent with its full meta. Corruption when the payload fails the checksum;
  // InvalidArgument when its size is not the namespace's block size.
  Status PutFromPeer(const BlockMeta& meta, const void* data);

 private:
  explicit Store(const Options& o) : opts_(o), hasher_(o.hash_secret) {}
  Status OpenDirectory();
  // Where each key's block is (tiers[i], kNone when absent), asking the tiers fastest first, one
  // batch per tier; the remote tier (one batched request) only for keys no local tier holds. A
  // found block's stored parent must be keys[i-1] (the root for i = 0) and, when both have them,
  // its token digest digests[i]: a mismatch is a collision, counted and reported kNone.
  // PermissionDenied is returned.
  Status Locate(const NamespaceInfo& ns, std::span<const Hash128> keys,
                std::span<const Hash128> digests, Tier* tiers);
  // Whether meta verifies as keys[i] of a chain (parent, digest, size); counts a collision.
  bool Verify(const NamespaceInfo& ns, StorageTier* t, const BlockMeta& m, const Hash128& parent,
              const Hash128* digest);
  // Opens the HBM tier (hbm_bytes > 0), the mover and the prefetch pipeline. Called by Open.
  Status StartHbmAndPrefetch();
  void HbmStatsJson(nlohmann::json* root) const;
  // --- remote tier (client side; src/store_remote.cc) ---
  Status OpenRemote();
  bool RemoteWriteThrough() const { return remote_ && opts_.remote_write == "write_through"; }

  // --- engine-facing internals (src/store_batch.cc) ---
  // Events, registered memory and the eviction hooks events need. Called by Open.
  Status StartEngineFacing();
  Status CheckBatch(const NamespaceInfo& ns, std::span<const BatchEntry> v, const char* what) const;
  void GetEntries(const NamespaceInfo& ns, std::span<BatchEntry> v);
  void PutEntries(const NamespaceInfo& ns, std::span<BatchEntry> v);
  // Whether any local tier holds the block (events only: STORED is for blocks new to the store).
  bool HeldLocally(uint64_t ns, const Hash128& key);
  bool EventsOn() const { return events_ != nullptr; }
  void NoteStored(uint64_t ns, const Hash128& key);
  // A block left a tier: REMOVED when no local tier holds it any more.
  void NoteGone(uint64_t ns, const Hash128& key);
  void EngineStatsJson(nlohmann::json* root) const;

  Hash128 NormalizeParent(const NamespaceInfo& ns, const Hash128& parent) const {
    return (parent.lo == 0 && parent.hi == 0) ? ns.root : parent;
  }

  const Options opts_;
  const KeyHasher hasher_;
  UniqueFd lock_fd_;
  std::unique_ptr<HostTier> host_;
  std::unique_ptr<NvmeTier> nvme_;  // null when nvme_bytes == 0
  std::unique_ptr<RemoteTier> remote_;  // null when `remote` is empty
  std::unique_ptr<RemoteTierAdapter> remote_adapter_;
  // remote = etcd://...: keeps remote_'s node set current. After remote_: destroyed first.
  std::unique_ptr<etcd::EtcdMembership> membership_;
  std::unique_ptr<AdmissionPolicy> admission_;  // handed to the mover at open
  mutable std::shared_mutex ns_mu_;
  struct NamespaceSlot {
    NamespaceRef info;
    bool local = false;  // opened through OpenNamespace: never forgotten
    uint64_t peers = 0;  // AcquirePeerNamespace calls not yet released
  };
  // Registers d (or finds it registered); local or one peer more. max_new > 0: Busy instead of a
  // new registration when that many are held.
  StatusOr<NamespaceRef> Register(const NamespaceDesc& d, bool local, size_t max_new);
  std::unordered_map<uint64_t, NamespaceSlot> namespaces_;  // GUARDED_BY(ns_mu_)
  mutable StoreCounters counters_;
  std::once_flag device_once_;
  std::unique_ptr<DeviceMemory> device_;  // set at open with an HBM tier, else on first Device()
  std::unique_ptr<HbmTier> hbm_;          // null when hbm_bytes == 0
  std::unique_ptr<EventQueue> events_;      // null when event_queue == 0
  // After the tiers and the event queue (its eviction hooks note events): destroyed before them,
  // once its demotion writer has drained.
  std::unique_ptr<Mover> mover_;
  std::unique_ptr<MemoryRegistry> memory_;  // caller ranges (kvt_register_memory)
  mutable EngineCounters engine_counters_;
  std::mutex batch_runner_mu_;
  // Destroyed before the mover: its workers move blocks through it.
  std::unique_ptr<BatchRunner> batch_runner_;  // GUARDED_BY(batch_runner_mu_); started on first use
  // Last: destroyed first, so its worker stops before the tiers it moves blocks between go.
  std::unique_ptr<PrefetchPipeline> prefetch_;
};

}  // namespace kvt
