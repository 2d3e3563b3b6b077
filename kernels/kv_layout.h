// Layout structs shared by the CUDA kernels and the CPU references: where each K/V row lives.
//
// BlockLayout   a block payload as the store keeps it (C_API.md): layer-major, for each layer K then
//               V, each [block_tokens][kv_heads][head_dim]; MLA keeps one latent tensor
//               [block_tokens][head_dim] per layer (kv_heads == 1, head_dim = latent width).
// PagedLayer    one layer of a paged KV cache: base pointers plus element strides, so both an
//               engine's cache (vLLM/FlashInfer NHD or HND pages) and the HBM tier's pool of payload
//               slots can be described and read through a block table.
// PagedKvLayout an engine's whole paged cache: per-layer base pointers and one set of strides.
// PayloadSlots  where gathered/scattered payloads live: slot i at base + slots[i] * slot_bytes.
//
// A "row" is head_dim contiguous elements (one token, one head); every layout keeps rows
// contiguous, which is what the kernels vectorize over. Offsets and strides are in ELEMENTS.
// The pointer arrays (k_layers, v_layers, slots) must be readable by whoever runs the operation:
// host memory for the CPU references, device memory for the CUDA launchers.
//
// Thread safety: plain values; the structs do not own the memory they point to.
#pragma once

#include <cstdint>

#include "kernels/dtype.h"
#include "kernels/host_device.h"

namespace kvt {

struct BlockLayout {
  int32_t layers = 0;
  int32_t kv_heads = 0;      // MLA: 1
  int32_t head_dim = 0;      // MLA: the latent width (e.g. 576)
  int32_t block_tokens = 0;  // tokens per block
  DType dtype = DType::kFp16;
  bool mla = false;

  // K and V, or the MLA latent alone.
  KVT_HD int32_t tensors() const { return mla ? 1 : 2; }
  KVT_HD int64_t elem_bytes() const { return DTypeSize(dtype); }
  KVT_HD int64_t row_bytes() const { return static_cast<int64_t>(head_dim) * elem_bytes(); }
  // Elements of one K (or V, or latent) tensor of one layer: [block_tokens][kv_heads][head_dim].
  KVT_HD int64_t tensor_elems() const {
    return static_cast<int64_t>(block_tokens) * kv_heads * head_dim;
  }
  KVT_HD int64_t layer_elems() const { return tensors() * tensor_elems(); }
  KVT_HD int64_t block_elems() const { return layers * layer_elems(); }
  KVT_HD int64_t layer_bytes() const { return layer_elems() * elem_bytes(); }
  // What kvt_block_bytes reports: the payload size of one block.
  KVT_HD int64_t block_bytes() const { return block_elems() * elem_bytes(); }

  // Element offset, inside one payload, of the row (layer, tensor, token, head).
  // tensor: 0 = K (or the MLA latent), 1 = V.
  KVT_HD int64_t offset(int32_t layer, int32_t tensor, int32_t token, int32_t head) const {
    return (static_cast<int64_t>(layer) * tensors() + tensor) * tensor_elems() +
           (static_cast<int64_t>(token) * kv_heads + head) * head_dim;
  }

  // Quantization scales of one block: [layers][tensors][kv_heads] floats ("per block and head";
  // also per layer and per K/V, whose ranges differ a lot).
  KVT_HD int64_t scales_per_block() const {
    return static_cast<int64_t>(layers) * tensors() * kv_heads;
  }
  KVT_HD int64_t scale_index(int32_t layer, int32_t tensor, int32_t head) const {
    return (static_cast<int64_t>(layer) * tensors() + tensor) * kv_heads + head;
  }
};

// One layer of a paged cache. Row (block b, token t, head h) of K starts at element
// k + offset(b, t, h); V uses the same strides from v.
struct PagedLayer {
  void* k = nullptr;  // K (or MLA latent) of block 0
  void* v = nullptr;  // V of block 0; nullptr for MLA
  int64_t block_stride = 0;  // elements between blocks
  int64_t token_stride = 0;  // elements between tokens of one block
  int64_t head_stride = 0;   // elements between heads of one token

