#include "src/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <tuple>

#include <nlohmann/json.hpp>

#include "base/counter.h"
#include "base/log.h"
#include "base/units.h"

namespace kvt {
namespace {

constexpr int kFormatVersion = 1;
constexpr const char* kFormatFile = "KVTIER_FORMAT";


// Every NVMe counter through the tier's one visitor; the non-counter facts from Stats().
void NvmeStatsJson(const NvmeTier& t, nlohmann::json* out) {
  auto& j = *out;
  t.VisitCounters([&](std::string_view name, uint64_t v) { j[std::string(name)] = v; });
  NvmeStats n = t.Stats();
  j["registered_buffers"] = n.registered_buffers;
  j["direct_io"] = n.direct_io;
  j["io_engine"] = n.io_engine;
  j["compression_ratio"] = n.compression_ratio;
}

}  // namespace

StatusOr<std::unique_ptr<Store>> Store::Open(const Options& o) {
  KVT_RETURN_IF_ERROR(o.Validate());
  std::unique_ptr<Store> s(new Store(o));
  KVT_RETURN_IF_ERROR(s->OpenDirectory());
  HostTierOptions ho;
  ho.budget_bytes = o.host_bytes;
  ho.slab_bytes = o.HostSlabBytes();
  ho.try_lock = o.host_mlock;
  ho.policy = o.host_policy;
  ho.verify_reads = o.verify_host_reads;
  KVT_ASSIGN_OR_RETURN(s->host_, HostTier::Create(ho));
  if (o.nvme_bytes > 0) {
    NvmeOptions no;
    no.dir = o.dir + "/nvme";
    no.budget_bytes = o.nvme_bytes;
    no.segment_bytes = o.nvme_segment_bytes;
    no.io_depth = o.io_depth;
    KVT_ASSIGN_OR_RETURN(no.codec, ParseCodec(o.nvme_codec));
    no.reinsertion = o.nvme_reinsertion;
    no.io_factory = o.nvme_io_factory;
    KVT_ASSIGN_OR_RETURN(s->nvme_, NvmeTier::Open(no));
    KVT_ASSIGN_OR_RETURN(s->admission_, MakeAdmissionPolicy(o.nvme_admission));
  }
  if (!o.remote.empty() || !o.remote_etcd.empty()) KVT_RETURN_IF_ERROR(s->OpenRemote());
  KVT_RETURN_IF_ERROR(s->StartHbmAndPrefetch());
  KVT_RETURN_IF_ERROR(s->StartEngineFacing());  // hooks events into the mover
  return s;
}

// Creates the directory, takes its lock (one open store per directory) and checks the on-disk
// format version, writing it on first use.
Status Store::OpenDirectory() {
  std::error_code ec;
  std::filesystem::create_directories(opts_.dir, ec);
  if (ec) {
    return Status::FromErrno(ec.value(), "create directory " + opts_.dir);
  }
  const std::string lock_path = opts_.dir + "/LOCK";
  UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return Status::FromErrno(errno, "open " + lock_path);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return Status::Busy("directory " + opts_.dir + " is locked by another open store");
    }
    return Status::FromErrno(errno, "flock " + lock_path);
  }
  lock_fd_ = std::move(fd);

  const std::string fmt_path = opts_.dir + "/" + kFormatFile;
  std::ifstream in(fmt_path);
  if (in) {
    std::string word;
    int version = -1;
    in >> word >> version;
    if (word != "kvtier-format" || version != kFormatVersion) {
      return Status::Corruption("directory " + opts_.dir + " holds on-disk format '" + word + " " +
                                std::to_string(version) + "', this build reads kvtier-format " +
                                std::to_string(kFormatVersion));
    }
    return Status::Ok();
  }
  const std::string tmp = fmt_path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "kvtier-format " << kFormatVersion << "\n";
    out.flush();
    if (!out) return Status::IoError("write " + tmp);
  }
  if (::rename(tmp.c_str(), fmt_path.c_str()) != 0) {
    return Status::FromErrno(errno, "rename " + tmp + " to " + fmt_path);
  }
  return Status::Ok();
}

Store::~Store() {
  Status s = Flush();
  if (!s.ok()) KVT_LOG(kError, "flush at close failed: " + s.ToString());
}

Status Store::Flush() { return mover_ ? mover_->Flush() : Status::Ok(); }

