// CopyWithChecksum64: memcpy and XXH3-64 of the same bytes in one pass. A put copies a block into
// the host tier and checksums it; done one after the other, the checksum reads the whole block
// back from memory (a 256 KiB-4 MiB block no longer sits in L1/L2 once copied), which costs about
// as much again as the copy. Here the block goes in chunks that stay in L1: copy a chunk, hash it
// from the destination while it is hot. The result equals Checksum64(src, len) (XXH3's streaming
// and one-shot forms are the same function).
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvt {

uint64_t CopyWithChecksum64(void* dst, const void* src, size_t len);

}  // namespace kvt
