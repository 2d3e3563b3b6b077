#include "tiers/policy/admission.h"

#include <algorithm>

#include "base/units.h"

namespace kvt {

bool SeenTwiceAdmission::Decide(uint64_t fingerprint, uint64_t, double) {
  auto it = seq_.find(fingerprint);
  if (it != seq_.end()) {
    // Second offer while remembered: admit and forget, so a block dropped from the tier later must
    // again be offered twice to come back.
    seq_.erase(it);
    return true;
  }
  const uint64_t seq = next_seq_++;
  fifo_.emplace_back(fingerprint, seq);
  seq_[fingerprint] = seq;
  while (fifo_.size() > history_) {
    auto [fp, s] = fifo_.front();
    fifo_.pop_front();
    auto old = seq_.find(fp);
    if (old != seq_.end() && old->second == s) seq_.erase(old);
  }
  // Entries erased by an admit leave stale FIFO records; compact when they dominate.
  if (fifo_.size() > 2 * seq_.size() + 1024) {
    std::deque<std::pair<uint64_t, uint64_t>> live;
    for (const auto& e : fifo_) {
      auto f = seq_.find(e.first);
      if (f != seq_.end() && f->second == e.second) live.push_back(e);
    }
    fifo_.swap(live);
  }
  return false;
}

WriteBudgetAdmission::WriteBudgetAdmission(uint64_t bytes_per_day, double burst_seconds)
    : bytes_per_day_(bytes_per_day),
      rate_(static_cast<double>(bytes_per_day) / 86400.0),
      capacity_(rate_ * (burst_seconds > 0 ? burst_seconds : 1.0)),
      tokens_(capacity_) {}

std::string WriteBudgetAdmission::name() const {
  return "budget:" + std::to_string(bytes_per_day_);
}

bool WriteBudgetAdmission::Decide(uint64_t, uint64_t bytes, double now_s) {
  if (started_ && now_s > last_s_) tokens_ = std::min(capacity_, tokens_ + (now_s - last_s_) * rate_);
  if (!started_ || now_s > last_s_) last_s_ = now_s;
  started_ = true;
  const double need = static_cast<double>(bytes);
  if (tokens_ < need) return false;
  tokens_ -= need;
  return true;
}

std::string AdmissionChain::name() const {
  std::string out;
  for (const auto& m : members_) {
    if (!out.empty()) out += "+";
    out += m->name();
  }
  return out.empty() ? "all" : out;
}

bool AdmissionChain::Decide(uint64_t fingerprint, uint64_t bytes, double now_s) {
  for (const auto& m : members_) {
    if (!m->Admit(fingerprint, bytes, now_s)) return false;
  }
  return true;
}

namespace {

StatusOr<std::unique_ptr<AdmissionPolicy>> MakeOne(std::string_view part) {
  const size_t colon = part.find(':');
  const std::string_view kind = part.substr(0, colon);
  const std::string_view arg = colon == std::string_view::npos ? "" : part.substr(colon + 1);
  if (kind == "all" && arg.empty()) return std::unique_ptr<AdmissionPolicy>(new AdmitAll());
  if (kind == "seen_twice") {
    size_t history = 1 << 20;
    if (colon != std::string_view::npos) {
      auto h = ParseUint(arg);
      if (!h.ok() || *h == 0) {
        return Status::InvalidArgument("admission 'seen_twice:" + std::string(arg) +
                                       "': history must be a positive integer");
      }
      history = *h;
    }
    return std::unique_ptr<AdmissionPolicy>(new SeenTwiceAdmission(history));
  }
  if (kind == "budget") {
    auto b = ParseBytes(arg);
    if (!b.ok()) return b.status().WithContext("admission 'budget:" + std::string(arg) + "'");
    if (*b == 0) return Status::InvalidArgument("admission budget must be more than 0 bytes/day");
    return std::unique_ptr<AdmissionPolicy>(new WriteBudgetAdmission(*b));
  }
  return Status::InvalidArgument("admission policy '" + std::string(part) +
                                 "' is not one of all, seen_twice[:N], budget:<bytes per day>");
}

}  // namespace

StatusOr<std::unique_ptr<AdmissionPolicy>> MakeAdmissionPolicy(std::string_view spec) {
  std::vector<std::unique_ptr<AdmissionPolicy>> parts;
  size_t start = 0;
  while (true) {
    const size_t plus = spec.find('+', start);
    std::string_view part = spec.substr(start, plus == std::string_view::npos ? spec.npos
                                                                              : plus - start);
    if (part.empty()) return Status::InvalidArgument("empty admission policy in '" +
                                                     std::string(spec) + "'");
    KVT_ASSIGN_OR_RETURN(auto p, MakeOne(part));
    parts.push_back(std::move(p));
    if (plus == std::string_view::npos) break;
    start = plus + 1;
  }
  if (parts.size() == 1) return std::move(parts.front());
  return std::unique_ptr<AdmissionPolicy>(new AdmissionChain(std::move(parts)));
}

}  // namespace kvt
