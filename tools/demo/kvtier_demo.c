/* kvtier-demo: a short end-to-end run through the C API, in plain C as an engine would call it.
 * Opens a store under ./kvtier-data (or argv[1]), registers a small Llama-like namespace, stores the
 * KV blocks of a few prompts that share a system prompt, matches a new prompt's cached prefix,
 * reads the blocks back and checks every byte, then prints the store's stats.
 * Exit code 0 only when every check passed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvtier/kvtier.h"

#define CHECK(call)                                                                     \
  do {                                                                                  \
    kvt_status_t s_ = (call);                                                           \
    if (s_ != KVT_OK) {                                                                 \
      fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #call,               \
              kvt_status_name(s_), kvt_last_error());                                   \
      exit(1);                                                                          \
    }                                                                                   \
  } while (0)

enum { kBlockTokens = 16, kPrompts = 8, kSystemTokens = 64, kUserTokens = 48 };

/* Deterministic fake KV bytes for a block, derived from its key. */
static void fill_block(unsigned char* buf, size_t n, kvt_key key) {
  uint64_t x = key.lo ^ (key.hi * 0x9E3779B97F4A7C15ull);
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    buf[i] = (unsigned char)x;
  }
}

static size_t make_prompt(int32_t* tokens, int user) {
  size_t n = 0;
  for (int i = 0; i < kSystemTokens; ++i) tokens[n++] = 1000 + i; /* shared system prompt */
  for (int i = 0; i < kUserTokens; ++i) tokens[n++] = 50000 + user * 131 + i;
  return n;
}

int main(int argc, char** argv) {
  const char* dir = argc > 1 ? argv[1] : "./kvtier-data";
  kvt_options* o = kvt_options_create();
  CHECK(kvt_options_set(o, "dir", dir));
  CHECK(kvt_options_set(o, "host_bytes", "64MiB"));
  CHECK(kvt_options_set(o, "host_slab_bytes", "4MiB"));
  CHECK(kvt_options_set(o, "host_policy", "chain_lru"));
  kvt_store* s = NULL;
  CHECK(kvt_open(o, &s));
  kvt_options_destroy(o);
  printf("kvtier %s: store opened at %s\n", kvt_version(), dir);

  kvt_namespace_desc d;
  memset(&d, 0, sizeof d);
  d.model = "demo-llama-tiny@rev1";
  d.kv_dtype = "fp16";
  d.layers = 4;
  d.kv_heads = 2;
  d.head_dim = 64;
  d.block_tokens = kBlockTokens;
  uint64_t ns = 0;
  CHECK(kvt_namespace_open(s, &d, &ns));
  size_t block_bytes = 0;
  CHECK(kvt_block_bytes(s, ns, &block_bytes));
  printf("namespace %016llx: %zu bytes per %d-token block\n", (unsigned long long)ns, block_bytes,
         kBlockTokens);

  unsigned char* buf = malloc(block_bytes);
  unsigned char* back = malloc(block_bytes);
  int32_t tokens[kSystemTokens + kUserTokens];
  kvt_key keys[(kSystemTokens + kUserTokens) / kBlockTokens];
  size_t stored = 0;
  for (int p = 0; p < kPrompts; ++p) {
    size_t n = make_prompt(tokens, p), n_keys = 0;
    CHECK(kvt_hash_tokens(s, ns, tokens, n, keys, sizeof keys / sizeof keys[0], &n_keys));
    for (size_t b = 0; b < n_keys; ++b) {
      kvt_key parent = {0, 0};
      if (b > 0) parent = keys[b - 1];
      fill_block(buf, block_bytes, keys[b]);
      CHECK(kvt_put(s, ns, keys[b], parent, tokens + b * kBlockTokens, buf, block_bytes));
      ++stored;
    }
  }
  printf("stored %zu blocks from %d prompts sharing a %d-token system prompt\n", stored, kPrompts,
         kSystemTokens);

  /* A new prompt: same system prompt, new user text. Its cached prefix is the system prompt. */
  size_t n = make_prompt(tokens, 999), n_keys = 0, prefix = 0;
  kvt_tier_t tiers[sizeof keys / sizeof keys[0]];
  CHECK(kvt_match_prefix(s, ns, tokens, n, keys, sizeof keys / sizeof keys[0], &n_keys, &prefix,
                         tiers));
  printf("new prompt: %zu full blocks, cached prefix %zu blocks (%zu tokens) in tier %d\n", n_keys,
         prefix, prefix * kBlockTokens, prefix > 0 ? (int)tiers[0] : -1);
  if (prefix != kSystemTokens / kBlockTokens) {
    fprintf(stderr, "expected a prefix of %d blocks\n", kSystemTokens / kBlockTokens);
    return 1;
  }
  for (size_t b = 0; b < prefix; ++b) {
    CHECK(kvt_get(s, ns, keys[b], back, block_bytes));
    fill_block(buf, block_bytes, keys[b]);
    if (memcmp(buf, back, block_bytes) != 0) {
      fprintf(stderr, "block %zu read back different bytes\n", b);
      return 1;
    }
  }
  printf("read back %zu blocks byte-exact\n", prefix);

  char* json = NULL;
  CHECK(kvt_stats_json(s, &json));
  printf("stats: %s\n", json);
  kvt_free(json);
  free(buf);
  free(back);
  CHECK(kvt_close(s));
  printf("demo OK\n");
  return 0;
}
