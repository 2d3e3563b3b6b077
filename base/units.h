// Parsing of human-written sizes and integers from options, config files and command lines.
// Strict: the whole string must be consumed, so "12XB", "", "-1" and "1.5.2GiB" are errors.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/status.h"

namespace kvt {

// "4096", "64KiB", "8GiB", "1.5GB", "512k": binary suffixes (KiB, MiB, GiB, TiB, and the bare
// K/M/G/T) are powers of 1024; KB/MB/GB/TB are powers of 1000. An optional trailing "B" after the
// bare letter ("8GB") means decimal. Fractions are allowed with a suffix and must yield a whole byte.
StatusOr<uint64_t> ParseBytes(std::string_view text);

// A plain non-negative decimal integer that fits in uint64_t.
StatusOr<uint64_t> ParseUint(std::string_view text);

// "true/false/1/0/yes/no/on/off".
StatusOr<bool> ParseBool(std::string_view text);

// Human-readable size, e.g. "1.50 GiB", for logs and tables.
std::string FormatBytes(uint64_t bytes);

}  // namespace kvt
