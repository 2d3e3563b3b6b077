#include "membership/etcd_membership.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "base/counter.h"
#include "base/log.h"

namespace kvt::etcd {

EtcdMembership::EtcdMembership(const MembershipOptions& o, OnChange on_change)
    : opts_(o), watch_prefix_(o.prefix + "/"), on_change_(std::move(on_change)),
      client_(o.etcd, o.timeout) {}

StatusOr<std::unique_ptr<EtcdMembership>> EtcdMembership::Start(const MembershipOptions& o,
                                                                OnChange on_change) {
  std::unique_ptr<EtcdMembership> m(new EtcdMembership(o, std::move(on_change)));
  auto r = m->client_.RangePrefix(m->watch_prefix_);
  if (!r.ok()) {
    return Status(r.status()).WithContext("etcd membership (prefix " + o.prefix + ")");
  }
  m->ApplyRange(*r);
  m->thread_ = std::thread([p = m.get()] { p->Run(); });
  return m;
}

EtcdMembership::~EtcdMembership() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
    if (watch_ != nullptr) watch_->Cancel();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::vector<std::string> EtcdMembership::endpoints() const {
  std::lock_guard<std::mutex> l(mu_);
  return published_;
}

bool EtcdMembership::Sleep(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait_for(l, d, [&] { return stopping_; });
  return !stopping_;
}

void EtcdMembership::ApplyRange(const RangeResult& r) {
  by_key_.clear();
  for (const KeyValue& kv : r.kvs) {
    auto n = ParseNodeInfo(kv.value);
    if (!n.ok()) {
      Add(counters_.malformed);
      KVT_LOG(kWarn, "etcd membership: skipping " + kv.key.substr(0, 256) + ": " + n.status().message());
      continue;
    }
    by_key_[kv.key] = n->address;
  }
  next_revision_ = r.revision + 1;
  counters_.revision = next_revision_;
  Publish();
}

void EtcdMembership::ApplyEvents(const std::vector<WatchEvent>& events) {
  for (const WatchEvent& ev : events) {
    Add(counters_.events);
    next_revision_ = std::max(next_revision_, ev.kv.mod_revision + 1);
    if (ev.deleted) {
      by_key_.erase(ev.kv.key);
      continue;
    }
    auto n = ParseNodeInfo(ev.kv.value);
    if (!n.ok()) {
      Add(counters_.malformed);
      KVT_LOG(kWarn, "etcd membership: skipping " + ev.kv.key.substr(0, 256) + ": " + n.status().message());
      by_key_.erase(ev.kv.key);  // whatever it was, it is no node now
      continue;
    }
    by_key_[ev.kv.key] = n->address;
  }
  counters_.revision = next_revision_;
  Publish();
}

void EtcdMembership::Publish() {
  std::vector<std::string> set;
  for (const auto& [key, address] : by_key_) set.push_back(address);
  std::sort(set.begin(), set.end());
  set.erase(std::unique(set.begin(), set.end()), set.end());
  {
    std::lock_guard<std::mutex> l(mu_);
    if (set == published_ && published_once_) return;
    published_ = set;
    counters_.nodes = set.size();
    if (published_once_) Add(counters_.changes);  // the set read at start is no change
    published_once_ = true;
  }
  on_change_(set);
}

void EtcdMembership::Run() {
  auto backoff = opts_.backoff_min;
  auto fail = [&](const Status& s) {
    Add(counters_.etcd_errors);
    KVT_LOG(kInfo, "etcd membership: " + s.ToString() + "; keeping " +
                       std::to_string(counters_.nodes.load()) + " nodes, retrying in " +
                       std::to_string(backoff.count()) + " ms");
    const bool go_on = Sleep(backoff);
    backoff = std::min(backoff * 2, opts_.backoff_max);
    return go_on;
  };
  bool need_range = false, first = true;
  for (;;) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopping_) return;
    }
    if (need_range) {
      auto r = client_.RangePrefix(watch_prefix_);
      if (!r.ok()) {
        if (!fail(r.status())) return;
        continue;
      }
      ApplyRange(*r);
      need_range = false;
    }
    auto w = EtcdWatch::Open(opts_.etcd, watch_prefix_, next_revision_, opts_.timeout);
    if (!w.ok()) {
      if (!fail(w.status())) return;
      continue;
    }
    if (!first) Add(counters_.watch_restarts);
    first = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopping_) return;
      watch_ = w->get();
    }
    counters_.connected = 1;
    Status s;
    for (;;) {
      WatchResponse resp;
      s = (*w)->Next(&resp);
      if (!s.ok()) break;
      backoff = opts_.backoff_min;  // etcd answers again
      if (resp.canceled) {
        if (resp.compact_revision > 0) {
          // Our revision is gone from etcd's history: read the whole prefix again.
          Add(counters_.compactions);
          KVT_LOG(kInfo, "etcd membership: watch from revision " + std::to_string(next_revision_) +
                             " compacted (at " + std::to_string(resp.compact_revision) +
                             "); reading the prefix again");
          need_range = true;
        } else {
          s = Status::Unavailable("etcd cancelled the watch: " + resp.cancel_reason);
        }
        break;
      }
      ApplyEvents(resp.events);
    }
    counters_.connected = 0;
    {
      std::lock_guard<std::mutex> l(mu_);
      watch_ = nullptr;
      if (stopping_) return;
    }
    if (!s.ok() && !fail(s)) return;
  }
}

void EtcdMembership::StatsJson(nlohmann::json* out) const {
  auto& j = *out;
  auto get = [](const auto& c) { return c.load(std::memory_order_relaxed); };
  j["etcd"] = opts_.etcd.ToString();
  j["prefix"] = opts_.prefix;
  j["nodes"] = get(counters_.nodes);
  j["changes"] = get(counters_.changes);
  j["watch_restarts"] = get(counters_.watch_restarts);
  j["etcd_errors"] = get(counters_.etcd_errors);
  j["compactions"] = get(counters_.compactions);
  j["malformed"] = get(counters_.malformed);
  j["events"] = get(counters_.events);
  j["revision"] = get(counters_.revision);
  j["connected"] = get(counters_.connected) != 0;
}

}  // namespace kvt::etcd
