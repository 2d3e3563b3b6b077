// The store's remote side: the remote tier as a client (lookups and gets that miss locally, puts
// sent to the owning node) and the calls kvtierd's sessions make to serve peers. Kept apart from
// store.cc so that the local tiers' code stays readable on its own.
#include <cstring>

#include "base/counter.h"
#include "base/log.h"
#include "src/store.h"

namespace kvt {
// --- client side ---------------------------------------------------------------------------------

Status Store::OpenRemote() {
  RemoteOptions ro;
  ro.endpoints = opts_.remote;
  ro.secret = opts_.auth_secret;
  ro.credential = opts_.auth_id;
  ro.tls = {opts_.tls_cert, opts_.tls_key, opts_.tls_ca};
  ro.connections_per_node = opts_.remote_connections;
  ro.batch_blocks = opts_.remote_batch_blocks;
  ro.pipeline_depth = opts_.remote_pipeline_depth;
  ro.socket_buffer_bytes = opts_.remote_socket_buffer;
  KVT_ASSIGN_OR_RETURN(remote_, RemoteTier::Create(ro));
  // A wrong secret is a configuration error worth failing open for; a node that is down is not
  // (it may come up later, and its blocks are misses meanwhile).
  return remote_->Probe();
}

Status Store::RemoteLocate(const NamespaceInfo& ns, std::span<const Hash128> keys,
                           std::span<const Hash128> digests, Tier* tiers) {
  std::vector<Hash128> ask;
  std::vector<size_t> pos;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (tiers[i] == Tier::kNone) {
      ask.push_back(keys[i]);
      pos.push_back(i);
    }
  }
  if (ask.empty()) return Status::Ok();
  std::vector<wire::LookupEntry> entries;
  KVT_RETURN_IF_ERROR(remote_->Lookup(ns.encoding, ask, &entries));
  for (size_t k = 0; k < ask.size(); ++k) {
    const wire::LookupEntry& e = entries[k];
    if (!e.present) continue;
    const size_t i = pos[k];
    const Hash128 parent = i == 0 ? ns.root : keys[i - 1];
    const bool digest_ok = digests.empty() || !e.info.has_tokens ||
                           e.info.tokens_digest == digests[i];
    // The same checks as Locate makes for a local block: a mismatch is a collision, a miss.
    if (e.info.parent != parent || !digest_ok || e.info.payload_bytes != ns.block_bytes) {
      Add(counters_.collisions);
      continue;
    }
    if (!digests.empty() && !e.info.has_tokens) Add(counters_.unverified_hits);
    Add(counters_.remote_hits);
    tiers[i] = Tier::kRemote;
  }
  return Status::Ok();
}

Status Store::RemoteFetch(const NamespaceInfo& ns, std::span<const Hash128> keys,
                          std::vector<bool>* got) {
  got->assign(keys.size(), false);
  Status s = remote_->Get(ns.encoding, keys, [&](size_t i, RemotePayload* p) {
    const wire::BlockInfo& b = p->info();
    if (b.payload_bytes != ns.block_bytes) return;  // not a block of this namespace: skipped
    bool filled = false;
    // The payload goes from the socket straight into the new host slot; a checksum failure
    // releases the slot, so nothing unverified is ever visible.
    Status ps = host_->PutFilled(
        ToBlockMeta(ns.id, b), [&](uint8_t* dst, BlockMeta*) { return p->Read(dst); }, &filled);
    if (ps.ok()) {
      (*got)[i] = true;
      Add(counters_.remote_fetches);
    } else {
      Add(counters_.remote_fetch_failures);
    }
  });
  if (!s.ok()) {
    Add(counters_.remote_fetch_failures);
    if (s.code() == Code::kPermissionDenied) return s;
    KVT_LOG(kDebug, "remote fetch: " + s.ToString());
  }
  return Status::Ok();
}

Status Store::RemoteGet(const NamespaceInfo& ns, const Hash128& key, void* dst, size_t bytes) {
  std::vector<bool> got;
  KVT_RETURN_IF_ERROR(RemoteFetch(ns, {&key, 1}, &got));
  if (!got[0]) return Status::NotFound("block not stored locally nor at its owning node");
  return host_->Read(ns.id, key, dst, bytes, nullptr);
}