  KVT_HD int64_t offset(int64_t block, int32_t token, int32_t head) const {
    return block * block_stride + static_cast<int64_t>(token) * token_stride +
           static_cast<int64_t>(head) * head_stride;
  }
  // True when one block's [block_tokens][kv_heads][head_dim] is one contiguous span (NHD pages),
  // so a whole tensor moves as one memcpy.
  KVT_HD bool block_contiguous(int32_t kv_heads, int32_t head_dim) const {
    return head_stride == head_dim && token_stride == static_cast<int64_t>(kv_heads) * head_dim;
  }
};

// An engine's paged KV cache: geo gives the per-block geometry and dtype (the same as the payloads
// it is gathered into), the strides are shared by every layer and by K and V.
struct PagedKvLayout {
  BlockLayout geo;
  void* const* k_layers = nullptr;  // [geo.layers] base of block 0, K or MLA latent
  void* const* v_layers = nullptr;  // [geo.layers] base of block 0, V; nullptr for MLA
  int64_t num_blocks = 0;           // blocks per layer; valid ids are [0, num_blocks)
  int64_t block_stride = 0;         // elements
  int64_t token_stride = 0;         // elements
  int64_t head_stride = 0;          // elements

  KVT_HD PagedLayer layer(int32_t l) const {
    PagedLayer p;
    p.k = k_layers[l];
    p.v = v_layers != nullptr ? v_layers[l] : nullptr;
    p.block_stride = block_stride;
    p.token_stride = token_stride;
    p.head_stride = head_stride;
    return p;
  }

  // vLLM flash / FlashInfer "NHD" pages: each layer is [num_blocks][block_tokens][kv_heads][head_dim].
  static PagedKvLayout Nhd(const BlockLayout& g, void* const* k, void* const* v, int64_t blocks) {
    PagedKvLayout p;
    p.geo = g;
    p.k_layers = k;
    p.v_layers = v;
    p.num_blocks = blocks;
    p.head_stride = g.head_dim;
    p.token_stride = static_cast<int64_t>(g.kv_heads) * g.head_dim;
    p.block_stride = g.tensor_elems();
    return p;
  }
  // "HND" pages: each layer is [num_blocks][kv_heads][block_tokens][head_dim].
  static PagedKvLayout Hnd(const BlockLayout& g, void* const* k, void* const* v, int64_t blocks) {
    PagedKvLayout p = Nhd(g, k, v, blocks);
    p.token_stride = g.head_dim;
    p.head_stride = static_cast<int64_t>(g.block_tokens) * g.head_dim;
    return p;
  }
};

// Where payloads live for gather (destination) and scatter (source): entry i of a call uses the
// payload at base + slot(i) * slot_bytes. The HBM pool passes its slot ids; a contiguous staging
// buffer passes slots = nullptr.
struct PayloadSlots {
  void* base = nullptr;
  int64_t slot_bytes = 0;           // >= BlockLayout::block_bytes(); a multiple of the element size
  const int32_t* slots = nullptr;   // [n] slot index per entry; nullptr: entry i is slot i

  KVT_HD int64_t slot(int64_t i) const { return slots != nullptr ? slots[i] : i; }
  KVT_HD uint8_t* payload(int64_t i) const {
    return static_cast<uint8_t*>(base) + slot(i) * slot_bytes;
  }
};

// Layers [begin, begin + count): the prefetch pipeline moves one layer at a time.
struct LayerRange {
  int32_t begin = 0;
  int32_t count = 0;
  static LayerRange All(const BlockLayout& g) { return LayerRange{0, g.layers}; }
  static LayerRange One(int32_t layer) { return LayerRange{layer, 1}; }
};

// One layer of a pool of payload slots (the HBM tier) seen as a paged cache, so attention can read
// stored blocks in place: block id = slot index.
// REQUIRES: slot_bytes is a multiple of g.elem_bytes().
KVT_HD PagedLayer PoolLayerView(const BlockLayout& g, void* pool, int64_t slot_bytes, int32_t layer) {
  PagedLayer p;
  uint8_t* base = static_cast<uint8_t*>(pool);
  p.k = base + g.offset(layer, 0, 0, 0) * g.elem_bytes();
  p.v = g.mla ? nullptr : base + g.offset(layer, 1, 0, 0) * g.elem_bytes();
  p.block_stride = slot_bytes / g.elem_bytes();
  p.token_stride = static_cast<int64_t>(g.kv_heads) * g.head_dim;
  p.head_stride = g.head_dim;
  return p;
}

}  // namespace kvt
