#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <array>
#include <set>
#include <string>
#include <vector>

#include "src/block_key.h"

namespace kvt {
namespace {

// BlockKey(RootKey(BaseDesc()), Tokens(16)) as first computed by this implementation.
constexpr uint64_t kGoldenLo = 0xa71aaf6ad35f320eull;
constexpr uint64_t kGoldenHi = 0x2434ac5ea049faceull;

NamespaceDesc BaseDesc() {
  NamespaceDesc d;
  d.model = "llama-3-8b@rev1";
  d.kv_dtype = "fp16";
  d.layers = 32;
  d.kv_heads = 8;
  d.head_dim = 128;
  d.block_tokens = 16;
  return d;
}

std::vector<int32_t> Tokens(size_t n, int32_t base = 7) {
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = base + static_cast<int32_t>(i * 31);
  return t;
}

TEST(Keys, GeometryAndBlockBytes) {
  auto g = ValidateNamespace(BaseDesc());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(g->BlockBytes(), 32ull * 2 * 16 * 8 * 128 * 2);
  NamespaceDesc mla = BaseDesc();
  mla.flags = 1;
  mla.head_dim = 576;
  auto gm = ValidateNamespace(mla);
  ASSERT_TRUE(gm.ok());
  EXPECT_EQ(gm->BlockBytes(), 32ull * 1 * 16 * 1 * 576 * 2);
}

TEST(Keys, RejectsBadDescriptions) {
  NamespaceDesc d = BaseDesc();
  d.kv_dtype = "fp32";
  EXPECT_EQ(ValidateNamespace(d).status().code(), Code::kInvalidArgument);
  EXPECT_NE(ValidateNamespace(d).status().message().find("fp32"), std::string::npos);
  d = BaseDesc();
  d.model = "";
  EXPECT_FALSE(ValidateNamespace(d).ok());
  d = BaseDesc();
  d.block_tokens = 0;
  EXPECT_NE(ValidateNamespace(d).status().message().find("block_tokens"), std::string::npos);
  d = BaseDesc();
  d.flags = 4;
  EXPECT_FALSE(ValidateNamespace(d).ok());
}

TEST(Keys, FieldsAreUnambiguous) {
  KeyHasher h;
  NamespaceDesc a = BaseDesc(), b = BaseDesc();
  a.model = "a";
  a.tenant_salt = "bc";
  b.model = "ab";
  b.tenant_salt = "c";
  EXPECT_NE(EncodeNamespace(a), EncodeNamespace(b));
  EXPECT_NE(h.NamespaceId(a), h.NamespaceId(b));
  EXPECT_NE(h.RootKey(a), h.RootKey(b));
  // Adapter vs salt with the same text.
  NamespaceDesc c = BaseDesc(), e = BaseDesc();
  c.adapter = "x";
  e.tenant_salt = "x";
  EXPECT_NE(h.RootKey(c), h.RootKey(e));
}

TEST(Keys, EveryNamespaceFieldChangesTheKeys) {
  KeyHasher h;
  const auto toks = Tokens(64);
  std::vector<NamespaceDesc> variants;
  variants.push_back(BaseDesc());
  auto v = BaseDesc(); v.tenant_salt = "tenant-a"; variants.push_back(v);
  v = BaseDesc(); v.tenant_salt = "tenant-b"; variants.push_back(v);
  v = BaseDesc(); v.adapter = "lora-1"; variants.push_back(v);
  v = BaseDesc(); v.adapter = "lora-2"; variants.push_back(v);
  v = BaseDesc(); v.kv_dtype = "bf16"; variants.push_back(v);
  v = BaseDesc(); v.kv_dtype = "fp8_e4m3"; variants.push_back(v);
  v = BaseDesc(); v.layers = 40; variants.push_back(v);
  v = BaseDesc(); v.kv_heads = 4; variants.push_back(v);
  v = BaseDesc(); v.head_dim = 64; variants.push_back(v);
  v = BaseDesc(); v.tp_rank = 1; variants.push_back(v);
  v = BaseDesc(); v.flags = 1; variants.push_back(v);
  v = BaseDesc(); v.model = "llama-3-8b@rev2"; variants.push_back(v);
  std::set<std::pair<uint64_t, uint64_t>> seen;
  std::set<uint64_t> ids;
  for (const auto& d : variants) {
    std::vector<Hash128> keys;
    h.ChainKeys(h.RootKey(d), toks, d.block_tokens, &keys);
    ASSERT_EQ(keys.size(), 4u);
    for (const auto& k : keys) EXPECT_TRUE(seen.insert({k.lo, k.hi}).second);
    EXPECT_TRUE(ids.insert(h.NamespaceId(d)).second);
  }
}

TEST(Keys, ChainedAndPartialBlockHasNoKey) {
  KeyHasher h;
  auto d = BaseDesc();
  auto toks = Tokens(16 * 3 + 5);
  std::vector<Hash128> keys;
  h.ChainKeys(h.RootKey(d), toks, 16, &keys);
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys[0], h.BlockKey(h.RootKey(d), std::span(toks).subspan(0, 16)));
  EXPECT_EQ(keys[1], h.BlockKey(keys[0], std::span(toks).subspan(16, 16)));
  // A key names the whole prefix: same block tokens after a different first block differ.
  auto other = toks;
  other[0] += 1;
  std::vector<Hash128> keys2;
  h.ChainKeys(h.RootKey(d), other, 16, &keys2);
  EXPECT_NE(keys[1], keys2[1]);
  EXPECT_NE(keys[2], keys2[2]);
}

TEST(Keys, KeyedModeDiffersAndIsStable) {
  KeyHasher plain, k1(std::string("secret-1")), k1b(std::string("secret-1")),
      k2(std::string("secret-2"));
  auto d = BaseDesc();
  auto toks = Tokens(16);
  EXPECT_NE(plain.BlockKey(plain.RootKey(d), toks), k1.BlockKey(k1.RootKey(d), toks));
  EXPECT_NE(k1.BlockKey(k1.RootKey(d), toks), k2.BlockKey(k2.RootKey(d), toks));
  EXPECT_EQ(k1.BlockKey(k1.RootKey(d), toks), k1b.BlockKey(k1b.RootKey(d), toks));
}

// Keys are a persistent, cross-process format: pin one vector so that any change to the encoding
// or the hash shows up here. (Values computed by this implementation; XXH3 is specified, so they
// hold on every machine and build.)
TEST(Keys, GoldenValuesAndCrossProcess) {
  KeyHasher h;
  auto d = BaseDesc();
  auto toks = Tokens(16);
  Hash128 k = h.BlockKey(h.RootKey(d), toks);
  const uint64_t id = h.NamespaceId(d);
  // Same computation in a child process (fresh address space: no pointer or seed can leak in).
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    KeyHasher hc;
    Hash128 kc = hc.BlockKey(hc.RootKey(BaseDesc()), Tokens(16));
    uint64_t out[3] = {kc.lo, kc.hi, hc.NamespaceId(BaseDesc())};
    ssize_t w = ::write(fds[1], out, sizeof out);
    ::_exit(w == sizeof out ? 0 : 1);
  }
  uint64_t got[3] = {};
  ASSERT_EQ(::read(fds[0], got, sizeof got), static_cast<ssize_t>(sizeof got));
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(fds[0]);
  ::close(fds[1]);
  EXPECT_EQ(got[0], k.lo);
  EXPECT_EQ(got[1], k.hi);
  EXPECT_EQ(got[2], id);
  EXPECT_EQ(k.lo, kGoldenLo) << std::hex << k.lo;
  EXPECT_EQ(k.hi, kGoldenHi) << std::hex << k.hi;
}

