// Per-tenant credentials for kvtierd (--tenants FILE): who may use which tenants' namespaces, and
// how. A client proves it holds a credential's secret in AUTH (io/wire_auth.h); the session is
// then bound to that credential and every request's namespace is checked against it before the
// namespace is even registered.
//
// The file is JSON:
//   {"credentials": [
//     {"id": "team-a", "secret": "...", "tenants": ["tenant-a"], "rights": ["read", "write"]},
//     {"id": "ops", "secret": "...", "tenants": ["*"], "rights": ["read", "write", "drop", "admin"]}
//   ]}
// tenants: the tenant salts (NamespaceDesc::tenant_salt) the credential may name; "*" is any.
// rights: read (LOOKUP, GET), write (PUT), drop (DROP_NAMESPACE of its tenants), admin (STATS, and
// implies drop). Ids and secrets must be non-empty; ids unique and at most 128 bytes.
//
// Thread safety: immutable after Parse; share it freely.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace kvt {

struct Credential {
  std::string id;  // empty: the node's shared secret (--auth-secret-file), every right
  std::string secret;
  std::vector<std::string> tenants;
  bool read = false, write = false, drop = false, admin = false;

  bool AllowsTenant(std::string_view salt) const;
  static Credential Everything(std::string secret);  // the shared-secret credential
};

class CredentialSet {
 public:
  // InvalidArgument naming the entry and field at fault.
  static StatusOr<std::shared_ptr<const CredentialSet>> Parse(const std::string& json);
  static StatusOr<std::shared_ptr<const CredentialSet>> Load(const std::string& path);
  // nullptr when unknown.
  const Credential* Find(std::string_view id) const;
  size_t size() const { return creds_.size(); }

 private:
  std::vector<Credential> creds_;
};

}  // namespace kvt
