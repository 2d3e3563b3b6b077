// Thin adapters that give the NVMe and remote tiers the tier contract (tiers/tier.h), so that the
// store loops over every tier and the mover reads any of them the same way. They own nothing but
// a pointer to the tier they adapt (which must outlive them).
//
// Thread safety: as the adapted tier (every method may be called concurrently).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "tiers/nvme/nvme_tier.h"
#include "tiers/remote/remote_tier.h"
#include "tiers/tier.h"

namespace kvt {

class NvmeTierAdapter final : public StorageTier {
 public:
  explicit NvmeTierAdapter(NvmeTier* t) : StorageTier(/*holds_slots=*/false), t_(t) {}
  TierKind kind() const override { return TierKind::kNvme; }
  NvmeTier* tier() const { return t_; }

  bool Lookup(uint64_t ns, const Hash128& key, BlockMeta* out, bool touch) override;
  // Reads and verifies the record; a 4 KiB-aligned dst whose size rounds up to whole pages (a
  // host slot) is read into directly.
  Status Read(uint64_t ns, const Hash128& key, void* dst, size_t dst_bytes,
              BlockMeta* meta) override;
  Status Remove(uint64_t ns, const Hash128& key) override { return t_->Remove(ns, key); }
  Status DropNamespace(uint64_t ns, size_t* dropped = nullptr) override;
  std::vector<BlockId> Snapshot() const override;
  // The tier's own visitor (the names are kvt_stats_json's tiers.nvme keys).
  void VisitCounters(const CounterVisitor& visit) const override;

 private:
  NvmeTier* t_;
};

class RemoteTierAdapter final : public StorageTier {
 public:
  // encoding_of: a namespace id's canonical encoding (what travels on the wire), or null when
  // the id is unknown; the pointer keeps it alive while used, even if the store forgets the
  // namespace meanwhile. propagate_drops: DropNamespace reaches every node (remote_write =
  // write_through); otherwise dropping is a no-op here.
  using EncodingFn = std::function<std::shared_ptr<const std::string>(uint64_t ns)>;
  RemoteTierAdapter(RemoteTier* t, EncodingFn encoding_of, bool propagate_drops)
      : StorageTier(/*holds_slots=*/false),
        t_(t),
        encoding_of_(std::move(encoding_of)),
        propagate_drops_(propagate_drops) {}
  TierKind kind() const override { return TierKind::kRemote; }
  RemoteTier* tier() const { return t_; }
  std::shared_ptr<const std::string> EncodingOf(uint64_t ns) const { return encoding_of_(ns); }

  bool Lookup(uint64_t ns, const Hash128& key, BlockMeta* out, bool touch) override;
  // One request for every key still to find; PermissionDenied is returned, an unreachable node
  // leaves its keys not found.
  Status LookupBatch(uint64_t ns, std::span<const Hash128> keys, std::span<uint8_t> todo,
                     std::span<BlockMeta> metas) override;
  // Streams the block from its owner into dst, checksum-verified. NotFound on any failure but
  // PermissionDenied (a network failure is a miss).
  Status Read(uint64_t ns, const Hash128& key, void* dst, size_t dst_bytes,
              BlockMeta* meta) override;
  // Blocks at a remote node are removed by their owner's policy: NotFound.
  Status Remove(uint64_t, const Hash128&) override {
    return Status::NotFound("remote blocks are not removed from here");
  }
  Status DropNamespace(uint64_t ns, size_t* dropped = nullptr) override;
  std::vector<BlockId> Snapshot() const override { return {}; }
  void VisitCounters(const CounterVisitor& visit) const override;

 private:
  RemoteTier* t_;
  EncodingFn encoding_of_;
  bool propagate_drops_;
};

}  // namespace kvt
