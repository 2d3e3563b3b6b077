// Minimal leveled logging to stderr. The engine is a library: it logs only what an operator must
// know (a fallback taken, a file refused), once, never on the data path. KVT_LOG_LEVEL=debug|info|
// warn|error|off in the environment sets the threshold (default: warn).
//
// Thread safety: safe from any thread; each message is written with one write(2).
#pragma once

#include <string>

namespace kvt {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

bool LogEnabled(LogLevel level);
void LogMessage(LogLevel level, const std::string& msg);

}  // namespace kvt

#define KVT_LOG(level, msg)                                                      \
  do {                                                                           \
    if (::kvt::LogEnabled(::kvt::LogLevel::level)) ::kvt::LogMessage(::kvt::LogLevel::level, (msg)); \
  } while (0)
