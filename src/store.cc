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
  ho.slab_bytes = o.host_slab_bytes;
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
    // Host slots are the I/O buffers: register them so reads and writes use fixed buffers.
    s->nvme_->RegisterBuffers(s->host_->Regions());
    if (!s->WriteThroughMode()) {
      Store* self = s.get();
      s->host_->SetEvictSink(
          [self](const BlockMeta& m, const uint8_t* data) {
            // The put was acknowledged and the host copy is gone now: if the NVMe write failed,
            // the next Flush must say that acknowledged data did not become durable.
            Status st = self->Demote(m, data);
            if (!st.ok()) self->NoteLostDemotion(st);
          });
    }
  }
  if (!o.remote.empty() || !o.remote_etcd.empty()) KVT_RETURN_IF_ERROR(s->OpenRemote());
  KVT_RETURN_IF_ERROR(s->StartEngineFacing());
  KVT_RETURN_IF_ERROR(s->StartHbmAndPrefetch());
  return s;
}

bool Store::NvmeHolds(const BlockMeta& meta) const {
  BlockMeta on_disk;
  return nvme_->Lookup(meta.ns, meta.key, &on_disk) && on_disk.parent == meta.parent &&
         on_disk.checksum == meta.checksum;
}

Status Store::Demote(const BlockMeta& meta, const uint8_t* data) {
  if (NvmeHolds(meta)) {
    Add(counters_.demotions_skipped);  // already there (promoted earlier, or flushed)
    return Status::Ok();
  }
  {
    std::lock_guard<std::mutex> l(admission_mu_);
    const double now_s = std::chrono::duration<double>(
                             std::chrono::steady_clock::now().time_since_epoch())
                             .count();
    if (!admission_->Admit(meta.key.lo ^ meta.ns, meta.payload_bytes, now_s)) {
      Add(counters_.admission_rejects);
      return Status::Ok();
    }
  }
  Status st = nvme_->Write(meta, data);
  // On eviction a failed demotion loses an acknowledged block: the eviction sink hands the
  // status to NoteLostDemotion and the next Flush reports it.
  Add(st.ok() ? counters_.demotions : counters_.demotion_failures);
  return st;
}

void Store::NoteLostDemotion(const Status& st) {
  std::lock_guard<std::mutex> l(lost_mu_);
  if (lost_demotions_++ == 0) lost_first_ = st;
}

Status Store::TakeLostDemotions() {
  std::lock_guard<std::mutex> l(lost_mu_);
  if (lost_demotions_ == 0) return Status::Ok();
  Status st = lost_first_.WithContext(std::to_string(lost_demotions_) +
                                      " evicted block(s) could not be written to NVMe since the "
                                      "last flush; they are lost (first error)");
  lost_demotions_ = 0;
  lost_first_ = Status::Ok();
  return st;
}

Status Store::Promote(uint64_t ns, const Hash128& key, void* dst, size_t bytes) {
  if (!nvme_) return Status::NotFound("block not stored");
  // NVMe reads want a 4 KiB-aligned buffer of whole pages; one per thread, grown on demand.
  thread_local AlignedBuffer scratch;
  const size_t need = AlignUp(bytes, AlignedBuffer::kPage);
  if (scratch.size() < need) {
    KVT_ASSIGN_OR_RETURN(scratch, AlignedBuffer::Allocate(need, /*lock=*/false));
  }
  BlockMeta m;
  KVT_RETURN_IF_ERROR(nvme_->Read(ns, key, scratch.data(), need, &m));
  if (m.payload_bytes != bytes) {
    return Status::InvalidArgument("buffer of " + std::to_string(bytes) + " bytes for a block of " +
                                   std::to_string(m.payload_bytes));
  }
  if (dst != nullptr) std::memcpy(dst, scratch.data(), bytes);
  Status hs = host_->Put(m, scratch.data(), /*checksum_known=*/true);
  Add(hs.ok() ? counters_.promotions : counters_.promotion_failures);
  return Status::Ok();  // the read itself succeeded; a full host tier only skips the promotion
}

