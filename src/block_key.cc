// Compiled twice: normally, and with KVT_TEST_KEY_BITS=N for the forced-collision test build,
// where block keys keep only N bits so that distinct prefixes collide on purpose.
#include "src/block_key.h"

#include <bit>
#include <cstring>
#include <vector>

namespace kvt {
namespace {

void PutU32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string* s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
// One field: tag byte, 4-byte length, bytes.
void PutField(std::string* s, uint8_t tag, std::string_view bytes) {
  s->push_back(static_cast<char>(tag));
  PutU32(s, static_cast<uint32_t>(bytes.size()));
  s->append(bytes.data(), bytes.size());
}
void PutFieldU32(std::string* s, uint8_t tag, uint32_t v) {
  std::string b;
  PutU32(&b, v);
  PutField(s, tag, b);
}

// The hash input of a block: tag | parent (lo, hi) | token ids, all little-endian. Built with
// memcpy on little-endian hosts (the layout is the same bytes the portable encoding gives), on
// the stack for blocks of up to kStackTokens tokens: match_prefix hashes two of these per block,
// and the byte-by-byte build was a third of its time.
static_assert(std::endian::native == std::endian::little, "block keys serialize little-endian");
constexpr size_t kStackTokens = 256;

class BlockInput {
 public:
  BlockInput(char tag, const Hash128* parent, std::span<const int32_t> tokens) {
    const size_t n = 1 + (parent != nullptr ? 16 : 0) + tokens.size_bytes();
    data_ = n <= sizeof(stack_) ? stack_ : HeapBuffer(n);
    uint8_t* p = data_;
    *p++ = static_cast<uint8_t>(tag);
    if (parent != nullptr) {
      std::memcpy(p, &parent->lo, 8);
      std::memcpy(p + 8, &parent->hi, 8);
      p += 16;
    }
    if (!tokens.empty()) std::memcpy(p, tokens.data(), tokens.size_bytes());
    size_ = n;
  }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  // Longer blocks: a per-thread buffer that only grows (no allocation per key).
  static uint8_t* HeapBuffer(size_t n) {
    thread_local std::vector<uint8_t> buf;
    if (buf.size() < n) buf.resize(n);
    return buf.data();
  }
  alignas(8) uint8_t stack_[1 + 16 + kStackTokens * 4];
  uint8_t* data_;
  size_t size_ = 0;
};

Hash128 Truncate(Hash128 h) {
#ifdef KVT_TEST_KEY_BITS
  static_assert(KVT_TEST_KEY_BITS > 0 && KVT_TEST_KEY_BITS < 64);
  return Hash128{h.lo & ((uint64_t{1} << KVT_TEST_KEY_BITS) - 1), 0};
#else
  return h;
#endif
}

}  // namespace

int BlockKeyBits() {
#ifdef KVT_TEST_KEY_BITS
  return KVT_TEST_KEY_BITS;
#else
  return 128;
#endif
}

StatusOr<DType> ParseKvDType(std::string_view name) {
  DType t;
  if (ParseDType(std::string(name).c_str(), &t) && IsKvDType(t)) return t;
  return Status::InvalidArgument("kv_dtype '" + std::string(name) +
                                 "' is not one of fp16, bf16, fp8_e4m3, int8");
}

StatusOr<Geometry> ValidateNamespace(const NamespaceDesc& d) {
  if (d.model.empty()) return Status::InvalidArgument("namespace: model is empty");
  KVT_ASSIGN_OR_RETURN(DType dt, ParseKvDType(d.kv_dtype));
  if ((d.flags & ~(kNsMla | kNsLossyOk)) != 0) {
    return Status::InvalidArgument("namespace: unknown flags 0x" + std::to_string(d.flags));
  }
  // fp8 on the wire quantizes 16-bit floats; other types have nothing to give.
  if ((d.flags & kNsLossyOk) != 0 && !IsHalfDType(dt)) {
    return Status::InvalidArgument("namespace: flag KVT_NS_LOSSY_OK needs kv_dtype fp16 or bf16, not " +
                                   d.kv_dtype);
  }
  Geometry g;
  g.dtype = dt;
  g.mla = (d.flags & kNsMla) != 0;
  g.lossy_ok = (d.flags & kNsLossyOk) != 0;
  g.layers = d.layers;
  g.kv_heads = g.mla ? 1 : d.kv_heads;
  g.head_dim = d.head_dim;
  g.block_tokens = d.block_tokens;
  if (g.layers == 0) return Status::InvalidArgument("namespace: layers is 0");
  if (g.kv_heads == 0) return Status::InvalidArgument("namespace: kv_heads is 0");
  if (g.head_dim == 0) return Status::InvalidArgument("namespace: head_dim is 0");
  if (g.block_tokens == 0) return Status::InvalidArgument("namespace: block_tokens is 0");
  if (g.BlockBytes() > (uint64_t{1} << 32) - 4096) {
    return Status::InvalidArgument("namespace: a block of " + std::to_string(g.BlockBytes()) +
                                   " bytes exceeds the 4 GiB block limit");
  }
  return g;
}

std::string EncodeNamespace(const NamespaceDesc& d) {
  std::string s = "kvtier-ns-v1";
  PutField(&s, 1, d.model);
  PutField(&s, 2, d.kv_dtype);
  PutField(&s, 3, d.tenant_salt);
  PutField(&s, 4, d.adapter);
  PutFieldU32(&s, 5, d.layers);
  PutFieldU32(&s, 6, (d.flags & 1u) ? 1 : d.kv_heads);
  PutFieldU32(&s, 7, d.head_dim);
  PutFieldU32(&s, 8, d.block_tokens);
  PutFieldU32(&s, 9, d.tp_rank);
  PutFieldU32(&s, 10, d.flags);
  return s;
}

StatusOr<NamespaceDesc> DecodeNamespace(std::string_view enc) {
  constexpr std::string_view kPrefix = "kvtier-ns-v1";
  auto bad = [](const std::string& what) {
    return Status::InvalidArgument("namespace encoding: " + what);
  };
  if (enc.substr(0, kPrefix.size()) != kPrefix) return bad("missing the kvtier-ns-v1 prefix");
  size_t off = kPrefix.size();
  // Fields 1..10 in order: tag, u32 length, bytes.
  auto field = [&](uint8_t tag, std::string_view* out) -> Status {
    if (enc.size() - off < 5 || static_cast<uint8_t>(enc[off]) != tag) {
      return bad("field " + std::to_string(tag) + " missing");
    }
    uint32_t len = 0;
    for (int i = 0; i < 4; ++i) len |= uint32_t{static_cast<uint8_t>(enc[off + 1 + i])} << (8 * i);
    off += 5;
    if (enc.size() - off < len) return bad("field " + std::to_string(tag) + " runs past the end");
    *out = enc.substr(off, len);
    off += len;
    return Status::Ok();
  };
  auto field_u32 = [&](uint8_t tag, uint32_t* out) -> Status {
    std::string_view b;
    KVT_RETURN_IF_ERROR(field(tag, &b));
    if (b.size() != 4) return bad("field " + std::to_string(tag) + " is not 4 bytes");
    *out = 0;
    for (int i = 0; i < 4; ++i) *out |= uint32_t{static_cast<uint8_t>(b[i])} << (8 * i);
    return Status::Ok();
  };
  NamespaceDesc d;
  std::string_view v;
  KVT_RETURN_IF_ERROR(field(1, &v));
  d.model = v;
  KVT_RETURN_IF_ERROR(field(2, &v));
  d.kv_dtype = v;
  KVT_RETURN_IF_ERROR(field(3, &v));
  d.tenant_salt = v;
  KVT_RETURN_IF_ERROR(field(4, &v));
  d.adapter = v;
  KVT_RETURN_IF_ERROR(field_u32(5, &d.layers));
  KVT_RETURN_IF_ERROR(field_u32(6, &d.kv_heads));
  KVT_RETURN_IF_ERROR(field_u32(7, &d.head_dim));
  KVT_RETURN_IF_ERROR(field_u32(8, &d.block_tokens));
  KVT_RETURN_IF_ERROR(field_u32(9, &d.tp_rank));
  KVT_RETURN_IF_ERROR(field_u32(10, &d.flags));
  if (off != enc.size()) return bad("trailing bytes");
  if (EncodeNamespace(d) != enc) return bad("not in canonical form");
  return d;
}

KeyHasher::KeyHasher(const std::string& secret) {
  if (!secret.empty()) {
    keyed_ = true;
    DeriveSecret(secret.data(), secret.size(), secret_.data());
  }
}

Hash128 KeyHasher::Hash(const void* data, size_t len) const {
  return keyed_ ? Hash128WithSecret(data, len, secret_.data(), secret_.size())
                : Hash128Of(data, len);
}

uint64_t KeyHasher::NamespaceId(const NamespaceDesc& d) const {
  std::string enc = "I" + EncodeNamespace(d);
  return Hash(enc.data(), enc.size()).lo;
}

Hash128 KeyHasher::RootKey(const NamespaceDesc& d) const {
  std::string enc = "R" + EncodeNamespace(d);
  return Truncate(Hash(enc.data(), enc.size()));
}

Hash128 KeyHasher::BlockKey(const Hash128& parent, std::span<const int32_t> tokens) const {
  const BlockInput in('B', &parent, tokens);
  return Truncate(Hash(in.data(), in.size()));
}

Hash128 KeyHasher::TokensDigest(std::span<const int32_t> tokens) const {
  const BlockInput in('T', nullptr, tokens);
  return Hash(in.data(), in.size());
}

Hash128 KeyHasher::ExternalKey(const Hash128& root, const void* id, size_t len) const {
  thread_local std::string buf;
  buf.clear();
  buf.push_back('X');
  PutU64(&buf, root.lo);
  PutU64(&buf, root.hi);
  PutU64(&buf, len);
  buf.append(static_cast<const char*>(id), len);
  return Truncate(Hash(buf.data(), buf.size()));
}

void KeyHasher::ChainKeys(const Hash128& root, std::span<const int32_t> tokens,
                          uint32_t block_tokens, std::vector<Hash128>* out) const {
  out->clear();
  const size_t n = block_tokens == 0 ? 0 : tokens.size() / block_tokens;
  out->reserve(n);
  Hash128 parent = root;
  for (size_t i = 0; i < n; ++i) {
    parent = BlockKey(parent, tokens.subspan(i * block_tokens, block_tokens));
    out->push_back(parent);
  }
}

}  // namespace kvt
