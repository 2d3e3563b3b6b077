// Gather and scatter between an engine's paged KV cache and contiguous block payloads.
//
// Gather (save): for each entry i with block_ids[i] >= 0, copies engine block block_ids[i], layers
// in `layers`, into payload slot i (at the layer offsets of the payload layout; other layers of the
// slot are not touched). Scatter (load) is the inverse. An entry with a negative id is skipped and
// its destination is left untouched. Copies are byte-exact (no conversion: the engine's dtype is the
// payload dtype). The payload layout is engine.geo (C_API.md); the engine side may use any strides
// (NHD or HND pages, K and V in separate tensors or interleaved per page).
//
// Thread safety: stateless; concurrent calls on disjoint destinations are safe.
#pragma once

#include <cstdint>

#include "base/status.h"
#include "kernels/kv_layout.h"

namespace kvt {

// CPU reference of gather: engine -> payloads.
//   block_ids: [n] engine block per entry; < 0 skips the entry; must be < engine.num_blocks.
//   dst      : payload slots; dst.slot_bytes >= engine.geo.block_bytes().
// Returns InvalidArgument, before copying anything, for an id >= num_blocks, a layer range outside
// [0, layers), a null pointer, or a slot smaller than a block.
Status GatherBlocksRef(const PagedKvLayout& engine, const int32_t* block_ids, int64_t n,
                       const PayloadSlots& dst, LayerRange layers);

// CPU reference of scatter: payloads -> engine. Same arguments and errors as GatherBlocksRef.
Status ScatterBlocksRef(const PayloadSlots& src, const PagedKvLayout& engine,
                        const int32_t* block_ids, int64_t n, LayerRange layers);

}  // namespace kvt
