#include "base/log.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace kvt {
namespace {

LogLevel ThresholdFromEnv() {
  const char* v = std::getenv("KVT_LOG_LEVEL");
  if (v == nullptr) return LogLevel::kWarn;
  if (std::strcmp(v, "debug") == 0) return LogLevel::kDebug;
  if (std::strcmp(v, "info") == 0) return LogLevel::kInfo;
  if (std::strcmp(v, "error") == 0) return LogLevel::kError;
  if (std::strcmp(v, "off") == 0) return LogLevel::kOff;
  return LogLevel::kWarn;
}

}  // namespace

bool LogEnabled(LogLevel level) {
  static const LogLevel threshold = ThresholdFromEnv();
  return level >= threshold;
}

void LogMessage(LogLevel level, const std::string& msg) {
  static const char* const kNames[] = {"debug", "info", "warn", "error"};
  std::string line = std::string("kvtier ") + kNames[static_cast<int>(level)] + ": " + msg + "\n";
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace kvt
