/* kvtier-remote-demo: moves KV blocks between two stores through a kvtierd node, in plain C.
 *
 *   kvtier-remote-demo put HOST:PORT DIR   store a prompt's blocks in the store at DIR, which
 *                                          sends each to its owning node (remote_write)
 *   kvtier-remote-demo get HOST:PORT DIR   in a fresh store at DIR: match the same prompt (found
 *                                          in tier REMOTE), read every block, check every byte
 *
 * KVTIER_AUTH_SECRET in the environment, when set, is the node's shared secret. Exit code 0 only
 * when every check passed. */
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

enum { kBlockTokens = 16, kTokens = 8 * kBlockTokens };

static void fill_block(unsigned char* buf, size_t n, kvt_key key) {
  uint64_t x = key.lo ^ (key.hi * 0x9E3779B97F4A7C15ull);
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    buf[i] = (unsigned char)x;
  }
}

int main(int argc, char** argv) {
  if (argc != 4 || (strcmp(argv[1], "put") != 0 && strcmp(argv[1], "get") != 0)) {
    fprintf(stderr, "usage: kvtier-remote-demo put|get HOST:PORT DIR\n");
    return 2;
  }
  const int put = strcmp(argv[1], "put") == 0;
  kvt_options* o = kvt_options_create();
  CHECK(kvt_options_set(o, "dir", argv[3]));
  CHECK(kvt_options_set(o, "host_bytes", "64MiB"));
  CHECK(kvt_options_set(o, "host_slab_bytes", "4MiB"));
  CHECK(kvt_options_set(o, "remote", argv[2]));
  if (getenv("KVTIER_AUTH_SECRET") != NULL) {
    CHECK(kvt_options_set(o, "auth_secret", getenv("KVTIER_AUTH_SECRET")));
  }
  kvt_store* s = NULL;
  CHECK(kvt_open(o, &s));
  kvt_options_destroy(o);

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

  int32_t tokens[kTokens];
  for (int i = 0; i < kTokens; ++i) tokens[i] = 7000 + i * 3;
  kvt_key keys[kTokens / kBlockTokens];
  kvt_tier_t tiers[kTokens / kBlockTokens];
  size_t n_keys = 0, prefix = 0;
  unsigned char* buf = malloc(block_bytes);
  unsigned char* back = malloc(block_bytes);
  if (put) {
    CHECK(kvt_hash_tokens(s, ns, tokens, kTokens, keys, kTokens / kBlockTokens, &n_keys));
    for (size_t b = 0; b < n_keys; ++b) {
      kvt_key parent = {0, 0};
      if (b > 0) parent = keys[b - 1];
      fill_block(buf, block_bytes, keys[b]);
      CHECK(kvt_put(s, ns, keys[b], parent, tokens + b * kBlockTokens, buf, block_bytes));
    }
    printf("put %zu blocks of %zu bytes; each also sent to its owning node %s\n", n_keys,
           block_bytes, argv[2]);
  } else {
    CHECK(kvt_match_prefix(s, ns, tokens, kTokens, keys, kTokens / kBlockTokens, &n_keys, &prefix,
                           tiers));
    printf("matched a prefix of %zu of %zu blocks; block 0 is in tier %s\n", prefix, n_keys,
           prefix > 0 && tiers[0] == KVT_TIER_REMOTE ? "REMOTE" : "(local or none)");
    if (prefix != n_keys) {
      fprintf(stderr, "expected every block at the node (run `put` first)\n");
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
    printf("fetched %zu blocks from the node, byte-exact\n", prefix);
  }
  free(buf);
  free(back);
  CHECK(kvt_close(s));
  return 0;
}
