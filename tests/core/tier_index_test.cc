// TierIndex's open-addressing table against a std::map model: random inserts, finds and erases
// (with backward-shift deletion and growth), equal keys in different namespaces, and keys whose
// hashes share a home slot.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <utility>

#include "tiers/policy/eviction_policy.h"
#include "tiers/policy/tier_index.h"

namespace kvt {
namespace {

BlockMeta Meta(uint64_t ns, Hash128 key) {
  BlockMeta m;
  m.ns = ns;
  m.key = key;
  m.payload_bytes = 1;
  return m;
}

TEST(TierIndex, MatchesModelUnderRandomInsertErase) {
  TierIndex idx(std::move(MakeEvictionPolicy("lru")).value());
  std::map<std::pair<uint64_t, uint64_t>, EntryId> model;  // (ns, key.lo) -> id
  std::mt19937_64 rng(7);
  // Few distinct keys and two namespaces: the same key often sits in both, and erasures land in
  // the middle of probe runs.
  auto key_of = [](uint64_t k) { return Hash128{k * 0x9E3779B97F4A7C15ull, ~k}; };
  for (int step = 0; step < 200000; ++step) {
    const uint64_t ns = 1 + rng() % 2;
    const uint64_t k = rng() % 3000;
    const Hash128 key = key_of(k);
    const EntryId found = idx.Find(ns, key);
    auto it = model.find({ns, k});
    ASSERT_EQ(found != kNoEntry, it != model.end()) << "step " << step;
    if (it != model.end()) {
      ASSERT_EQ(found, it->second);
      if (rng() % 2 == 0) {
        idx.Erase(found, false);
        model.erase(it);
      }
    } else {
      model[{ns, k}] = idx.Insert(Meta(ns, key), 0, 1);
    }
    ASSERT_EQ(idx.size(), model.size());
  }
  for (const auto& [nk, id] : model) {
    EXPECT_EQ(idx.Find(nk.first, key_of(nk.second)), id);
    EXPECT_EQ(idx.Get(id).meta.ns, nk.first);
  }
  EXPECT_EQ(idx.Ids().size(), model.size());
  size_t ns1 = 0;
  for (const auto& [nk, id] : model) ns1 += nk.first == 1;
  EXPECT_EQ(idx.EntriesOf(1).size(), ns1);
}

// Keys that differ only in bits the table's hash folds away would share probe runs; build many
// keys with equal lo and different hi, then erase every other one and find the rest.
TEST(TierIndex, CollidingRunsSurviveDeletion) {
  TierIndex idx(std::move(MakeEvictionPolicy("lru")).value());
  std::vector<EntryId> ids;
  for (uint64_t i = 0; i < 5000; ++i) ids.push_back(idx.Insert(Meta(3, Hash128{42, i}), 0, 1));
  for (uint64_t i = 0; i < 5000; i += 2) idx.Erase(ids[i], true);
  for (uint64_t i = 0; i < 5000; ++i) {
    EXPECT_EQ(idx.Find(3, Hash128{42, i}), i % 2 ? ids[i] : kNoEntry) << i;
  }
  EXPECT_EQ(idx.size(), 2500u);
  EXPECT_EQ(idx.charged(), 2500u);
}

}  // namespace
}  // namespace kvt
