// Small text helpers for kvtier-sim's tables.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace kvt::sim {

// One number through a printf format ("%.4f").
inline std::string Fmt(const char* fmt, double v) {
  char b[64];
  std::snprintf(b, sizeof b, fmt, v);
  return b;
}

// 1234567 -> "1,234,567".
inline std::string Thousands(uint64_t v) {
  std::string s = std::to_string(v), o;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) o += ',';
    o += s[i];
  }
  return o;
}

// s padded with spaces to width w, on the left when right-aligned.
inline std::string Pad(std::string s, size_t w, bool right = false) {
  if (s.size() >= w) return s;
  return right ? std::string(w - s.size(), ' ') + s : s + std::string(w - s.size(), ' ');
}

}  // namespace kvt::sim
