// EtcdRegistration: one node's entry under a cluster prefix, kept alive by a lease.
//
// Start grants a lease of ttl seconds, puts PREFIX "/" ADDRESS = value under it (etcd
// unreachable: Unavailable naming etcd) and keeps the lease alive from a thread every ttl/3.
// If the lease is gone anyway (etcd was away longer than the TTL, or a compaction of leases),
// the thread grants a new one and puts the key again. If the process dies, keepalives stop and
// etcd deletes the key when the lease expires; Deregister (at SIGTERM) deletes it at once.
//
// Thread safety: Deregister and the destructor from one thread; counters from any.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/status.h"
#include "membership/etcd_client.h"

namespace kvt::etcd {

struct RegistrationOptions {
  Url etcd;
  std::string prefix;   // normalized
  std::string address;  // HOST:PORT clients dial; the key is prefix + "/" + address
  std::string value;    // EncodeNodeInfo(...)
  int64_t ttl_s = 5;
  std::chrono::milliseconds timeout{2000};
};

struct RegistrationCounters {
  std::atomic<uint64_t> keepalives{0}, keepalive_failures{0}, reregistrations{0};
};

class EtcdRegistration {
 public:
  static StatusOr<std::unique_ptr<EtcdRegistration>> Start(const RegistrationOptions& o);
  // Stops the keepalives; the key stays until its lease expires (use Deregister to remove it).
  ~EtcdRegistration();
  EtcdRegistration(const EtcdRegistration&) = delete;
  EtcdRegistration& operator=(const EtcdRegistration&) = delete;

  // Stops the keepalives, deletes the key and revokes the lease. Idempotent.
  Status Deregister();
  const std::string& key() const { return key_; }
  int64_t lease() const { return lease_.load(); }
  int64_t ttl_s() const { return granted_ttl_.load(); }
  const RegistrationCounters& counters() const { return counters_; }

 private:
  explicit EtcdRegistration(const RegistrationOptions& o);
  Status Register();  // grant + put
  void Run();
  void StopThread();

  const RegistrationOptions opts_;
  const std::string key_;
  EtcdClient client_;
  std::atomic<int64_t> lease_{0};
  std::atomic<int64_t> granted_ttl_{0};
  RegistrationCounters counters_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
  bool deregistered_ = false;
  std::thread thread_;
};

}  // namespace kvt::etcd
