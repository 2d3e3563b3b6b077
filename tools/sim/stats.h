// Small fixed-memory statistics for long replays: a log-bucketed histogram (percentiles within
// 1% relative error, memory independent of the number of samples) and an open-addressing set of
// 64-bit ids (counts unique blocks; memory grows with unique ids only).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kvt::sim {

class LogHistogram {
 public:
  // Values in [min, min * (1+rel)^buckets); smaller ones (and 0) land in the first bucket.
  explicit LogHistogram(double min = 1e-6, double rel = 0.01, size_t buckets = 2400);
  void Add(double v);
  void Merge(const LogHistogram& o);
  // The q-quantile (0..1), as the geometric middle of its bucket (exact 0 when the bucket is the
  // underflow one and every value there was 0).
  double Quantile(double q) const;
  uint64_t count() const { return count_; }
  double mean() const { return count_ ? sum_ / count_ : 0; }
  double max() const { return max_; }
  double sum() const { return sum_; }

 private:
  double min_, log_base_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0, zeros_ = 0;
  double sum_ = 0, max_ = 0;
};

class IdSet {
 public:
  // Inserts id; true when it was not there.
  bool Insert(uint64_t id);
  bool Contains(uint64_t id) const;
  // Starts loading the slot Insert(id) will read first (see TierIndex::Prefetch).
  void Prefetch(uint64_t id) const {
    if (!slots_.empty()) __builtin_prefetch(&slots_[Mix(id) & (slots_.size() - 1)]);
  }
  uint64_t size() const { return size_ + (has_empty_key_ ? 1 : 0); }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  static uint64_t Mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
  }
  void Grow();
  std::vector<uint64_t> slots_;
  uint64_t size_ = 0;
  bool has_empty_key_ = false;
};

}  // namespace kvt::sim