Status Store::WriteThrough(uint64_t ns, const Hash128& key) {
  PinnedBlock b;
  // Already evicted again: nothing to copy.
  if (!host_->Pin(ns, key, &b, /*touch=*/false)) return Status::Ok();
  Status st;
  if (!NvmeHolds(b.meta)) {
    st = nvme_->Write(b.meta, b.data);
  }
  host_->Unpin(b);
  Add(st.ok() ? counters_.write_throughs : counters_.write_through_failures);
  return st;
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

Status Store::Flush() {
  if (!nvme_) return Status::Ok();  // only volatile tiers: nothing can be made durable
  Status first;
  if (!WriteThroughMode()) {
    // Write-back: blocks still only in host RAM go down now (through admission, as an
    // eviction would send them), so that everything acknowledged and admitted is durable.
    for (const BlockId& id : host_->Snapshot()) {
      PinnedBlock b;
      // Evicted meanwhile: demoted already.
      if (!host_->Pin(id.ns, id.key, &b, /*touch=*/false)) continue;
      Status st = Demote(b.meta, b.data);
      host_->Unpin(b);
      if (first.ok() && !st.ok()) first = st;
    }
  }
  Status st = nvme_->Flush();
  // Evictions that failed to reach NVMe since the last Flush: acknowledged blocks that did not
  // become durable. Reported once, by this Flush (docs/decisions.md).
  Status lost = TakeLostDemotions();
  if (!lost.ok()) return lost;
  return first.ok() ? st : first;
}

StatusOr<uint64_t> Store::OpenNamespace(const NamespaceDesc& d) {
  KVT_ASSIGN_OR_RETURN(Geometry g, ValidateNamespace(d));
  if (!host_->Fits(g.BlockBytes())) {
    return Status::InvalidArgument("namespace: a block of " + FormatBytes(g.BlockBytes()) +
                                   " does not fit in the host tier (host_bytes = " +
                                   FormatBytes(opts_.host_bytes) + ")");
  }
  auto info = std::make_unique<NamespaceInfo>();
  info->desc = d;
  info->encoding = EncodeNamespace(d);
  info->geometry = g;
  info->id = hasher_.NamespaceId(d);
  info->root = hasher_.RootKey(d);
  info->block_bytes = g.BlockBytes();
  std::unique_lock<std::shared_mutex> l(ns_mu_);
  auto it = namespaces_.find(info->id);
  if (it != namespaces_.end()) {
    if (it->second->encoding != info->encoding) {
      return Status::Internal("namespace id collision between two different descriptions");
    }
    return info->id;
  }
  const uint64_t id = info->id;
  namespaces_.emplace(id, std::move(info));
  return id;
}

StatusOr<const NamespaceInfo*> Store::Namespace(uint64_t ns) const {
  std::shared_lock<std::shared_mutex> l(ns_mu_);
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "unknown namespace id 0x%016llx",
                  static_cast<unsigned long long>(ns));
    return Status::InvalidArgument(std::string(buf) + " (open it with kvt_namespace_open first)");
  }
  return it->second.get();  // never erased while the store lives
}

Status Store::HashTokens(uint64_t ns, std::span<const int32_t> tokens,
                         std::vector<Hash128>* keys) const {
  KVT_ASSIGN_OR_RETURN(const NamespaceInfo* info, Namespace(ns));
  hasher_.ChainKeys(info->root, tokens, info->geometry.block_tokens, keys);
  return Status::Ok();
}

