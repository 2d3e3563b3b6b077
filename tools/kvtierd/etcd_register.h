// kvtierd's registration in etcd (--etcd): builds the node's value (address, capacity, TLS
// identity) and starts the lease-kept entry (membership/etcd_registration.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"
#include "membership/etcd_registration.h"
#include "src/options.h"

namespace kvt {

struct KvtierdEtcdOptions {
  std::string url;                        // http://HOST:PORT; empty: no registration
  std::string prefix = "/kvtier/default";  // the cluster
  std::string advertise;                  // HOST:PORT clients dial; default: the listen address
  int64_t ttl_s = 5;                      // lease TTL: how long a dead node stays listed
};

// The address clients dial: advertise, else the listen host with the bound port. A wildcard
// listen address (0.0.0.0, ::) needs advertise: InvalidArgument says so.
StatusOr<std::string> AdvertisedAddress(const KvtierdEtcdOptions& o, const std::string& listen,
                                        uint16_t bound_port);

// Subject and SHA-256 fingerprint (hex, colon-separated) of a PEM certificate.
Status CertificateIdentity(const std::string& pem_path, std::string* subject, std::string* sha256);

// Registers the node. Unavailable (naming etcd) when etcd cannot be reached.
StatusOr<std::unique_ptr<etcd::EtcdRegistration>> RegisterWithEtcd(
    const KvtierdEtcdOptions& o, const std::string& listen, uint16_t bound_port,
    const Options& store, const std::string& tls_cert);

}  // namespace kvt