void StoreCounters::Visit(const CounterVisitor& visit) const {
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  visit("puts", get(puts));
  visit("gets", get(gets));
  visit("get_hits", get(get_hits));
  visit("get_misses", get(get_misses));
  visit("lookups", get(lookups));
  visit("lookup_keys", get(lookup_keys));
  visit("lookup_prefix_blocks", get(lookup_prefix_blocks));
  visit("match_prefix_calls", get(matches));
  visit("match_keys", get(match_keys));
  visit("match_prefix_blocks", get(match_prefix_blocks));
  visit("collisions", get(collisions));
  visit("unverified_hits", get(unverified_hits));
  visit("removes", get(removes));
  visit("namespace_drops", get(namespace_drops));
  visit("namespaces_forgotten", get(namespaces_forgotten));
  visit("prefetches", get(prefetches));
  visit("remote_hits", get(remote_hits));
  visit("peer_puts", get(peer_puts));
  visit("peer_put_rejects", get(peer_put_rejects));
}

StatusOr<uint64_t> Store::OpenNamespace(const NamespaceDesc& d) {
  KVT_ASSIGN_OR_RETURN(NamespaceRef info, Register(d, /*local=*/true, /*max_new=*/0));
  return info->id;
}

StatusOr<NamespaceRef> Store::Register(const NamespaceDesc& d, bool local, size_t max_new) {
  KVT_ASSIGN_OR_RETURN(Geometry g, ValidateNamespace(d));
  if (!host_->Fits(g.BlockBytes())) {
    return Status::InvalidArgument("namespace: a block of " + FormatBytes(g.BlockBytes()) +
                                   " does not fit in the host tier (host_bytes = " +
                                   FormatBytes(opts_.host_bytes) + ")");
  }
  auto info = std::make_shared<NamespaceInfo>();
  info->desc = d;
  info->encoding = EncodeNamespace(d);
  info->geometry = g;
  info->id = hasher_.NamespaceId(d);
  info->root = hasher_.RootKey(d);
  info->block_bytes = g.BlockBytes();
  const uint64_t id = info->id;
  std::unique_lock<std::shared_mutex> l(ns_mu_);
  auto it = namespaces_.find(id);
  if (it == namespaces_.end()) {
    if (max_new > 0 && namespaces_.size() >= max_new) {
      return Status::Busy("the node holds " + std::to_string(namespaces_.size()) +
                          " namespaces, its limit");
    }
    it = namespaces_.emplace(id, NamespaceSlot{std::move(info)}).first;
  } else if (it->second.info->encoding != info->encoding) {
    return Status::Internal("namespace id collision between two different descriptions");
  }
  if (local) {
    it->second.local = true;
  } else {
    ++it->second.peers;
  }
  return it->second.info;
}

StatusOr<NamespaceRef> Store::Namespace(uint64_t ns) const {
  std::shared_lock<std::shared_mutex> l(ns_mu_);
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "unknown namespace id 0x%016llx",
                  static_cast<unsigned long long>(ns));
    return Status::InvalidArgument(std::string(buf) + " (open it with kvt_namespace_open first)");
  }
  return it->second.info;
}

Status Store::HashTokens(uint64_t ns, std::span<const int32_t> tokens,
                         std::vector<Hash128>* keys) const {
  KVT_ASSIGN_OR_RETURN(NamespaceRef info, Namespace(ns));
  hasher_.ChainKeys(info->root, tokens, info->geometry.block_tokens, keys);
  return Status::Ok();
}

bool Store::Verify(const NamespaceInfo& ns, StorageTier* t, const BlockMeta& m,
                   const Hash128& parent, const Hash128* digest) {
  // A remote meta comes off the wire: its size must be this namespace's too.
  const bool size_ok = t->kind() != TierKind::kRemote || m.payload_bytes == ns.block_bytes;
  if (m.parent != parent || !size_ok ||
      (digest != nullptr && m.has_tokens && m.tokens_digest != *digest)) {
    Add(counters_.collisions);
    if (t == host_.get()) Add(host_->counters().collisions);
    if (t == hbm_.get()) Add(hbm_->counters().collisions);
    return false;
  }
  if (digest != nullptr && !m.has_tokens) Add(counters_.unverified_hits);
  return true;
}

