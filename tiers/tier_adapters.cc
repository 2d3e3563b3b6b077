#include "tiers/tier_adapters.h"

namespace kvt {

// --- NVMe ---------------------------------------------------------------------------------------

bool NvmeTierAdapter::Lookup(uint64_t ns, const Hash128& key, BlockMeta* out, bool) {
  return t_->Lookup(ns, key, out);
}

Status NvmeTierAdapter::Read(uint64_t ns, const Hash128& key, void* dst, size_t dst_bytes,
                             BlockMeta* meta) {
  BlockMeta m;
  if (!t_->Lookup(ns, key, &m)) return Status::NotFound("block not in the NVMe tier");
  if (m.payload_bytes != dst_bytes) {
    return Status::InvalidArgument("buffer of " + std::to_string(dst_bytes) +
                                   " bytes for a block of " + std::to_string(m.payload_bytes));
  }
  KVT_RETURN_IF_ERROR(t_->Read(ns, key, dst, dst_bytes, &m));
  if (meta != nullptr) *meta = m;
  return Status::Ok();
}

Status NvmeTierAdapter::DropNamespace(uint64_t ns, size_t* dropped) {
  if (dropped != nullptr) *dropped = 0;  // the tier does not count them
  return t_->DropNamespace(ns);
}

std::vector<BlockId> NvmeTierAdapter::Snapshot() const {
  std::vector<BlockId> ids;
  t_->ForEachEntry([&](const NvmeEntry& e) {
    ids.push_back(BlockId{e.ns, e.key});
    return true;
  });
  return ids;
}

void NvmeTierAdapter::VisitCounters(const CounterVisitor& visit) const {
  t_->VisitCounters(visit);
}

// --- remote -------------------------------------------------------------------------------------

bool RemoteTierAdapter::Lookup(uint64_t ns, const Hash128& key, BlockMeta* out, bool) {
  uint8_t todo = 1;
  BlockMeta m;
  if (!LookupBatch(ns, {&key, 1}, {&todo, 1}, {&m, 1}).ok() || todo) return false;
  if (out != nullptr) *out = m;
  return true;
}

Status RemoteTierAdapter::LookupBatch(uint64_t ns, std::span<const Hash128> keys,
                                      std::span<uint8_t> todo, std::span<BlockMeta> metas) {
  std::shared_ptr<const std::string> enc = encoding_of_(ns);
  if (enc == nullptr) return Status::Ok();
  std::vector<Hash128> ask;
  std::vector<size_t> pos;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!todo[i]) continue;
    ask.push_back(keys[i]);
    pos.push_back(i);
  }
  if (ask.empty()) return Status::Ok();
  std::vector<wire::LookupEntry> entries;
  KVT_RETURN_IF_ERROR(t_->Lookup(*enc, ask, &entries));
  for (size_t k = 0; k < ask.size() && k < entries.size(); ++k) {
    if (!entries[k].present) continue;
    metas[pos[k]] = ToBlockMeta(ns, entries[k].info);
    todo[pos[k]] = 0;
  }
  return Status::Ok();
}

Status RemoteTierAdapter::Read(uint64_t ns, const Hash128& key, void* dst, size_t dst_bytes,
                               BlockMeta* meta) {
  std::shared_ptr<const std::string> enc = encoding_of_(ns);
  if (enc == nullptr) return Status::NotFound("unknown namespace");
  Status got = Status::NotFound("block not at its owning node");
  Status s = t_->Get(*enc, {&key, 1}, [&](size_t, RemotePayload* p) {
    if (p->info().payload_bytes != dst_bytes) {
      got = Status::InvalidArgument("remote block of " + std::to_string(p->info().payload_bytes) +
                                    " bytes for a buffer of " + std::to_string(dst_bytes));
      return;
    }
    Status r = p->Read(static_cast<uint8_t*>(dst));
    got = r.ok() ? Status::Ok() : Status::NotFound("remote block: " + r.ToString());
    if (r.ok() && meta != nullptr) *meta = ToBlockMeta(ns, p->info());
  });
  if (s.code() == Code::kPermissionDenied) return s;
  return got;
}

Status RemoteTierAdapter::DropNamespace(uint64_t ns, size_t* dropped) {
  if (dropped != nullptr) *dropped = 0;
  std::shared_ptr<const std::string> enc = encoding_of_(ns);
  if (!propagate_drops_ || enc == nullptr) return Status::Ok();
  return t_->DropNamespace(*enc).WithContext("remote drop");
}

void RemoteTierAdapter::VisitCounters(const CounterVisitor& visit) const {
  const RemoteCounters& c = t_->counters();
  auto get = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  visit("nodes", t_->nodes());
  visit("requests", get(c.requests));
  visit("failures", get(c.failures));
  visit("timeouts", get(c.timeouts));
  visit("retries", get(c.retries));
  visit("connects", get(c.connects));
  visit("connect_failures", get(c.connect_failures));
  visit("auth_failures", get(c.auth_failures));
  visit("skipped_down", get(c.skipped_down));
  visit("lookup_keys", get(c.lookup_keys));
  visit("lookup_hits", get(c.lookup_hits));
  visit("get_keys", get(c.get_keys));
  visit("get_hits", get(c.get_hits));
  visit("checksum_failures", get(c.checksum_failures));
  visit("puts", get(c.puts));
  visit("bytes_in", get(c.bytes_in));
  visit("bytes_out", get(c.bytes_out));
}

}  // namespace kvt