void Store::RemotePrefetch(const NamespaceInfo& ns, std::span<const Hash128> keys) {
  std::vector<Hash128> missing;
  for (const Hash128& k : keys) {
    if (host_->Lookup(ns.id, k, nullptr, /*touch=*/false)) continue;
    if (hbm_ && hbm_->Lookup(ns.id, k, nullptr, /*touch=*/false)) continue;
    if (nvme_ && nvme_->Lookup(ns.id, k, nullptr)) continue;
    missing.push_back(k);
  }
  if (missing.empty()) return;
  std::vector<bool> got;
  (void)RemoteFetch(ns, missing, &got);  // what did not arrive is reported by the ticket
}

Status Store::RemotePut(const NamespaceInfo& ns, const Hash128& key) {
  PinnedBlock b;
  // Evicted already: nothing to send. Sending a copy is not a use (no touch).
  if (!host_->Pin(ns.id, key, &b, /*touch=*/false)) return Status::Ok();
  Status s = remote_->Put(ns.encoding, ToBlockInfo(b.meta), b.data);
  host_->Unpin(b);
  Add(s.ok() ? counters_.remote_puts : counters_.remote_put_failures);
  return s.WithContext("stored locally; remote write");
}

// --- serving peers -------------------------------------------------------------------------------

StatusOr<const NamespaceInfo*> Store::OpenEncodedNamespace(std::string_view encoding,
                                                           size_t max_namespaces) {
  KVT_ASSIGN_OR_RETURN(NamespaceDesc d, DecodeNamespace(encoding));
  if (max_namespaces > 0) {
    std::shared_lock<std::shared_mutex> l(ns_mu_);
    if (namespaces_.size() >= max_namespaces && !namespaces_.contains(hasher_.NamespaceId(d))) {
      return Status::Busy("the node holds " + std::to_string(namespaces_.size()) +
                          " namespaces, its limit");
    }
  }
  KVT_ASSIGN_OR_RETURN(uint64_t id, OpenNamespace(d));
  return Namespace(id);
}

bool Store::PeekLocal(uint64_t ns, const Hash128& key, BlockMeta* meta) {
  if (host_->Lookup(ns, key, meta, /*touch=*/true)) return true;
  return nvme_ && nvme_->Lookup(ns, key, meta);
}

bool Store::PinLocal(uint64_t ns, const Hash128& key, PinnedBlock* out) {
  if (host_->Pin(ns, key, out)) return true;
  BlockMeta m;
  if (!nvme_ || !nvme_->Lookup(ns, key, &m)) return false;
  if (!Promote(ns, key, nullptr, m.payload_bytes).ok()) return false;
  return host_->Pin(ns, key, out);
}

Status Store::PutFromPeer(const BlockMeta& meta, const void* data) {
  KVT_ASSIGN_OR_RETURN(const NamespaceInfo* info, Namespace(meta.ns));
  if (meta.payload_bytes != info->block_bytes) {
    Add(counters_.peer_put_rejects);
    return Status::InvalidArgument("put of " + std::to_string(meta.payload_bytes) +
                                   " bytes; a block of this namespace is " +
                                   std::to_string(info->block_bytes) + " bytes");
  }
  if (Checksum64(data, meta.payload_bytes) != meta.checksum) {
    Add(counters_.peer_put_rejects);
    return Status::Corruption("put payload does not match its checksum");
  }
  const bool was_held = EventsOn() && HeldLocally(meta.ns, meta.key);
  KVT_RETURN_IF_ERROR(host_->Put(meta, data, /*checksum_known=*/true));
  Add(counters_.peer_puts);
  if (!was_held) NoteStored(meta.ns, meta.key);
  if (nvme_ && WriteThroughMode()) KVT_RETURN_IF_ERROR(WriteThrough(meta.ns, meta.key));
  return Status::Ok();
}

}  // namespace kvt
