/* Opens a store, puts and gets one block through the installed C API; exits 0 on success. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kvtier/kvtier.h>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  kvt_options* o = kvt_options_create();
  kvt_store* s = NULL;
  if (kvt_options_set(o, "dir", argv[1]) != KVT_OK ||
      kvt_options_set(o, "host_bytes", "1MiB") != KVT_OK ||
      kvt_options_set(o, "host_slab_bytes", "256KiB") != KVT_OK ||
      kvt_options_set(o, "host_mlock", "false") != KVT_OK || kvt_open(o, &s) != KVT_OK) {
    fprintf(stderr, "open: %s\n", kvt_last_error());
    return 1;
  }
  kvt_options_destroy(o);
  kvt_namespace_desc d;
  memset(&d, 0, sizeof d);
  d.model = "consumer@1";
  d.kv_dtype = "fp16";
  d.layers = 1;
  d.kv_heads = 1;
  d.head_dim = 64;
  d.block_tokens = 16;
  uint64_t ns = 0;
  size_t bb = 0;
  kvt_key key;
  if (kvt_namespace_open(s, &d, &ns) != KVT_OK || kvt_block_bytes(s, ns, &bb) != KVT_OK ||
      kvt_key_from_bytes(s, ns, "block-0", 7, &key) != KVT_OK) {
    fprintf(stderr, "namespace: %s\n", kvt_last_error());
    return 1;
  }
  char* in = malloc(bb);
  char* out = calloc(bb, 1);
  memset(in, 0x5a, bb);
  kvt_key root = {0, 0};
  int ok = kvt_put(s, ns, key, root, NULL, in, bb) == KVT_OK &&
           kvt_get(s, ns, key, out, bb) == KVT_OK && memcmp(in, out, bb) == 0;
  kvt_close(s);
  free(in);
  free(out);
  printf("kvtier %s: %s\n", kvt_version(), ok ? "put/get ok" : "FAILED");
  return ok ? 0 : 1;
}