Tier Store::Locate(const NamespaceInfo& ns, const Hash128& key, const Hash128& parent,
                   const Hash128* digest) {
  BlockMeta m;
  Tier where = Tier::kHost;
  // A lookup is not a use: routers probe many nodes and engines look up more than they load, so
  // only a get, put or prefetch touches a block for eviction (kvtier-sim relies on the same rule).
  if (hbm_ && hbm_->Lookup(ns.id, key, &m, /*touch=*/false)) {
    where = Tier::kHbm;  // the fastest tier holding it
  } else if (!host_->Lookup(ns.id, key, &m, /*touch=*/false)) {
    if (!nvme_ || !nvme_->Lookup(ns.id, key, &m)) return Tier::kNone;
    where = Tier::kNvme;
  }
  if (m.parent != parent || (digest != nullptr && m.has_tokens && m.tokens_digest != *digest)) {
    Add(counters_.collisions);
    if (where == Tier::kHost) Add(host_->counters().collisions);
    if (where == Tier::kHbm) Add(hbm_->counters().collisions);
    return Tier::kNone;
  }
  if (digest != nullptr && !m.has_tokens) Add(counters_.unverified_hits);
  return where;
}

Status Store::Lookup(uint64_t ns, std::span<const Hash128> keys, size_t* prefix_blocks,
                     Tier* tiers) {
  KVT_ASSIGN_OR_RETURN(const NamespaceInfo* info, Namespace(ns));
  size_t prefix = 0;
  bool chain_intact = true;
  std::vector<Tier> found(remote_ ? keys.size() : 0, Tier::kNone);  // remote: all keys first
  for (size_t i = 0; i < keys.size(); ++i) {
    const Hash128 parent = i == 0 ? info->root : keys[i - 1];
    Tier t = Locate(*info, keys[i], parent, nullptr);
    if (remote_) {
      found[i] = t;
      continue;
    }
    if (tiers != nullptr) tiers[i] = t;
    if (t == Tier::kNone) {
      chain_intact = false;
      if (tiers == nullptr) break;  // nothing more to report
    } else if (chain_intact) {
      ++prefix;
    }
  }
  if (remote_) {
    KVT_RETURN_IF_ERROR(RemoteLocate(*info, keys, {}, found.data()));
    for (size_t i = 0; i < keys.size(); ++i) {
      if (tiers != nullptr) tiers[i] = found[i];
      chain_intact = chain_intact && found[i] != Tier::kNone;
      if (chain_intact) ++prefix;
    }
  }
  *prefix_blocks = prefix;
  Add(counters_.lookups);
  Add(counters_.lookup_keys, keys.size());
  Add(counters_.lookup_prefix_blocks, prefix);
  return Status::Ok();
}

Status Store::MatchPrefix(uint64_t ns, std::span<const int32_t> tokens, std::vector<Hash128>* keys,
                          size_t* prefix_blocks, std::vector<Tier>* tiers) {
  KVT_ASSIGN_OR_RETURN(const NamespaceInfo* info, Namespace(ns));
  const uint32_t bt = info->geometry.block_tokens;
  hasher_.ChainKeys(info->root, tokens, bt, keys);
  if (tiers != nullptr) tiers->assign(keys->size(), Tier::kNone);
  size_t prefix = 0;
  bool chain_intact = true;
  std::vector<Tier> found(remote_ ? keys->size() : 0, Tier::kNone);  // remote: all keys first
  std::vector<Hash128> digests(remote_ ? keys->size() : 0);
  for (size_t i = 0; i < keys->size(); ++i) {
    const Hash128 parent = i == 0 ? info->root : (*keys)[i - 1];
    const Hash128 digest = hasher_.TokensDigest(tokens.subspan(i * bt, bt));
    Tier t = Locate(*info, (*keys)[i], parent, &digest);
    if (remote_) {
      found[i] = t;
      digests[i] = digest;
      continue;
    }
    if (tiers != nullptr) (*tiers)[i] = t;
    if (t == Tier::kNone) {
      chain_intact = false;
      if (tiers == nullptr) break;
    } else if (chain_intact) {
      ++prefix;
    }
  }
  if (remote_) {
    KVT_RETURN_IF_ERROR(RemoteLocate(*info, *keys, digests, found.data()));
    for (size_t i = 0; i < keys->size(); ++i) {
      if (tiers != nullptr) (*tiers)[i] = found[i];
      chain_intact = chain_intact && found[i] != Tier::kNone;
      if (chain_intact) ++prefix;
    }
  }
  *prefix_blocks = prefix;
  Add(counters_.matches);
  Add(counters_.match_keys, keys->size());
  Add(counters_.match_prefix_blocks, prefix);
  return Status::Ok();
}

