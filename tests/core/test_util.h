// Helpers shared by the core and store tests: deterministic block bytes, and TestDir.
#pragma once

#include "base/byte_pattern.h"
#include "tests/common/test_dir.h"

namespace kvt::testing {

using kvt::PatternBytes;

}  // namespace kvt::testing
