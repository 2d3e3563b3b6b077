#include "membership/etcd_registration.h"

#include <algorithm>

#include "base/counter.h"
#include "base/log.h"

namespace kvt::etcd {

EtcdRegistration::EtcdRegistration(const RegistrationOptions& o)
    : opts_(o), key_(NodeKey(o.prefix, o.address)), client_(o.etcd, o.timeout) {}

StatusOr<std::unique_ptr<EtcdRegistration>> EtcdRegistration::Start(const RegistrationOptions& o) {
  if (o.ttl_s <= 0) return Status::InvalidArgument("etcd lease TTL must be at least 1 s");
  std::unique_ptr<EtcdRegistration> r(new EtcdRegistration(o));
  KVT_RETURN_IF_ERROR(r->Register().WithContext("etcd registration of " + r->key_));
  r->thread_ = std::thread([p = r.get()] { p->Run(); });
  return r;
}

EtcdRegistration::~EtcdRegistration() { StopThread(); }

Status EtcdRegistration::Register() {
  int64_t ttl = 0;
  KVT_ASSIGN_OR_RETURN(int64_t lease, client_.GrantLease(opts_.ttl_s, &ttl));
  Status s = client_.Put(key_, opts_.value, lease);
  if (!s.ok()) {
    (void)client_.RevokeLease(lease);
    return s;
  }
  granted_ttl_ = ttl;
  lease_ = lease;
  return Status::Ok();
}

void EtcdRegistration::StopThread() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void EtcdRegistration::Run() {
  // A third of the TTL leaves two more tries before etcd gives up on us.
  const auto period = std::chrono::milliseconds(std::max<int64_t>(granted_ttl_.load() * 1000 / 3, 200));
  auto wait = period;
  for (;;) {
    {
      std::unique_lock<std::mutex> l(mu_);
      if (cv_.wait_for(l, wait, [&] { return stopping_; })) return;
    }
    auto ttl = client_.KeepAlive(lease_);
    if (ttl.ok()) {
      Add(counters_.keepalives);
      wait = period;
      continue;
    }
    Add(counters_.keepalive_failures);
    if (ttl.status().code() == Code::kNotFound) {
      // The lease is gone (etcd was away longer than the TTL): register afresh.
      Status s = Register();
      if (s.ok()) {
        Add(counters_.reregistrations);
        KVT_LOG(kWarn, "etcd: lease expired; registered " + key_ + " again");
        wait = period;
        continue;
      }
      KVT_LOG(kWarn, "etcd: registering " + key_ + " again failed: " + s.ToString());
    } else {
      KVT_LOG(kWarn, "etcd: keepalive of " + key_ + " failed: " + ttl.status().ToString());
    }
    wait = std::min(period, std::chrono::milliseconds(500));  // retry soon, the lease is running out
  }
}

Status EtcdRegistration::Deregister() {
  StopThread();
  if (deregistered_) return Status::Ok();
  deregistered_ = true;
  Status s = client_.Delete(key_);
  // Revoking also deletes the key (it is attached to the lease); deleting first makes the
  // common case one round trip for watchers to see.
  Status r = client_.RevokeLease(lease_);
  if (!s.ok()) return s.WithContext("etcd: delete " + key_);
  if (!r.ok() && r.code() != Code::kNotFound) return r.WithContext("etcd: revoke lease");
  return Status::Ok();
}

}  // namespace kvt::etcd
