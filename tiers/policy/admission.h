// Admission policies: decide whether a block offered to a tier (a demotion from the tier above, or a
// write-through copy) is written there at all. The NVMe tier uses them to spare SSD endurance; the
// simulator (tools/sim) drives the very same classes in metadata-only mode.
//
//  - AdmitAll:           every offer is admitted.
//  - SeenTwiceAdmission: rejects the first offer of a block and admits a second offer made while
//                        the first is still remembered (CacheLib's "reject first"). One-hit wonders
//                        never reach the SSD. History: a FIFO of fingerprints of bounded size.
//  - WriteBudgetAdmission: a token bucket of bytes refilled at budget/day; an offer is admitted when
//                        the bucket holds its bytes. The bucket holds at most `burst_seconds` of
//                        refill and starts full. Time is the caller's (wall clock in the store,
//                        trace time in the simulator), in seconds, non-decreasing.
//  - AdmissionChain:     admits when every member admits, asked in order; a member that rejects
//                        stops the chain, so a write budget placed after seen-twice is charged
//                        only for blocks seen twice.
//
// Thread safety: none; the owning tier serializes calls.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"

namespace kvt {

struct AdmissionStats {
  uint64_t offered = 0;
  uint64_t admitted = 0;
  uint64_t rejected = 0;
  uint64_t admitted_bytes = 0;
};

class AdmissionPolicy {
 public:
  virtual ~AdmissionPolicy() = default;
  // Decides on one offer. fingerprint names the block (e.g. key.lo ^ namespace id), bytes is what
  // admitting it would write, now_s the caller's clock in seconds. Counts the offer in stats().
  bool Admit(uint64_t fingerprint, uint64_t bytes, double now_s) {
    ++stats_.offered;
    const bool ok = Decide(fingerprint, bytes, now_s);
    if (ok) {
      ++stats_.admitted;
      stats_.admitted_bytes += bytes;
    } else {
      ++stats_.rejected;
    }
    return ok;
  }
  const AdmissionStats& stats() const { return stats_; }
  // A canonical description ("all", "seen_twice", "budget:1000000000000", "seen_twice+budget:...").
  virtual std::string name() const = 0;

 protected:
  virtual bool Decide(uint64_t fingerprint, uint64_t bytes, double now_s) = 0;

 private:
  AdmissionStats stats_;
};

class AdmitAll final : public AdmissionPolicy {
 public:
  std::string name() const override { return "all"; }

 protected:
  bool Decide(uint64_t, uint64_t, double) override { return true; }
};

class SeenTwiceAdmission final : public AdmissionPolicy {
 public:
  // history: how many first offers are remembered (oldest forgotten first). REQUIRES: history > 0.
  explicit SeenTwiceAdmission(size_t history = 1 << 20) : history_(history ? history : 1) {}
  std::string name() const override { return "seen_twice"; }
  size_t remembered() const { return seq_.size(); }

 protected:
  bool Decide(uint64_t fingerprint, uint64_t bytes, double now_s) override;

 private:
  size_t history_;
  std::deque<std::pair<uint64_t, uint64_t>> fifo_;  // (fingerprint, sequence)
  std::unordered_map<uint64_t, uint64_t> seq_;      // fingerprint -> latest sequence
  uint64_t next_seq_ = 0;
};

class WriteBudgetAdmission final : public AdmissionPolicy {
 public:
  // bytes_per_day > 0; burst_seconds > 0 (the bucket holds that many seconds of refill).
  explicit WriteBudgetAdmission(uint64_t bytes_per_day, double burst_seconds = 3600.0);
  std::string name() const override;
  uint64_t bytes_per_day() const { return bytes_per_day_; }
  double tokens() const { return tokens_; }

 protected:
  bool Decide(uint64_t fingerprint, uint64_t bytes, double now_s) override;

 private:
  uint64_t bytes_per_day_;
  double rate_;      // bytes per second
  double capacity_;  // bytes
  double tokens_;
  double last_s_ = 0;
  bool started_ = false;
};

class AdmissionChain final : public AdmissionPolicy {
 public:
  explicit AdmissionChain(std::vector<std::unique_ptr<AdmissionPolicy>> members)
      : members_(std::move(members)) {}
  std::string name() const override;
  const std::vector<std::unique_ptr<AdmissionPolicy>>& members() const { return members_; }

 protected:
  bool Decide(uint64_t fingerprint, uint64_t bytes, double now_s) override;

 private:
  std::vector<std::unique_ptr<AdmissionPolicy>> members_;
};

// Builds a policy from its text form: "all", "seen_twice", "seen_twice:<history>",
// "budget:<bytes per day>" (ParseBytes syntax, e.g. "budget:2TB"), or several joined by '+'
// ("seen_twice+budget:2TB"). InvalidArgument names the part that is wrong.
StatusOr<std::unique_ptr<AdmissionPolicy>> MakeAdmissionPolicy(std::string_view spec);

}  // namespace kvt
