#include "tools/kvtierd/credentials.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/wire_format.h"

namespace kvt {

bool Credential::AllowsTenant(std::string_view salt) const {
  for (const std::string& t : tenants) {
    if (t == "*" || t == salt) return true;
  }
  return false;
}

Credential Credential::Everything(std::string secret) {
  Credential c;
  c.secret = std::move(secret);
  c.tenants = {"*"};
  c.read = c.write = c.drop = c.admin = true;
  return c;
}

StatusOr<std::shared_ptr<const CredentialSet>> CredentialSet::Parse(const std::string& json) {
  const nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  auto bad = [](const std::string& what) {
    return Status::InvalidArgument("tenant credentials: " + what);
  };
  if (j.is_discarded()) return bad("not valid JSON");
  if (!j.is_object() || !j.contains("credentials") || !j["credentials"].is_array()) {
    return bad("expected {\"credentials\": [...]}");
  }
  auto set = std::make_shared<CredentialSet>();
  size_t i = 0;
  for (const auto& e : j["credentials"]) {
    const std::string at = "entry " + std::to_string(i++);
    if (!e.is_object()) return bad(at + " is not an object");
    Credential c;
    if (!e.contains("id") || !e["id"].is_string() || e["id"].get<std::string>().empty()) {
      return bad(at + ": \"id\" must be a non-empty string");
    }
    c.id = e["id"].get<std::string>();
    if (c.id.size() > wire::kMaxCredentialId) return bad(at + ": id longer than 128 bytes");
    if (set->Find(c.id) != nullptr) return bad(at + ": duplicate id '" + c.id + "'");
    if (!e.contains("secret") || !e["secret"].is_string() ||
        e["secret"].get<std::string>().empty()) {
      return bad(at + " ('" + c.id + "'): \"secret\" must be a non-empty string");
    }
    c.secret = e["secret"].get<std::string>();
    if (!e.contains("tenants") || !e["tenants"].is_array()) {
      return bad(at + " ('" + c.id + "'): \"tenants\" must be an array of tenant salts");
    }
    for (const auto& t : e["tenants"]) {
      if (!t.is_string()) return bad(at + " ('" + c.id + "'): a tenant is not a string");
      c.tenants.push_back(t.get<std::string>());
    }
    if (!e.contains("rights") || !e["rights"].is_array()) {
      return bad(at + " ('" + c.id + "'): \"rights\" must be an array");
    }
    for (const auto& r : e["rights"]) {
      const std::string v = r.is_string() ? r.get<std::string>() : "";
      if (v == "read") c.read = true;
      else if (v == "write") c.write = true;
      else if (v == "drop") c.drop = true;
      else if (v == "admin") c.admin = c.drop = true;
      else return bad(at + " ('" + c.id + "'): unknown right '" + v + "' (read/write/drop/admin)");
    }
    set->creds_.push_back(std::move(c));
  }
  if (set->creds_.empty()) return bad("no credentials");
  return std::shared_ptr<const CredentialSet>(std::move(set));
}

StatusOr<std::shared_ptr<const CredentialSet>> CredentialSet::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::FromErrno(errno, "open tenant credentials " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto r = Parse(ss.str());
  if (!r.ok()) return r.status().WithContext(path);
  return r;
}

const Credential* CredentialSet::Find(std::string_view id) const {
  for (const Credential& c : creds_) {
    if (c.id == id) return &c;
  }
  return nullptr;
}

}  // namespace kvt
