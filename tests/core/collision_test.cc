// Built against src/block_key.cc compiled with KVT_TEST_KEY_BITS=6: every block key keeps 6 bits,
// so unrelated prefixes collide on nearly every put. The store must still never serve a block
// other than the one written for the caller's tokens: MatchPrefix verifies each hit's stored parent
// and token digest (a full-strength 128-bit digest, never truncated) and counts a mismatch as a
// collision miss.
//
// Scope: prompts here share whole prefixes (a common system prompt, which legitimately shares
// blocks) or differ in every block after the shared part. Two prompts with identical block-i
// tokens after different earlier blocks are told apart only by the stored parent key, which this
// build truncates to 6 bits too; with real 128-bit keys that check is full strength.
#include <gtest/gtest.h>

#include <map>

#include <nlohmann/json.hpp>

#include "src/store.h"
#include "test_util.h"

namespace kvt {
namespace {

TEST(ForcedCollision, ZeroWrongBlocks) {
  ASSERT_EQ(BlockKeyBits(), 6);
  testing::TestDir dir;
  Options o;
  ASSERT_TRUE(o.Set("dir", dir.path()).ok());
  ASSERT_TRUE(o.Set("host_bytes", "8MiB").ok());
  ASSERT_TRUE(o.Set("host_slab_bytes", "256KiB").ok());
  ASSERT_TRUE(o.Set("host_mlock", "false").ok());
  auto st = Store::Open(o);
  ASSERT_TRUE(st.ok());
  Store& s = **st;
  NamespaceDesc d;
  d.model = "m";
  d.kv_dtype = "int8";
  d.layers = 1;
  d.kv_heads = 1;
  d.head_dim = 64;
  d.block_tokens = 8;
  auto ns = s.OpenNamespace(d);
  ASSERT_TRUE(ns.ok());
  const size_t bytes = (*s.Namespace(*ns))->block_bytes;

  // Content of block i of prompt p; blocks 0-1 are a shared system prompt (same for all p).
  auto tokens_of = [](int p) {
    std::vector<int32_t> t(8 * 6);
    for (size_t i = 0; i < t.size(); ++i) {
      t[i] = i < 16 ? static_cast<int32_t>(i) : 1000 + p * 1000 + static_cast<int32_t>(i);
    }
    return t;
  };
  auto content = [&](int p, size_t block) {
    return testing::PatternBytes(block < 2 ? 1000 + block : p * 100 + block, bytes);
  };
  uint64_t served = 0, wrong = 0;
  for (int round = 0; round < 3; ++round) {
    for (int p = 0; p < 200; ++p) {
      auto toks = tokens_of(p);
      std::vector<Hash128> keys;
      size_t prefix = 0;
      ASSERT_TRUE(s.MatchPrefix(*ns, toks, &keys, &prefix, nullptr).ok());
      for (size_t i = 0; i < prefix; ++i) {
        std::vector<uint8_t> out(bytes);
        if (!s.Get(*ns, keys[i], out.data(), bytes).ok()) break;
        ++served;
        if (out != content(p, i)) ++wrong;
      }
      for (size_t i = prefix; i < keys.size(); ++i) {
        auto data = content(p, i);
        Hash128 parent = i == 0 ? Hash128{} : keys[i - 1];
        Status ps = s.Put(*ns, keys[i], parent, &toks[i * 8], data.data(), bytes);
        ASSERT_TRUE(ps.ok()) << ps.ToString();
      }
    }
  }
  auto j = nlohmann::json::parse(s.StatsJson());
  const uint64_t collisions = j["store"]["collisions"].get<uint64_t>();
  std::printf("forced-collision run: %llu blocks served, %llu wrong, %llu collisions detected\n",
              (unsigned long long)served, (unsigned long long)wrong,
              (unsigned long long)collisions);
  EXPECT_EQ(wrong, 0u);
  EXPECT_GT(served, 0u);       // shared prefixes still hit
  EXPECT_GT(collisions, 100u);  // and collisions really happened
}

}  // namespace
}  // namespace kvt
