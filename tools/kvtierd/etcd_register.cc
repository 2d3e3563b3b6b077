#include "tools/kvtierd/etcd_register.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <memory>

#include <boost/asio/ip/address.hpp>

#include "membership/etcd_codec.h"
#include "tools/kvtierd/server.h"

namespace kvt {

StatusOr<std::string> AdvertisedAddress(const KvtierdEtcdOptions& o, const std::string& listen,
                                        uint16_t bound_port) {
  if (!o.advertise.empty()) return o.advertise;
  std::string host;
  uint16_t port = 0;
  KVT_RETURN_IF_ERROR(SplitHostPort(listen, &host, &port));
  boost::system::error_code ec;
  const auto addr = boost::asio::ip::make_address(host, ec);
  if (!ec && addr.is_unspecified()) {
    return Status::InvalidArgument("listening on " + host +
                                   " names no address clients can dial: give --advertise HOST:PORT");
  }
  const bool v6 = !ec && addr.is_v6();
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(bound_port);
}

Status CertificateIdentity(const std::string& pem_path, std::string* subject, std::string* sha256) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(pem_path.c_str(), "r"), &std::fclose);
  if (!f) return Status::FromErrno(errno, "open TLS certificate " + pem_path);
  std::unique_ptr<X509, void (*)(X509*)> cert(PEM_read_X509(f.get(), nullptr, nullptr, nullptr),
                                              &X509_free);
  if (!cert) return Status::InvalidArgument(pem_path + " holds no PEM certificate");
  char name[512];
  X509_NAME_oneline(X509_get_subject_name(cert.get()), name, sizeof name);
  *subject = name;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert.get(), EVP_sha256(), md, &len) != 1) {
    return Status::Internal("cannot fingerprint " + pem_path);
  }
  sha256->clear();
  for (unsigned i = 0; i < len; ++i) {
    char hex[4];
    std::snprintf(hex, sizeof hex, i + 1 < len ? "%02X:" : "%02X", md[i]);
    *sha256 += hex;
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<etcd::EtcdRegistration>> RegisterWithEtcd(
    const KvtierdEtcdOptions& o, const std::string& listen, uint16_t bound_port,
    const Options& store, const std::string& tls_cert) {
  etcd::RegistrationOptions ro;
  KVT_ASSIGN_OR_RETURN(ro.etcd, etcd::ParseHttpUrl(o.url));
  KVT_ASSIGN_OR_RETURN(ro.prefix, etcd::NormalizePrefix(o.prefix));
  KVT_ASSIGN_OR_RETURN(ro.address, AdvertisedAddress(o, listen, bound_port));
  ro.ttl_s = o.ttl_s;
  etcd::NodeInfo n;
  n.address = ro.address;
  n.host_bytes = store.host_bytes;
  n.nvme_bytes = store.nvme_bytes;
  if (!tls_cert.empty()) KVT_RETURN_IF_ERROR(CertificateIdentity(tls_cert, &n.tls_subject, &n.tls_sha256));
  ro.value = etcd::EncodeNodeInfo(n);
  // The value must read back as a node: check our own output like any other reader would.
  KVT_RETURN_IF_ERROR(etcd::ParseNodeInfo(ro.value).status().WithContext("--advertise"));
  return etcd::EtcdRegistration::Start(ro);
}

}  // namespace kvt
