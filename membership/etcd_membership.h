// EtcdMembership: the set of kvtierd nodes registered under an etcd prefix, kept current.
//
// Start reads every key under PREFIX "/" at one revision R (etcd unreachable: Unavailable naming
// etcd, so a store's open fails clearly), reports the node set, then a thread watches the prefix
// from R+1 and reports the set again whenever a node joins or leaves (a lease that expires
// deletes its key, so an expired node leaves like one that deregistered).
//
// When etcd is lost the last known set stays in force; the thread retries with exponential
// back-off (100 ms .. 2 s) and resumes the watch from the revision after the last event it
// applied, so nothing is missed. When that revision has been compacted away, etcd cancels the
// watch with compact_revision and the thread reads the whole prefix again.
//
// A value that is not a node description (ParseNodeInfo) is skipped and counted; its key counts
// as no node. Two keys naming one address are one node.
//
// Thread safety: on_change runs on the watcher thread (and once on Start's caller), never
// concurrently with itself. Every const method may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/status.h"
#include "membership/etcd_client.h"

namespace kvt::etcd {

struct MembershipOptions {
  Url etcd;
  std::string prefix;  // normalized (NormalizePrefix); nodes are the keys under prefix + "/"
  std::chrono::milliseconds timeout{2000};          // per etcd call
  std::chrono::milliseconds backoff_min{100}, backoff_max{2000};
};

struct MembershipCounters {
  std::atomic<uint64_t> changes{0};         // node set replaced (joins and leaves)
  std::atomic<uint64_t> watch_restarts{0};  // watches opened after the first
  std::atomic<uint64_t> etcd_errors{0};     // failed calls and broken streams
  std::atomic<uint64_t> compactions{0};     // watches cancelled by a compaction (range re-read)
  std::atomic<uint64_t> malformed{0};       // values under the prefix that are no node
  std::atomic<uint64_t> events{0};          // watch events applied
  std::atomic<uint64_t> nodes{0};           // current node count
  std::atomic<int64_t> revision{0};         // next revision the watch starts from
  std::atomic<uint64_t> connected{0};       // 1 while a watch stream is open
};

class EtcdMembership {
 public:
  using OnChange = std::function<void(const std::vector<std::string>& endpoints)>;
  static StatusOr<std::unique_ptr<EtcdMembership>> Start(const MembershipOptions& o, OnChange on_change);
  // Stops the watcher and waits for it (at most one etcd call's timeout).
  ~EtcdMembership();
  EtcdMembership(const EtcdMembership&) = delete;
  EtcdMembership& operator=(const EtcdMembership&) = delete;

  std::vector<std::string> endpoints() const;
  const MembershipCounters& counters() const { return counters_; }
  void StatsJson(nlohmann::json* out) const;

 private:
  EtcdMembership(const MembershipOptions& o, OnChange on_change);
  // Replaces the node map with a full range; reports the set if it changed.
  void ApplyRange(const RangeResult& r);
  void ApplyEvents(const std::vector<WatchEvent>& events);
  void Publish();  // reports the address set when it differs from the last one reported
  void Run();
  bool Sleep(std::chrono::milliseconds d);  // false when stopping

  const MembershipOptions opts_;
  const std::string watch_prefix_;  // prefix + "/"
  const OnChange on_change_;
  EtcdClient client_;
  MembershipCounters counters_;
  std::map<std::string, std::string> by_key_;  // key -> address; watcher thread only
  mutable std::mutex mu_;
  std::vector<std::string> published_;  // GUARDED_BY(mu_)
  bool published_once_ = false;         // GUARDED_BY(mu_)
  bool stopping_ = false;               // GUARDED_BY(mu_)
  EtcdWatch* watch_ = nullptr;          // GUARDED_BY(mu_): the open stream, for Cancel
  std::condition_variable cv_;
  int64_t next_revision_ = 0;  // watcher thread only
  std::thread thread_;
};

}  // namespace kvt::etcd
