// The store's remote side: opening the remote tier (its adapter joins the store's tiers; lookups,
// gets and puts reach it through Store::Locate and the mover) and the calls kvtierd's sessions
// make to serve peers. Kept apart from
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
  ro.allow_empty = !opts_.remote_etcd.empty();
  ro.connections_per_node = opts_.remote_connections;
  ro.batch_blocks = opts_.remote_batch_blocks;
  ro.pipeline_depth = opts_.remote_pipeline_depth;
  ro.socket_buffer_bytes = opts_.remote_socket_buffer;
  KVT_ASSIGN_OR_RETURN(ro.codecs, ParseWireCompression(opts_.remote_compression));
  KVT_ASSIGN_OR_RETURN(remote_, RemoteTier::Create(ro));
  remote_adapter_ = std::make_unique<RemoteTierAdapter>(
      remote_.get(),
      [this](uint64_t ns) -> std::shared_ptr<const std::string> {
        auto info = Namespace(ns);
        if (!info.ok()) return nullptr;
        return std::shared_ptr<const std::string>(*info, &(*info)->encoding);  // keeps it alive
      },
      /*propagate_drops=*/RemoteWriteThrough());
  if (!opts_.remote_etcd.empty()) {
    // The nodes come from etcd: the set read at open, then every join and leave. etcd not
    // answering now fails the open (a store silently without its remote tier would be worse).
    etcd::MembershipOptions mo;
    KVT_ASSIGN_OR_RETURN(mo.etcd, etcd::ParseEtcdUrl(opts_.remote_etcd, &mo.prefix));
    RemoteTier* r = remote_.get();
    KVT_ASSIGN_OR_RETURN(membership_, etcd::EtcdMembership::Start(
                                          mo, [r](const std::vector<std::string>& eps) { r->SetNodes(eps); }));
  }
  // A wrong secret is a configuration error worth failing open for; a node that is down is not
  // (it may come up later, and its blocks are misses meanwhile).
  return remote_->Probe();
}

// --- serving peers -------------------------------------------------------------------------------

StatusOr<NamespaceRef> Store::AcquirePeerNamespace(std::string_view encoding,
                                                   size_t max_namespaces) {
  KVT_ASSIGN_OR_RETURN(NamespaceDesc d, DecodeNamespace(encoding));
  return Register(d, /*local=*/false, max_namespaces);
}

void Store::ReleasePeerNamespace(uint64_t ns) {
  NamespaceRef forgotten;  // freed after the lock, once no request holds it either
  std::unique_lock<std::shared_mutex> l(ns_mu_);
  auto it = namespaces_.find(ns);
  if (it == namespaces_.end() || it->second.peers == 0) return;  // unpaired: ignore, never go below 0
  if (--it->second.peers > 0 || it->second.local) return;
  forgotten = std::move(it->second.info);
  namespaces_.erase(it);
  Add(counters_.namespaces_forgotten);
}

bool Store::PeekLocal(uint64_t ns, const Hash128& key, BlockMeta* meta) {
  for (StorageTier* t : mover_->tiers()) {
    if (t->kind() == TierKind::kRemote || t->kind() == TierKind::kHbm) continue;
    if (t->Lookup(ns, key, meta, /*touch=*/true)) return true;
  }
  return false;
}

bool Store::PinLocal(uint64_t ns, const Hash128& key, PinnedBlock* out) {
  FetchResult r;
  FetchOptions fo;
  fo.local_only = true;  // a peer asked us: never ask the remote tier back
  mover_->FetchToHost(ns, {&key, 1}, {out, 1}, {&r, 1}, fo);
  return r.status.ok();
}

Status Store::PutFromPeer(const BlockMeta& meta, const void* data) {
  KVT_ASSIGN_OR_RETURN(NamespaceRef info, Namespace(meta.ns));
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
  // Stored locally (and written through to NVMe in that mode), never sent on to a remote node.
  Status s = mover_->Put(meta, data, /*checksum_known=*/true, /*remote_write=*/false);
  if (s.ok()) Add(counters_.peer_puts);
  // A failed write-through leaves the block stored in the host tier: it is new all the same.
  if (!was_held && EventsOn() && (s.ok() || host_->Lookup(meta.ns, meta.key, nullptr, false))) {
    NoteStored(meta.ns, meta.key);
  }
  return s;
}

}  // namespace kvt
