#include "tiers/tier.h"

namespace kvt {

const char* TierKindName(TierKind k) {
  switch (k) {
    case TierKind::kHbm: return "hbm";
    case TierKind::kHost: return "host";
    case TierKind::kNvme: return "nvme";
    case TierKind::kRemote: return "remote";
  }
  return "?";
}

Status StorageTier::LookupBatch(uint64_t ns, std::span<const Hash128> keys, std::span<uint8_t> todo,
                                std::span<BlockMeta> metas) {
  for (size_t i = 0; i < keys.size(); ++i) {
    if (todo[i] && Lookup(ns, keys[i], &metas[i], /*touch=*/false)) todo[i] = 0;
  }
  return Status::Ok();
}

namespace {
Status NoSlots(TierKind k) {
  return Status::Internal(std::string("the ") + TierKindName(k) + " tier holds no slots");
}
}  // namespace

StatusOr<SlotPin> StorageTier::Reserve(const BlockMeta&) { return NoSlots(kind()); }
void StorageTier::Publish(const SlotPin&) {}
void StorageTier::Abort(const SlotPin&) {}
bool StorageTier::Pin(uint64_t, const Hash128&, SlotPin*, bool) { return false; }
void StorageTier::Unpin(const SlotPin&) {}

}  // namespace kvt