Status Store::Put(uint64_t ns, const Hash128& key, const Hash128& parent, const int32_t* tokens,
                  const void* data, size_t bytes) {
  KVT_ASSIGN_OR_RETURN(const NamespaceInfo* info, Namespace(ns));
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
  Status s = host_->Put(m, data, /*checksum_known=*/false);
  if (!s.ok()) return s;
  Add(counters_.puts);
  if (!was_held) NoteStored(ns, key);
  if (nvme_ && WriteThroughMode()) {
    // The caller's thread is the write-through queue: the block is on NVMe (not yet durable;
    // see Flush) when put returns, and a failure to write it is reported.
    KVT_RETURN_IF_ERROR(WriteThrough(ns, key));
  }
  if (RemoteWriteThrough()) KVT_RETURN_IF_ERROR(RemotePut(*info, key));
  return Status::Ok();
}

Status Store::Get(uint64_t ns, const Hash128& key, void* dst, size_t bytes) {
  KVT_ASSIGN_OR_RETURN(const NamespaceInfo* info, Namespace(ns));
  if (bytes != info->block_bytes) {
    return Status::InvalidArgument("get into " + std::to_string(bytes) + " bytes; a block of " +
                                   "this namespace is " + std::to_string(info->block_bytes) +
                                   " bytes");
  }
  Add(counters_.gets);
  // A host copy that fails verify_host_reads is dropped by the read: REMOVED if it was the last.
  const bool in_host = EventsOn() && host_->Lookup(ns, key, nullptr, /*touch=*/false);
  Status s = host_->Read(ns, key, dst, bytes, nullptr);
  if (in_host && s.IsNotFound()) NoteGone(ns, key);
  if (s.IsNotFound() && hbm_) s = hbm_->Read(ns, key, dst, bytes, nullptr);
  if (s.IsNotFound() && nvme_) s = Promote(ns, key, dst, bytes);
  if (s.IsNotFound() && remote_) s = RemoteGet(*info, key, dst, bytes);
  Add(s.ok() ? counters_.get_hits : counters_.get_misses);
  return s;
}

Status Store::Remove(uint64_t ns, const Hash128& key) {
  KVT_ASSIGN_OR_RETURN(const NamespaceInfo* info, Namespace(ns));
  (void)info;
  Status s = host_->Remove(ns, key);
  if (hbm_ && hbm_->Remove(ns, key).ok()) s = Status::Ok();
  if (nvme_) {
    Status n = nvme_->Remove(ns, key);
    if (s.IsNotFound()) s = n;
    else if (!n.ok() && !n.IsNotFound()) s = n;
  }
  if (s.ok()) Add(counters_.removes);
  if (s.ok()) NoteGone(ns, key);
  return s;
}

