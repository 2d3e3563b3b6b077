// Micro-benchmarks: each eviction policy (made by name, as the tiers make them) and the host
// tier's slab allocator.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "tiers/policy/eviction_policy.h"
#include "tiers/host/host_pool.h"

namespace kvt {
namespace {

const char* const kPolicies[] = {"lru", "s3fifo", "chain_lru"};

// Steady state of a full tier of `n` entries: insert one (a chain link to the previous), touch
// one, evict one. Items: insert + touch + evict cycles.
void BM_PolicyCycle(benchmark::State& state) {
  const std::string name = kPolicies[state.range(0)];
  const EntryId n = static_cast<EntryId>(state.range(1));
  auto p = MakeEvictionPolicy(name);
  if (!p.ok()) {
    state.SkipWithError(p.status().ToString().c_str());
    return;
  }
  EvictionPolicy& pol = **p;
  std::vector<bool> live(2 * n, false);
  for (EntryId i = 0; i < n; ++i) {
    pol.Insert(i, i == 0 ? kNoEntry : i - 1, i * 0x9E3779B97F4A7C15ull);
    live[i] = true;
  }
  uint64_t fp = n;
  EntryId touch = 0;
  for (auto _ : state) {
    EntryId v = pol.PickVictim([](EntryId) { return true; });
    pol.Remove(v, true);
    live[v] = false;
    pol.Insert(v, kNoEntry, ++fp * 0x9E3779B97F4A7C15ull);
    live[v] = true;
    touch = (touch + 7919) % n;
    if (live[touch]) pol.Touch(touch);
  }
  state.SetLabel(name);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PolicyCycle)->ArgsProduct({{0, 1, 2}, {1 << 10, 1 << 18}});

// Touch alone (a hit), the hot path of every lookup.
void BM_PolicyTouch(benchmark::State& state) {
  const std::string name = kPolicies[state.range(0)];
  auto p = MakeEvictionPolicy(name);
  EvictionPolicy& pol = **p;
  const EntryId n = 1 << 16;
  for (EntryId i = 0; i < n; ++i) pol.Insert(i, kNoEntry, i);
  EntryId t = 0;
  for (auto _ : state) {
    t = (t + 7919) % n;
    pol.Touch(t);
  }
  state.SetLabel(name);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PolicyTouch)->DenseRange(0, 2);

// Slab allocation: allocate and release slots of one size in a pool that stays half full.
// Arg: slot bytes.
void BM_HostPoolAllocRelease(benchmark::State& state) {
  // One pool for every run (creating one per run would map 256 MiB each time); each run
  // returns every slot it took.
  static auto pool = HostPool::Create(256ull << 20, 16ull << 20, /*try_lock=*/false);
  if (!pool.ok()) {
    state.SkipWithError(pool.status().ToString().c_str());
    return;
  }
  const uint64_t bytes = state.range(0);
  std::vector<SlotRef> held;
  const size_t half = (128ull << 20) / bytes;
  for (size_t i = 0; i < half; ++i) held.push_back(*(*pool)->Allocate(bytes));
  size_t i = 0;
  for (auto _ : state) {
    (*pool)->Release(held[i]);
    held[i] = *(*pool)->Allocate(bytes);
    i = (i + 1) % held.size();
  }
  for (SlotRef s : held) (*pool)->Release(s);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HostPoolAllocRelease)->Arg(64 << 10)->Arg(1 << 20)->Arg(4 << 20);

}  // namespace
}  // namespace kvt