// The documented encoding, built byte by byte: tag | parent lo, hi | token ids, little-endian.
std::string ReferenceInput(char tag, const Hash128* parent, const std::vector<int32_t>& toks) {
  std::string b(1, tag);
  auto put = [&](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  if (parent != nullptr) {
    put(parent->lo, 8);
    put(parent->hi, 8);
  }
  for (int32_t t : toks) put(static_cast<uint32_t>(t), 4);
  return b;
}

// Block inputs are built on the stack up to 256 tokens and in a per-thread buffer beyond; both
// must hash exactly the documented bytes (negative token ids included), keyed or not.
TEST(Keys, BlockKeyAndDigestHashTheDocumentedBytesAtEverySize) {
  const std::string secret = "deployment-secret";
  std::array<uint8_t, kDerivedSecretBytes> derived{};
  DeriveSecret(secret.data(), secret.size(), derived.data());
  for (bool keyed : {false, true}) {
    KeyHasher h(keyed ? secret : std::string());
    auto ref = [&](const std::string& in) {
      return keyed ? Hash128WithSecret(in.data(), in.size(), derived.data(), derived.size())
                   : Hash128Of(in.data(), in.size());
    };
    const Hash128 parent{0x0123456789abcdefull, 0xfedcba9876543210ull};
    for (size_t n : {size_t{0}, size_t{1}, size_t{16}, size_t{255}, size_t{256}, size_t{257},
                     size_t{1000}}) {
      std::vector<int32_t> toks = Tokens(n, -5000);
      if (BlockKeyBits() == 128) {
        EXPECT_EQ(h.BlockKey(parent, toks), ref(ReferenceInput('B', &parent, toks)))
            << n << " tokens, keyed " << keyed;
      }
      EXPECT_EQ(h.TokensDigest(toks), ref(ReferenceInput('T', nullptr, toks)))
          << n << " tokens, keyed " << keyed;
    }
  }
}

}  // namespace
}  // namespace kvt
