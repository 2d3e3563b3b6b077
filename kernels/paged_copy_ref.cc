// CPU reference of gather/scatter: row-by-row memcpy, or one memcpy per tensor when the engine's
// pages are NHD-contiguous. Also what the store runs when there is no GPU.
#include <cstring>
#include <string>

#include "kernels/paged_copy.h"
#include "kernels/validate.h"

namespace kvt {
namespace {

enum class Dir { kToPayload, kToEngine };

// Ids are checked before anything is written, so a rejected call changes nothing.
Status CheckIds(const PagedKvLayout& e, const int32_t* ids, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] >= e.num_blocks) {
      return Status::InvalidArgument("block copy: block_ids[" + std::to_string(i) + "] = " +
                                     std::to_string(ids[i]) + " >= num_blocks " +
                                     std::to_string(e.num_blocks));
    }
  }
  return Status::Ok();
}

void CopyBlock(const PagedKvLayout& e, int64_t id, uint8_t* payload, LayerRange layers, Dir dir) {
  const BlockLayout& g = e.geo;
  const int64_t eb = g.elem_bytes();
  const size_t row = static_cast<size_t>(g.row_bytes());
  for (int32_t l = layers.begin; l < layers.begin + layers.count; ++l) {
    const PagedLayer pl = e.layer(l);
    for (int32_t t = 0; t < g.tensors(); ++t) {
      uint8_t* base = static_cast<uint8_t*>(t == 0 ? pl.k : pl.v);
      uint8_t* pay = payload + g.offset(l, t, 0, 0) * eb;
      if (pl.block_contiguous(g.kv_heads, g.head_dim)) {
        uint8_t* eng = base + pl.offset(id, 0, 0) * eb;
        const size_t bytes = static_cast<size_t>(g.tensor_elems() * eb);
        if (dir == Dir::kToPayload) std::memcpy(pay, eng, bytes);
        else std::memcpy(eng, pay, bytes);
        continue;
      }
      for (int32_t tok = 0; tok < g.block_tokens; ++tok) {
        for (int32_t h = 0; h < g.kv_heads; ++h) {
          uint8_t* eng = base + pl.offset(id, tok, h) * eb;
          uint8_t* p = pay + (static_cast<int64_t>(tok) * g.kv_heads + h) * g.row_bytes();
          if (dir == Dir::kToPayload) std::memcpy(p, eng, row);
          else std::memcpy(eng, p, row);
        }
      }
    }
  }
}

Status Run(const PagedKvLayout& e, const int32_t* ids, int64_t n, const PayloadSlots& slots,
           LayerRange layers, Dir dir) {
  KVT_RETURN_IF_ERROR(ValidateBlockCopy(e, ids, n, slots, layers));
  KVT_RETURN_IF_ERROR(CheckIds(e, ids, n));
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0) continue;  // skip: destination untouched
    CopyBlock(e, ids[i], slots.payload(i), layers, dir);
  }
  return Status::Ok();
}

}  // namespace

Status GatherBlocksRef(const PagedKvLayout& engine, const int32_t* block_ids, int64_t n,
                       const PayloadSlots& dst, LayerRange layers) {
  return Run(engine, block_ids, n, dst, layers, Dir::kToPayload);
}

Status ScatterBlocksRef(const PayloadSlots& src, const PagedKvLayout& engine,
                        const int32_t* block_ids, int64_t n, LayerRange layers) {
  return Run(engine, block_ids, n, src, layers, Dir::kToEngine);
}

}  // namespace kvt
