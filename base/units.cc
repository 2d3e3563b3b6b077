#include "base/units.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace kvt {
namespace {

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

}  // namespace

StatusOr<uint64_t> ParseUint(std::string_view text) {
  if (text.empty()) return Status::InvalidArgument("empty number");
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return Status::InvalidArgument("'" + std::string(text) + "' is not a non-negative integer");
    }
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) {
      return Status::InvalidArgument("'" + std::string(text) + "' overflows 64 bits");
    }
    v = v * 10 + d;
  }
  return v;
}

StatusOr<uint64_t> ParseBytes(std::string_view text) {
  const std::string shown = "'" + std::string(text) + "'";
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  std::string_view num = text.substr(0, i);
  std::string_view suffix = text.substr(i);
  if (num.empty() || num.front() == '.' || num.back() == '.' ||
      num.find('.') != num.rfind('.')) {
    return Status::InvalidArgument(shown + " is not a size (expected e.g. 4096, 64KiB, 8GiB)");
  }
  struct Unit {
    const char* name;
    double mult;
  };
  static const Unit kUnits[] = {
      {"", 1},  {"b", 1},
      {"k", 1024.0}, {"kib", 1024.0}, {"kb", 1e3},
      {"m", 1048576.0}, {"mib", 1048576.0}, {"mb", 1e6},
      {"g", 1073741824.0}, {"gib", 1073741824.0}, {"gb", 1e9},
      {"t", 1099511627776.0}, {"tib", 1099511627776.0}, {"tb", 1e12},
  };
  double mult = -1;
  for (const Unit& u : kUnits) {
    if (IEquals(suffix, u.name)) {
      mult = u.mult;
      break;
    }
  }
  if (mult < 0) {
    return Status::InvalidArgument(shown + " has an unknown size suffix '" + std::string(suffix) +
                                   "' (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)");
  }
  if (num.find('.') == std::string_view::npos) {
    KVT_ASSIGN_OR_RETURN(uint64_t whole, ParseUint(num));
    uint64_t m = static_cast<uint64_t>(mult);
    if (m != 0 && whole > UINT64_MAX / m) return Status::InvalidArgument(shown + " overflows");
    return whole * m;
  }
  // strtod, not std::stod: an absurd number of digits must be an error status, not an exception.
  const std::string digits(num);
  errno = 0;
  double v = std::strtod(digits.c_str(), nullptr);
  if (errno == ERANGE || !std::isfinite(v)) {
    return Status::InvalidArgument(shown + " is out of range");
  }
  v *= mult;
  if (!std::isfinite(v) || v > 1.8e19) return Status::InvalidArgument(shown + " overflows");
  if (std::floor(v) != v) return Status::InvalidArgument(shown + " is not a whole number of bytes");
  return static_cast<uint64_t>(v);
}

StatusOr<bool> ParseBool(std::string_view text) {
  for (const char* t : {"true", "1", "yes", "on"})
    if (IEquals(text, t)) return true;
  for (const char* f : {"false", "0", "no", "off"})
    if (IEquals(text, f)) return false;
  return Status::InvalidArgument("'" + std::string(text) + "' is not a boolean (true/false)");
}

std::string FormatBytes(uint64_t bytes) {
  static const char* const kNames[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", v, kNames[u]);
  return buf;
}

}  // namespace kvt