Status Store::Locate(const NamespaceInfo& ns, std::span<const Hash128> keys,
                     std::span<const Hash128> digests, Tier* tiers) {
  const size_t n = keys.size();
  std::fill(tiers, tiers + n, Tier::kNone);
  std::vector<uint8_t> todo(n, 1);  // no tier asked so far holds it
  std::vector<uint8_t> asked(n);
  std::vector<BlockMeta> metas(n);
  StorageTier* remote = nullptr;
  auto verify = [&](StorageTier* t, size_t i) {
    const Hash128 parent = i == 0 ? ns.root : keys[i - 1];
    return Verify(ns, t, metas[i], parent, digests.empty() ? nullptr : &digests[i]);
  };
  // A lookup is not a use: routers probe many nodes and engines look up more than they load, so
  // only a get, put or prefetch touches a block for eviction (kvtier-sim relies on the same rule).
  // Tier by tier, one batch each (one lock per tier, not one per key); the fastest tier holding
  // a key decides, and a collision there is a miss.
  size_t left = n;  // keys still to ask the local tiers about
  for (StorageTier* t : mover_->tiers()) {
    if (t->kind() == TierKind::kRemote) {
      remote = t;
      continue;
    }
    if (left == 0) continue;
    asked = todo;
    KVT_RETURN_IF_ERROR(t->LookupBatch(ns.id, keys, todo, metas));
    for (size_t i = 0; i < n; ++i) {
      if (!asked[i] || todo[i]) continue;
      --left;
      if (verify(t, i)) tiers[i] = static_cast<Tier>(t->kind());
    }
  }
  if (remote == nullptr) return Status::Ok();
  asked = todo;
  KVT_RETURN_IF_ERROR(remote->LookupBatch(ns.id, keys, todo, metas));
  for (size_t i = 0; i < n; ++i) {
    if (!asked[i] || todo[i]) continue;  // not asked, or not at its owner either
    if (!verify(remote, i)) continue;
    Add(counters_.remote_hits);
    tiers[i] = Tier::kRemote;
  }
  return Status::Ok();
}

Status Store::Lookup(uint64_t ns, std::span<const Hash128> keys, size_t* prefix_blocks,
                     Tier* tiers) {
  KVT_ASSIGN_OR_RETURN(NamespaceRef info, Namespace(ns));
  std::vector<Tier> found(keys.size(), Tier::kNone);
  KVT_RETURN_IF_ERROR(Locate(*info, keys, {}, found.data()));
  size_t prefix = 0;
  while (prefix < keys.size() && found[prefix] != Tier::kNone) ++prefix;
  if (tiers != nullptr) std::copy(found.begin(), found.end(), tiers);
  *prefix_blocks = prefix;
  Add(counters_.lookups);
  Add(counters_.lookup_keys, keys.size());
  Add(counters_.lookup_prefix_blocks, prefix);
  return Status::Ok();
}

Status Store::MatchPrefix(uint64_t ns, std::span<const int32_t> tokens, std::vector<Hash128>* keys,
                          size_t* prefix_blocks, std::vector<Tier>* tiers) {
  KVT_ASSIGN_OR_RETURN(NamespaceRef info, Namespace(ns));
  const uint32_t bt = info->geometry.block_tokens;
  hasher_.ChainKeys(info->root, tokens, bt, keys);
  std::vector<Hash128> digests(keys->size());
  for (size_t i = 0; i < keys->size(); ++i) {
    digests[i] = hasher_.TokensDigest(tokens.subspan(i * bt, bt));
  }
  std::vector<Tier> found(keys->size(), Tier::kNone);
  KVT_RETURN_IF_ERROR(
      Locate(*info, *keys, digests, found.data()));
  size_t prefix = 0;
  while (prefix < keys->size() && found[prefix] != Tier::kNone) ++prefix;
  if (tiers != nullptr) *tiers = std::move(found);
  *prefix_blocks = prefix;
  Add(counters_.matches);
  Add(counters_.match_keys, keys->size());
  Add(counters_.match_prefix_blocks, prefix);
  return Status::Ok();
}

Status Store::Put(uint64_t ns, const Hash128& key, const Hash128& parent, const int32_t* tokens,
                  const void* data, size_t bytes) {
  KVT_ASSIGN_OR_RETURN(NamespaceRef info, Namespace(ns));
  if (bytes != info->block_bytes) {
    return Status::InvalidArgument("put of " + std::to_string(bytes) + " bytes; a block of this " +
                                   "namespace is " + std::to_string(info->block_bytes) + " bytes");
  }
  BlockMeta m;
  m.ns = ns;
  m.key = key;
  m.parent = NormalizeParent(*info, parent);
  m.payload_bytes = static_cast<uint32_t>(bytes);
  if (tokens != nullptr) {
    m.has_tokens = true;
    m.tokens_digest = hasher_.TokensDigest({tokens, info->geometry.block_tokens});
  }
  const bool was_held = EventsOn() && HeldLocally(ns, key);
  // Host slot, then (write-through) NVMe and the remote owner from the same pin.
  Status s = mover_->Put(m, data, /*checksum_known=*/false, RemoteWriteThrough());
  // A failed write-through leaves the block stored locally: the put counts, the caller learns.
  const bool stored = s.ok() || host_->Lookup(ns, key, nullptr, /*touch=*/false);
  if (stored) Add(counters_.puts);
  if (stored && !was_held) NoteStored(ns, key);
  return s;
}

