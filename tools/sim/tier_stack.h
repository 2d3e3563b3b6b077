// TierStack: the block movement of a tier hierarchy in metadata-only mode, written out explicitly.
// Each tier is the engine's own TierIndex with the engine's own EvictionPolicy; admission to a
// tier is the engine's own AdmissionPolicy (tiers/policy/admission.h). The stack adds only the movement
// rules of ARCHITECTURE.md:
//
//   lookup      Locate(key): the highest tier holding the block, or -1. Changes nothing.
//   computed    a block that was computed (a miss, or a hit not worth loading) is written into
//               the top tier. With write-through, a computed block is also offered to the
//               write-through tier (NVMe), subject to its admission policy.
//   promotion   a hit in a lower tier that the request loads is copied up into the top tier; the
//               lower copy stays (it is clean) and is touched.
//   eviction    a tier over capacity evicts its policy's victim (PickVictim until there is room).
//   demotion    an evicted block is offered to the next tier down. Already there: the copy is
//               touched and nothing is written. Refused by that tier's admission: dropped.
//               Otherwise written there, possibly evicting (and demoting) further down. A block
//               evicted from the bottom tier is dropped.
//
// Capacities are in blocks (every block occupies one slot of block_bytes). A tier of capacity 0
// holds nothing: what would enter it goes straight on down as if evicted at once.
//
// Thread safety: none.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "tiers/policy/admission.h"
#include "tiers/policy/tier_index.h"

namespace kvt::sim {

struct TierConfig {
  std::string name = "host";  // hbm, host, nvme or remote (sets the load path's bandwidths)
  uint64_t capacity_blocks = UINT64_MAX;
  std::string policy = "lru";     // MakeEvictionPolicy
  std::string admission = "all";  // MakeAdmissionPolicy
};

// Per tier, in blocks.
struct TierMoveStats {
  uint64_t computed_in = 0;    // computed blocks written into this tier (top tier)
  uint64_t promoted_in = 0;    // copies promoted into this tier (top tier)
  uint64_t promoted_out = 0;   // copies read from this tier to promote them
  uint64_t demoted_in = 0;     // evicted blocks written into this tier from the one above
  uint64_t demote_present = 0; // demotions that found the block already here (touched, no write)
  uint64_t written_through = 0;
  uint64_t evicted = 0;        // chosen by the policy
  uint64_t dropped = 0;        // evicted from the bottom tier, or refused admission below
  uint64_t admission_rejected = 0;  // offers to this tier its admission refused
  uint64_t touches = 0;
  uint64_t written() const { return computed_in + promoted_in + demoted_in + written_through; }
};

class TierStack {
 public:
  enum class Action { kTouched, kPromoted, kRecomputed, kInserted };

  // block_bytes: the slot size (bytes each movement counts). write_through_tier: index of the tier
  // that also receives every computed block, or -1.
  static StatusOr<std::unique_ptr<TierStack>> Create(const std::vector<TierConfig>& tiers,
                                                     uint64_t block_bytes,
                                                     int write_through_tier = -1);

  int Locate(const Hash128& key) const;
  // Prefetches key's slot in every tier's index (see TierIndex::Prefetch).
  void Prefetch(const Hash128& key) const;
  // The request uses this block (insert phase, blocks in order). parent: the previous block of
  // the same request ({0,0} for the first). load: a copy found in a lower tier is promoted; when
  // false it is recomputed instead (written into the top tier as computed, the lower copy
  // touched). now_s: trace time, for time-based admission.
  Action Reference(const Hash128& key, const Hash128& parent, bool load, double now_s);

  size_t tiers() const { return tiers_.size(); }
  const TierConfig& config(size_t t) const { return tiers_[t].cfg; }
  const TierIndex& index(size_t t) const { return *tiers_[t].index; }
  const TierMoveStats& stats(size_t t) const { return tiers_[t].stats; }
  const AdmissionPolicy& admission(size_t t) const { return *tiers_[t].admit; }
  uint64_t block_bytes() const { return block_bytes_; }
  // Blocks that moved from tier `from` to tier `to` (from == -1: newly computed).
  uint64_t path_blocks(int from, int to) const { return paths_[(from + 1) * kMaxTiers + to]; }
  static constexpr int kMaxTiers = 8;

 private:
  struct Level {
    TierConfig cfg;
    std::unique_ptr<TierIndex> index;
    std::unique_ptr<AdmissionPolicy> admit;
    TierMoveStats stats;
  };
  TierStack() = default;
  // Writes meta into tier t, evicting (and demoting) to make room. from: the source for path
  // accounting (-1 computed). A tier of capacity 0 passes the block on down.
  void Place(size_t t, const BlockMeta& meta, int from, double now_s);
  // Offers an evicted (or pass-through) block to tier t (t may be past the bottom: dropped).
  void Demote(size_t t, const BlockMeta& meta, int from, double now_s);
  void MakeRoom(size_t t, double now_s);
  BlockMeta Meta(const Hash128& key, const Hash128& parent) const;

  std::vector<Level> tiers_;
  uint64_t block_bytes_ = 0;
  int write_through_ = -1;
  std::vector<uint64_t> paths_ = std::vector<uint64_t>((kMaxTiers + 1) * kMaxTiers, 0);
};

}  // namespace kvt::sim
