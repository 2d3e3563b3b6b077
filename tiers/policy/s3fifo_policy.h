// S3-FIFO (Yang et al., SOSP'23): a small FIFO (10% of entries) filters one-hit wonders, a main
// FIFO with lazy promotion keeps what was reused, and a ghost FIFO of evicted keys' fingerprints
// sends a returning key straight to main. Resistant to scans, which KV workloads are full of
// (long one-off prompts).
#pragma once

#include <deque>
#include <unordered_map>
#include <vector>

#include "tiers/policy/eviction_policy.h"
#include "tiers/policy/intrusive_list.h"

namespace kvt {

class S3FifoPolicy final : public EvictionPolicy {
 public:
  void Insert(EntryId id, EntryId parent, uint64_t fingerprint) override;
  void Touch(EntryId id) override;
  void Remove(EntryId id, bool evicted) override;
  EntryId PickVictim(const std::function<bool(EntryId)>& can_evict) override;
  std::string_view name() const override { return "s3fifo"; }

 private:
  static constexpr uint8_t kMaxFreq = 3;
  void GhostAdd(uint64_t fp);
  bool GhostTake(uint64_t fp);

  IdList small_, main_;
  std::vector<uint8_t> freq_;
  std::vector<uint64_t> fingerprint_;
  // Ghost: FIFO of (fingerprint, sequence); the map holds each fingerprint's latest sequence, so
  // an old FIFO entry aging out never drops a newer membership of the same key.
  std::deque<std::pair<uint64_t, uint64_t>> ghost_fifo_;
  std::unordered_map<uint64_t, uint64_t> ghost_seq_;
  uint64_t ghost_next_seq_ = 0;
};

}  // namespace kvt