Status Store::Get(uint64_t ns, const Hash128& key, void* dst, size_t bytes) {
  KVT_ASSIGN_OR_RETURN(NamespaceRef info, Namespace(ns));
  if (bytes != info->block_bytes) {
    return Status::InvalidArgument("get into " + std::to_string(bytes) + " bytes; a block of " +
                                   "this namespace is " + std::to_string(info->block_bytes) +
                                   " bytes");
  }
  Add(counters_.gets);
  // A host copy that fails verify_host_reads is dropped by the read: REMOVED if it was the last.
  const bool in_host = EventsOn() && host_->Lookup(ns, key, nullptr, /*touch=*/false);
  TierKind from;
  Status s = mover_->Get(ns, key, dst, bytes, &from);
  if (in_host && (!s.ok() || from != TierKind::kHost)) NoteGone(ns, key);
  Add(s.ok() ? counters_.get_hits : counters_.get_misses);
  return s;
}

Status Store::Remove(uint64_t ns, const Hash128& key) {
  KVT_ASSIGN_OR_RETURN(NamespaceRef info, Namespace(ns));
  (void)info;
  // Every tier but the remote one (its owner's policy removes there).
  Status s = Status::NotFound("block not stored");
  for (StorageTier* t : mover_->tiers()) {
    if (t->kind() == TierKind::kRemote) continue;
    Status r = t->Remove(ns, key);
    if (r.ok() && s.IsNotFound()) s = r;
    if (!r.ok() && !r.IsNotFound()) s = r;
  }
  if (s.ok()) Add(counters_.removes);
  if (s.ok()) NoteGone(ns, key);
  return s;
}

Status Store::DropNamespace(uint64_t ns) {
  KVT_ASSIGN_OR_RETURN(NamespaceRef info, Namespace(ns));
  (void)info;
  std::vector<BlockId> gone;  // events: every block the drop removes
  if (EventsOn()) {
    for (StorageTier* t : mover_->tiers()) {
      if (t->kind() == TierKind::kRemote) continue;
      for (const BlockId& id : t->Snapshot())
        if (id.ns == ns) gone.push_back(id);
    }
  }
  for (StorageTier* t : mover_->tiers()) KVT_RETURN_IF_ERROR(t->DropNamespace(ns));
  Add(counters_.namespace_drops);
  std::sort(gone.begin(), gone.end(), [](const BlockId& a, const BlockId& b) {
    return std::tie(a.key.lo, a.key.hi) < std::tie(b.key.lo, b.key.hi);
  });
  gone.erase(std::unique(gone.begin(), gone.end()), gone.end());
  for (const BlockId& id : gone) NoteGone(id.ns, id.key);
  return Status::Ok();
}

StatusOr<std::unique_ptr<Ticket>> Store::Prefetch(uint64_t ns, std::span<const Hash128> keys,
                                                  Tier target) {
  KVT_ASSIGN_OR_RETURN(NamespaceRef info, Namespace(ns));
  if (target != Tier::kHost && target != Tier::kHbm) {
    return Status::InvalidArgument("prefetch target must be KVT_TIER_HOST or KVT_TIER_HBM");
  }
  KVT_ASSIGN_OR_RETURN(auto ticket,
                       prefetch_->Start(ns, keys, LayoutOf(info->geometry), target == Tier::kHbm));
  Add(counters_.prefetches);
  return ticket;
}

std::string Store::StatsJson() const {
  nlohmann::json j;
  auto& st = j["store"];
  counters_.Visit(JsonCounterVisitor(&st));
  mover_->VisitCounters(JsonCounterVisitor(&st));
  {
    std::shared_lock<std::shared_mutex> l(ns_mu_);
    st["namespaces"] = namespaces_.size();
  }
  st["keyed_hashing"] = hasher_.keyed();
  st["key_bits"] = BlockKeyBits();
  st["checksum_impl"] = ChecksumImpl();
  st["write_policy"] = opts_.write_policy;
  if (const DemotionQueue* q = mover_->demotion_queue()) {
    q->VisitCounters(JsonCounterVisitor(&j["demotion_queue"]));
  }
  host_->StatsJson(&j["tiers"]["host"]);
  HbmStatsJson(&j);
  if (nvme_) NvmeStatsJson(*nvme_, &j["tiers"]["nvme"]);
  if (remote_) remote_->StatsJson(&j["tiers"]["remote"]);
  if (membership_) membership_->StatsJson(&j["tiers"]["remote"]["membership"]);
  EngineStatsJson(&j);
  return j.dump();
}

}  // namespace kvt