Status Store::DropNamespace(uint64_t ns) {
  KVT_ASSIGN_OR_RETURN(const NamespaceInfo* info, Namespace(ns));
  std::vector<BlockId> gone;  // events: every block the drop removes
  if (EventsOn()) {
    for (const BlockId& id : host_->Snapshot())
      if (id.ns == ns) gone.push_back(id);
    if (hbm_) {
      for (const BlockId& id : hbm_->Snapshot())
        if (id.ns == ns) gone.push_back(id);
    }
    if (nvme_) {
      nvme_->ForEachEntry([&](const NvmeEntry& e) {
        if (e.ns == ns) gone.push_back(BlockId{e.ns, e.key});
        return true;
      });
    }
  }
  host_->DropNamespace(ns);
  if (hbm_) hbm_->DropNamespace(ns);
  if (nvme_) KVT_RETURN_IF_ERROR(nvme_->DropNamespace(ns));
  if (RemoteWriteThrough()) {
    KVT_RETURN_IF_ERROR(remote_->DropNamespace(info->encoding).WithContext("remote drop"));
  }
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
  KVT_ASSIGN_OR_RETURN(const NamespaceInfo* info, Namespace(ns));
  if (target != Tier::kHost && target != Tier::kHbm) {
    return Status::InvalidArgument("prefetch target must be KVT_TIER_HOST or KVT_TIER_HBM");
  }
  // Blocks only a remote node holds come into the host tier first, in one streamed batch; the
  // pipeline then moves them like any host block.
  if (remote_) RemotePrefetch(*info, keys);
  KVT_ASSIGN_OR_RETURN(auto ticket,
                       prefetch_->Start(ns, keys, LayoutOf(info->geometry), target == Tier::kHbm));
  Add(counters_.prefetches);
  return ticket;
}

std::string Store::StatsJson() const {
  nlohmann::json j;
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  auto& st = j["store"];
  st["puts"] = get(counters_.puts);
  st["gets"] = get(counters_.gets);
  st["get_hits"] = get(counters_.get_hits);
  st["get_misses"] = get(counters_.get_misses);
  st["lookups"] = get(counters_.lookups);
  st["lookup_keys"] = get(counters_.lookup_keys);
  st["lookup_prefix_blocks"] = get(counters_.lookup_prefix_blocks);
  st["match_prefix_calls"] = get(counters_.matches);
  st["match_keys"] = get(counters_.match_keys);
  st["match_prefix_blocks"] = get(counters_.match_prefix_blocks);
  st["collisions"] = get(counters_.collisions);
  st["unverified_hits"] = get(counters_.unverified_hits);
  st["removes"] = get(counters_.removes);
  st["namespace_drops"] = get(counters_.namespace_drops);
  st["prefetches"] = get(counters_.prefetches);
  {
    std::shared_lock<std::shared_mutex> l(ns_mu_);
    st["namespaces"] = namespaces_.size();
  }
  st["keyed_hashing"] = hasher_.keyed();
  st["key_bits"] = BlockKeyBits();
  st["checksum_impl"] = ChecksumImpl();
  st["demotions"] = get(counters_.demotions);
  st["demotions_skipped"] = get(counters_.demotions_skipped);
  st["demotion_failures"] = get(counters_.demotion_failures);
  st["admission_rejects"] = get(counters_.admission_rejects);
  st["promotions"] = get(counters_.promotions);
  st["promotion_failures"] = get(counters_.promotion_failures);
  st["write_throughs"] = get(counters_.write_throughs);
  st["write_through_failures"] = get(counters_.write_through_failures);
  st["write_policy"] = opts_.write_policy;
  st["remote_hits"] = get(counters_.remote_hits);
  st["remote_fetches"] = get(counters_.remote_fetches);
  st["remote_fetch_failures"] = get(counters_.remote_fetch_failures);
  st["remote_puts"] = get(counters_.remote_puts);
  st["remote_put_failures"] = get(counters_.remote_put_failures);
  st["peer_puts"] = get(counters_.peer_puts);
  st["peer_put_rejects"] = get(counters_.peer_put_rejects);
  host_->StatsJson(&j["tiers"]["host"]);
  HbmStatsJson(&j);
  if (nvme_) NvmeStatsJson(*nvme_, &j["tiers"]["nvme"]);
  if (remote_) remote_->StatsJson(&j["tiers"]["remote"]);
  if (membership_) membership_->StatsJson(&j["tiers"]["remote"]["membership"]);
  EngineStatsJson(&j);
  return j.dump();
}

}  // namespace kvt
