// Micro-benchmarks: block keys and namespace encoding (src/block_key.h).
#include <benchmark/benchmark.h>

#include <vector>

#include "src/block_key.h"

namespace kvt {
namespace {

NamespaceDesc Desc() {
  NamespaceDesc d;
  d.model = "meta-llama/Llama-3.1-70B-Instruct";
  d.kv_dtype = "bf16";
  d.tenant_salt = "tenant-42";
  d.layers = 80;
  d.kv_heads = 8;
  d.head_dim = 128;
  d.block_tokens = 16;
  return d;
}

// One block's key from its parent and block_tokens token ids; arg: tokens per block.
void BM_BlockKey(benchmark::State& state, bool keyed) {
  const KeyHasher h(keyed ? std::string(32, 's') : std::string());
  std::vector<int32_t> tokens(state.range(0));
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(i * 31 + 7);
  Hash128 parent{1, 2};
  for (auto _ : state) {
    parent = h.BlockKey(parent, tokens);
    benchmark::DoNotOptimize(parent);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_BlockKey, unkeyed, false)->Arg(1)->Arg(16)->Arg(256);
BENCHMARK_CAPTURE(BM_BlockKey, keyed, true)->Arg(16)->Arg(256);

// Every key of a prompt; arg: prompt tokens (block_tokens 16). Items: blocks.
void BM_ChainKeys(benchmark::State& state) {
  const KeyHasher h;
  std::vector<int32_t> tokens(state.range(0));
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(i * 31 + 7);
  const Hash128 root = h.RootKey(Desc());
  std::vector<Hash128> keys;
  for (auto _ : state) {
    h.ChainKeys(root, tokens, 16, &keys);
    benchmark::DoNotOptimize(keys.data());
  }
  state.SetItemsProcessed(state.iterations() * (tokens.size() / 16));
}
BENCHMARK(BM_ChainKeys)->Arg(1024)->Arg(32768);

void BM_TokensDigest(benchmark::State& state) {
  const KeyHasher h;
  std::vector<int32_t> tokens(16, 5);
  for (auto _ : state) benchmark::DoNotOptimize(h.TokensDigest(tokens));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TokensDigest);

void BM_EncodeNamespace(benchmark::State& state) {
  const NamespaceDesc d = Desc();
  for (auto _ : state) benchmark::DoNotOptimize(EncodeNamespace(d));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_EncodeNamespace);

// Validation, encoding and both hashes: what opening a namespace costs.
void BM_NamespaceIdAndRoot(benchmark::State& state) {
  const KeyHasher h;
  const NamespaceDesc d = Desc();
  for (auto _ : state) {
    benchmark::DoNotOptimize(ValidateNamespace(d).ok());
    benchmark::DoNotOptimize(h.NamespaceId(d));
    benchmark::DoNotOptimize(h.RootKey(d));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NamespaceIdAndRoot);

}  // namespace
}  // namespace kvt
