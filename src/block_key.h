// Namespaces and chained block keys.
//
// A namespace is everything that makes KV bytes incompatible or private (model, dtype, geometry,
// TP rank, adapter, tenant salt). Its fields are encoded tagged and length-prefixed, so no two
// different descriptions share an encoding ("a"+"bc" differs from "ab"+"c"), and hashed into a
// 64-bit namespace id and a 128-bit root key.
//
// key[i] = XXH3-128('B' | key[i-1] | token ids of block i, little-endian), key[-1] = root key.
// With a deployment secret the hash is keyed (XXH3 with a secret derived from it), so outsiders
// cannot craft collisions. Every input is serialized explicitly little-endian: keys are identical
// across processes, runs and machines for the same input.
//
// Thread safety: KeyHasher is immutable after construction and safe to share.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/hash.h"
#include "base/status.h"
#include "kernels/dtype.h"
#include "kernels/kv_layout.h"

namespace kvt {

// A KV element type by the C API's name; InvalidArgument names the bad value.
StatusOr<DType> ParseKvDType(std::string_view name);

struct Geometry {
  uint32_t layers = 0;
  uint32_t kv_heads = 0;  // 1 for MLA
  uint32_t head_dim = 0;
  uint32_t block_tokens = 0;
  DType dtype = DType::kFp16;
  bool mla = false;
  // KVT_NS_LOSSY_OK: the namespace's blocks may travel between nodes quantized to fp8 (and be
  // kept as the receiver decoded them). Part of the namespace, so lossy and exact copies of a
  // prefix never share blocks.
  bool lossy_ok = false;

  // Tensors per layer: K and V, or one latent tensor for MLA.
  uint32_t TensorsPerLayer() const { return mla ? 1 : 2; }
  uint64_t LayerBytes() const {
    return uint64_t{TensorsPerLayer()} * block_tokens * kv_heads * head_dim * static_cast<uint64_t>(DTypeSize(dtype));
  }
  uint64_t BlockBytes() const { return LayerBytes() * layers; }
};

// NamespaceDesc::flags (the C API's KVT_NS_*).
constexpr uint32_t kNsMla = 0x1;
constexpr uint32_t kNsLossyOk = 0x2;

struct NamespaceDesc {
  std::string model;
  std::string kv_dtype;
  std::string tenant_salt;
  std::string adapter;
  uint32_t layers = 0, kv_heads = 0, head_dim = 0, block_tokens = 0;
  uint32_t tp_rank = 0;
  uint32_t flags = 0;  // kNsMla | kNsLossyOk
};

// The payload layout of a namespace's blocks (what the kernels and the quantizing codec read).
inline BlockLayout LayoutOf(const Geometry& g) {
  BlockLayout b;
  b.layers = static_cast<int32_t>(g.layers);
  b.kv_heads = static_cast<int32_t>(g.kv_heads);
  b.head_dim = static_cast<int32_t>(g.head_dim);
  b.block_tokens = static_cast<int32_t>(g.block_tokens);
  b.dtype = g.dtype;
  b.mla = g.mla;
  return b;
}

// Validates the description and derives its geometry; InvalidArgument names the bad field.
StatusOr<Geometry> ValidateNamespace(const NamespaceDesc& d);

// The canonical tagged, length-prefixed encoding of a namespace description.
std::string EncodeNamespace(const NamespaceDesc& d);

// The description back from its canonical encoding (as a remote peer sends it). InvalidArgument
// when the bytes are not exactly an encoding EncodeNamespace produces.
StatusOr<NamespaceDesc> DecodeNamespace(std::string_view encoding);

class KeyHasher {
 public:
  // secret: raw bytes of the deployment secret; empty = unkeyed (the same everywhere).
  explicit KeyHasher(const std::string& secret = "");

  bool keyed() const { return keyed_; }
  uint64_t NamespaceId(const NamespaceDesc& d) const;
  Hash128 RootKey(const NamespaceDesc& d) const;
  // Key of one block given its parent key and its block_tokens token ids.
  Hash128 BlockKey(const Hash128& parent, std::span<const int32_t> tokens) const;
  // Digest of a block's token ids, stored beside the block to verify hits. Never truncated, even
  // in the forced-collision test build.
  Hash128 TokensDigest(std::span<const int32_t> tokens) const;
  // Key for a caller-supplied block id (an engine's own hash chain, any bytes) in the namespace
  // whose root is `root`: XXH3-128('X' | root | length | id bytes). The root separates
  // namespaces; the tag separates these keys from token-chained ones.
  Hash128 ExternalKey(const Hash128& root, const void* id, size_t len) const;
  // Keys of every full block of `tokens`; a trailing partial block gets no key.
  void ChainKeys(const Hash128& root, std::span<const int32_t> tokens, uint32_t block_tokens,
                 std::vector<Hash128>* out) const;

 private:
  Hash128 Hash(const void* data, size_t len) const;
  bool keyed_ = false;
  std::array<uint8_t, kDerivedSecretBytes> secret_{};
};

// Bits kept in block keys: 128 normally; fewer in the forced-collision test build.
int BlockKeyBits();

}  // namespace kvt
