// Test certificates made at test time with the openssl command line: two CAs ("ca", "otherca")
// and leaf certificates signed by one of them, each naming 127.0.0.1 and localhost. Tests that
// need them skip when the openssl CLI is missing.
#pragma once

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace kvt::testing {

inline bool HaveOpenssl() { return std::system("openssl version > /dev/null 2>&1") == 0; }

struct CertSpec {
  std::string name;     // writes name.pem and name.key
  std::string ca;       // "ca" or "otherca"
  std::string subject;  // openssl -subj form; default "/CN=<name>"
};

// Writes ca.{pem,key}, otherca.{pem,key} and every spec's certificate to dir; false on failure
// (openssl.log in dir says why).
inline bool MakeCerts(const std::string& dir, const std::vector<CertSpec>& specs) {
  std::ofstream(dir + "/san.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes ";
  std::string sh = "cd '" + dir + "' && exec > openssl.log 2>&1 && ";
  for (const char* ca : {"ca", "otherca"}) {
    sh += std::string("openssl req -x509") + ec + "-keyout " + ca + ".key -out " + ca +
          ".pem -days 2 -subj /CN=" + ca + " && ";
  }
  for (const CertSpec& s : specs) {
    const std::string subj = s.subject.empty() ? "/CN=" + s.name : s.subject;
    sh += "openssl req" + ec + "-keyout " + s.name + ".key -out " + s.name + ".csr -subj '" +
          subj + "' && openssl x509 -req -in " + s.name + ".csr -CA " + s.ca + ".pem -CAkey " +
          s.ca + ".key -CAcreateserial -days 2 -extfile san.ext -out " + s.name + ".pem && ";
  }
  sh += "true";
  return std::system(sh.c_str()) == 0;
}

}  // namespace kvt::testing
