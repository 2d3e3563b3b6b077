#include "tools/sim/stats.h"

#include <algorithm>
#include <cmath>

namespace kvt::sim {

LogHistogram::LogHistogram(double min, double rel, size_t buckets)
    : min_(min), log_base_(std::log1p(rel)), counts_(buckets, 0) {}

void LogHistogram::Add(double v) {
  ++count_;
  sum_ += v;
  max_ = std::max(max_, v);
  if (v <= 0) {
    ++zeros_;
    ++counts_[0];
    return;
  }
  double idx = v <= min_ ? 0 : std::log(v / min_) / log_base_;
  size_t b = std::min<size_t>(static_cast<size_t>(idx), counts_.size() - 1);
  ++counts_[b];
}

void LogHistogram::Merge(const LogHistogram& o) {
  for (size_t i = 0; i < counts_.size() && i < o.counts_.size(); ++i) counts_[i] += o.counts_[i];
  count_ += o.count_;
  zeros_ += o.zeros_;
  sum_ += o.sum_;
  max_ = std::max(max_, o.max_);
}

double LogHistogram::Quantile(double q) const {
  if (count_ == 0) return 0;
  // The rank of the q-quantile (nearest-rank, 1-based).
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  if (rank <= zeros_) return 0;
  uint64_t seen = 0;
  for (size_t b = 0; b < counts_.size(); ++b) {
    seen += counts_[b];
    if (seen >= rank) {
      double lo = min_ * std::exp(log_base_ * static_cast<double>(b));
      double v = lo * std::exp(log_base_ * 0.5);
      return std::min(v, max_);
    }
  }
  return max_;
}

bool IdSet::Insert(uint64_t id) {
  if (id == kEmpty) {
    bool fresh = !has_empty_key_;
    has_empty_key_ = true;
    return fresh;
  }
  if ((size_ + 1) * 10 > slots_.size() * 7) Grow();
  const size_t mask = slots_.size() - 1;
  for (size_t i = Mix(id) & mask;; i = (i + 1) & mask) {
    if (slots_[i] == id) return false;
    if (slots_[i] == kEmpty) {
      slots_[i] = id;
      ++size_;
      return true;
    }
  }
}

bool IdSet::Contains(uint64_t id) const {
  if (id == kEmpty) return has_empty_key_;
  if (slots_.empty()) return false;
  const size_t mask = slots_.size() - 1;
  for (size_t i = Mix(id) & mask;; i = (i + 1) & mask) {
    if (slots_[i] == id) return true;
    if (slots_[i] == kEmpty) return false;
  }
}

void IdSet::Grow() {
  std::vector<uint64_t> old;
  old.swap(slots_);
  slots_.assign(std::max<size_t>(1024, old.size() * 2), kEmpty);
  size_ = 0;
  for (uint64_t v : old) {
    if (v != kEmpty) Insert(v);
  }
}

}  // namespace kvt::sim
