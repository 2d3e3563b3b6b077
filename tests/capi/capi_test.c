/* The C API, from C: every function, its happy path and its bad input. Each rejected call must
 * return KVT_INVALID_ARGUMENT (or KVT_NOT_FOUND where that is the answer) with a message from
 * kvt_last_error, and leave the store's contents and counters unchanged (the stats JSON is compared
 * byte for byte before and after). Prints "N passed, M failed" and exits non-zero on failure. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvtier/kvtier.h"

static int g_pass, g_fail;

#define EXPECT(cond)                                                   \
  do {                                                                 \
    if (cond) {                                                        \
      ++g_pass;                                                        \
    } else {                                                           \
      ++g_fail;                                                        \
      fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                  \
  } while (0)

/* A rejected call: the expected status and a non-empty message. */
#define EXPECT_REJECT(call, status)                                                   \
  do {                                                                                \
    kvt_status_t s_ = (call);                                                         \
    if (s_ == (status) && kvt_last_error()[0] != '\0') {                              \
      ++g_pass;                                                                       \
    } else {                                                                          \
      ++g_fail;                                                                       \
      fprintf(stderr, "%s:%d: FAILED: %s returned %s (%s), expected %s\n", __FILE__,  \
              __LINE__, #call, kvt_status_name(s_), kvt_last_error(), #status);       \
    }                                                                                 \
  } while (0)

#define EXPECT_OK(call) EXPECT_REJECT_OK(call)
#define EXPECT_REJECT_OK(call)                                                            \
  do {                                                                                    \
    kvt_status_t s_ = (call);                                                             \
    if (s_ == KVT_OK) {                                                                   \
      ++g_pass;                                                                           \
    } else {                                                                              \
      ++g_fail;                                                                           \
      fprintf(stderr, "%s:%d: FAILED: %s returned %s: %s\n", __FILE__, __LINE__, #call,    \
              kvt_status_name(s_), kvt_last_error());                                     \
    }                                                                                     \
  } while (0)

static char* stats(kvt_store* s) {
  char* j = NULL;
  if (kvt_stats_json(s, &j) != KVT_OK) return NULL;
  return j;
}

static void fill(unsigned char* b, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; ++i) b[i] = (unsigned char)(seed * 31u + i * 7u);
}

/* A counter from the stats JSON: the number after "\"name\":" (first occurrence), or -1. */
static long long stat_of(kvt_store* s, const char* name) {
  char* j = stats(s);
  if (j == NULL) return -1;
  char pat[128];
  snprintf(pat, sizeof pat, "\"%s\":", name);
  const char* p = strstr(j, pat);
  long long v = p != NULL ? strtoll(p + strlen(pat), NULL, 10) : -1;
  kvt_free(j);
  return v;
}

static int same_key(kvt_key a, kvt_key b) { return a.lo == b.lo && a.hi == b.hi; }

static kvt_store* open_engine_store(const char* dir, const char* event_queue) {
  kvt_options* o = kvt_options_create();
  kvt_options_set(o, "dir", dir);
  kvt_options_set(o, "host_bytes", "1MiB");
  kvt_options_set(o, "host_slab_bytes", "256KiB");
  kvt_options_set(o, "host_mlock", "false");
  kvt_options_set(o, "nvme_bytes", "2MiB");
  kvt_options_set(o, "nvme_segment_bytes", "1MiB");
  kvt_options_set(o, "io_depth", "8");
  kvt_options_set(o, "event_queue", event_queue);
  kvt_store* s = NULL;
  EXPECT_OK(kvt_open(o, &s));
  kvt_options_destroy(o);
  return s;
}

/* Batches, async batches, registered memory, caller keys and events, on a store with a 1 MiB host
 * tier (256 blocks of 4 KiB) over a 2 MiB NVMe tier (about 250 blocks): a few hundred blocks spill
 * to NVMe and then off it. */
static void engine_facing(const char* dir, const kvt_namespace_desc* d) {
  enum { N = 40, BIG = 600 };
  kvt_store* s = open_engine_store(dir, "100000");
  if (s == NULL) return;
  uint64_t ns = 0, ns2 = 0;
  EXPECT_OK(kvt_namespace_open(s, d, &ns));
  kvt_namespace_desc d2 = *d;
  d2.tenant_salt = "other";
  EXPECT_OK(kvt_namespace_open(s, &d2, &ns2));
  size_t bb = 0;
  EXPECT_OK(kvt_block_bytes(s, ns, &bb));
  EXPECT(bb == 4096);

  /* caller keys */
  kvt_key k1, k2, k3, k4;
  EXPECT_REJECT(kvt_key_from_bytes(NULL, ns, "a", 1, &k1), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_key_from_bytes(s, ns, NULL, 1, &k1), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_key_from_bytes(s, ns, "a", 0, &k1), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_key_from_bytes(s, ns, "a", 4097, &k1), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_key_from_bytes(s, ns, "a", 1, NULL), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_key_from_bytes(s, 4242, "a", 1, &k1), KVT_INVALID_ARGUMENT);
  EXPECT_OK(kvt_key_from_bytes(s, ns, "sha256:abc", 10, &k1));
  EXPECT_OK(kvt_key_from_bytes(s, ns, "sha256:abc", 10, &k2));
  EXPECT_OK(kvt_key_from_bytes(s, ns, "sha256:abd", 10, &k3));
  EXPECT_OK(kvt_key_from_bytes(s, ns2, "sha256:abc", 10, &k4));
  EXPECT(same_key(k1, k2) && !same_key(k1, k3) && !same_key(k1, k4));

  /* put_batch / get_batch */
  kvt_key keys[BIG];
  for (int i = 0; i < BIG; ++i) {
    char id[32];
    int len = snprintf(id, sizeof id, "block-%d", i);
    EXPECT_OK(kvt_key_from_bytes(s, ns, id, (size_t)len, &keys[i]));
  }
  unsigned char* src = malloc((size_t)BIG * 4096);
  unsigned char* dst = NULL;
  if (posix_memalign((void**)&dst, 4096, (size_t)BIG * 4096) != 0) dst = NULL;
  EXPECT(dst != NULL);
  if (dst == NULL) return;
  for (int i = 0; i < BIG; ++i) fill(src + (size_t)i * 4096, 4096, 1000u + (unsigned)i);
  kvt_io v[BIG];
  memset(v, 0, sizeof v);
  for (int i = 0; i < BIG; ++i) {
    v[i].key = keys[i];
    v[i].buf = src + (size_t)i * 4096;
    v[i].bytes = 4096;
    v[i].status = (kvt_status_t)77; /* sentinel: a rejected batch touches no entry */
  }
  char* before = stats(s);
  EXPECT_REJECT(kvt_put_batch(NULL, ns, v, N), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_put_batch(s, ns, NULL, N), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_put_batch(s, 4242, v, N), KVT_INVALID_ARGUMENT);
  v[7].bytes = 4095;
  EXPECT_REJECT(kvt_put_batch(s, ns, v, N), KVT_INVALID_ARGUMENT);
  EXPECT(strstr(kvt_last_error(), "entry 7") != NULL);
  EXPECT_REJECT(kvt_get_batch(s, ns, v, N), KVT_INVALID_ARGUMENT);
  v[7].bytes = 4096;
  v[9].buf = NULL;
  EXPECT_REJECT(kvt_get_batch(s, ns, v, N), KVT_INVALID_ARGUMENT);
  EXPECT(strstr(kvt_last_error(), "entry 9") != NULL);
  {
    kvt_ticket* t = NULL;
    EXPECT_REJECT(kvt_get_batch_async(s, ns, v, N, &t), KVT_INVALID_ARGUMENT);
    EXPECT(t == NULL);
    v[9].buf = src + 9 * 4096;
    EXPECT_REJECT(kvt_put_batch_async(s, ns, v, N, NULL), KVT_INVALID_ARGUMENT);
    EXPECT_REJECT(kvt_get_batch_async(NULL, ns, v, N, &t), KVT_INVALID_ARGUMENT);
  }
  {
    int untouched = 1;
    for (int i = 0; i < N; ++i) untouched = untouched && v[i].status == (kvt_status_t)77;
    EXPECT(untouched);
    char* after = stats(s);
    EXPECT(before && after && strcmp(before, after) == 0);
    kvt_free(after);
  }
  kvt_free(before);
  EXPECT_OK(kvt_put_batch(s, ns, v, 0)); /* n == 0: a no-op */
  EXPECT_OK(kvt_put_batch(s, ns, NULL, 0));
  EXPECT_OK(kvt_put_batch(s, ns, v, N));
  {
    int ok = 1;
    for (int i = 0; i < N; ++i) ok = ok && v[i].status == KVT_OK && v[i].tier == KVT_TIER_HOST;
    EXPECT(ok);
  }
  /* events: one STORED per new block, in order; a re-put is no event */
  kvt_event ev[BIG * 2];
  size_t nev = 0;
  uint64_t lost = 99;
  EXPECT_REJECT(kvt_events_poll(NULL, ev, 4, &nev, &lost), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_events_poll(s, NULL, 4, &nev, &lost), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_events_poll(s, ev, 4, NULL, &lost), KVT_INVALID_ARGUMENT);
  EXPECT_OK(kvt_events_poll(s, ev, BIG * 2, &nev, &lost));
  EXPECT(nev == N && lost == 0);
  {
    int ok = nev == N;
    for (size_t i = 0; ok && i < nev; ++i) {
      ok = ev[i].kind == KVT_EVENT_STORED && ev[i].ns == ns && same_key(ev[i].key, keys[i]);
    }
    EXPECT(ok);
  }
  EXPECT_OK(kvt_put_batch(s, ns, v, 3));
  EXPECT_OK(kvt_events_poll(s, ev, BIG * 2, &nev, NULL));
  EXPECT(nev == 0);

  /* get_batch: hits in host, one miss */
  kvt_io g[BIG];
  memset(g, 0, sizeof g);
  for (int i = 0; i < BIG; ++i) {
    g[i].key = keys[i];
    g[i].buf = dst + (size_t)i * 4096;
    g[i].bytes = 4096;
  }
  memset(dst, 0, (size_t)BIG * 4096);
  EXPECT_OK(kvt_get_batch(s, ns, g, N + 1)); /* keys[N] was never stored */
  {
    int ok = 1;
    for (int i = 0; i < N; ++i) ok = ok && g[i].status == KVT_OK && g[i].tier == KVT_TIER_HOST;
    EXPECT(ok);
    EXPECT(memcmp(dst, src, (size_t)N * 4096) == 0);
    EXPECT(g[N].status == KVT_NOT_FOUND && g[N].tier == KVT_TIER_NONE);
  }
  /* namespaces stay apart: the same id bytes in another namespace are another block */
  {
    kvt_io x = g[0];
    x.key = k4;
    EXPECT_OK(kvt_get_batch(s, ns2, &x, 1));
    EXPECT(x.status == KVT_NOT_FOUND);
  }

  /* async put of the rest: write-back pushes the oldest blocks to NVMe, then off it */
  kvt_ticket* t = NULL;
  EXPECT_OK(kvt_put_batch_async(s, ns, v + N, BIG - N, &t));
  EXPECT_OK(kvt_ticket_wait(t, -1));
  EXPECT_OK(kvt_ticket_wait_layer(t, 0, 0));
  kvt_ticket_release(t);
  {
    int ok = 1;
    for (int i = N; i < BIG; ++i) ok = ok && v[i].status == KVT_OK;
    EXPECT(ok);
  }
  EXPECT_OK(kvt_events_poll(s, ev, BIG * 2, &nev, &lost));
  {
    /* STORED for each new block; REMOVED for blocks gone from every tier, each really gone */
    size_t stored = 0, removed = 0;
    int gone_ok = 1;
    for (size_t i = 0; i < nev; ++i) {
      if (ev[i].kind == KVT_EVENT_STORED) ++stored;
      if (ev[i].kind != KVT_EVENT_REMOVED) continue;
      ++removed;
      size_t prefix = 9;
      kvt_tier_t tier = KVT_TIER_HOST;
      kvt_lookup(s, ns, &ev[i].key, 1, &prefix, &tier);
      gone_ok = gone_ok && tier == KVT_TIER_NONE;
    }
    EXPECT(stored == BIG - N && lost == 0);
    EXPECT(removed > 0); /* 600 blocks do not fit in 256 host + ~250 NVMe slots */
    EXPECT(gone_ok);
  }

  /* registered memory: reads from NVMe land in place */
  EXPECT_REJECT(kvt_register_memory(NULL, dst, 4096), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_register_memory(s, NULL, 4096), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_register_memory(s, dst, 0), KVT_INVALID_ARGUMENT);
  EXPECT_OK(kvt_register_memory(s, dst, (size_t)BIG * 4096));
  EXPECT_REJECT(kvt_register_memory(s, dst + 4096, 4096), KVT_INVALID_ARGUMENT); /* overlaps */
  EXPECT_REJECT(kvt_unregister_memory(s, dst + 4096), KVT_INVALID_ARGUMENT);     /* not a start */
  EXPECT_REJECT(kvt_unregister_memory(NULL, dst), KVT_INVALID_ARGUMENT);
  long long direct_before = stat_of(s, "direct_reads");
  memset(dst, 0, (size_t)BIG * 4096);
  EXPECT_OK(kvt_get_batch(s, ns, g, BIG));
  {
    int hits_ok = 1, nvme = 0, host = 0, miss = 0;
    for (int i = 0; i < BIG; ++i) {
      if (g[i].status == KVT_OK) {
        hits_ok = hits_ok && memcmp(dst + (size_t)i * 4096, src + (size_t)i * 4096, 4096) == 0;
        nvme += g[i].tier == KVT_TIER_NVME;
        host += g[i].tier == KVT_TIER_HOST;
      } else {
        miss += g[i].status == KVT_NOT_FOUND && g[i].tier == KVT_TIER_NONE;
      }
    }
    EXPECT(hits_ok);
    EXPECT(nvme > 0 && host > 0);
    EXPECT(nvme + host + miss == BIG);
    EXPECT(stat_of(s, "direct_reads") - direct_before == nvme);
  }
  EXPECT_OK(kvt_unregister_memory(s, dst));
  EXPECT_REJECT(kvt_unregister_memory(s, dst), KVT_INVALID_ARGUMENT);

  /* async get released at once: every entry either done or cancelled (KVT_UNAVAILABLE) */
  {
    for (int i = 0; i < BIG; ++i) g[i].status = (kvt_status_t)77;
    long long cancelled_before = stat_of(s, "async_cancelled_entries");
    EXPECT_OK(kvt_get_batch_async(s, ns, g, BIG, &t));
    kvt_ticket_release(t);
    int valid = 1;
    long long cancelled = 0;
    for (int i = 0; i < BIG; ++i) {
      valid = valid && (g[i].status == KVT_OK || g[i].status == KVT_NOT_FOUND ||
                        g[i].status == KVT_UNAVAILABLE);
      if (g[i].status == KVT_UNAVAILABLE) {
        ++cancelled;
        valid = valid && g[i].tier == KVT_TIER_NONE;
      }
    }
    EXPECT(valid);
    EXPECT(stat_of(s, "async_cancelled_entries") - cancelled_before == cancelled);
    printf("early release cancelled %lld of %d entries\n", cancelled, BIG);
    /* and one waited for: no entry cancelled */
    EXPECT_OK(kvt_get_batch_async(s, ns, g, N, &t));
    EXPECT_OK(kvt_ticket_wait(t, -1));
    kvt_ticket_release(t);
    int none_cancelled = 1;
    for (int i = 0; i < N; ++i) none_cancelled = none_cancelled && g[i].status != KVT_UNAVAILABLE;
    EXPECT(none_cancelled);
  }

  /* remove and drop: REMOVED events. The gets above promoted NVMe blocks, and their host victims
   * may still be on their way down (a write to NVMe can evict an NVMe block: a REMOVED event).
   * Settle that first, so the events after the remove and the drop are theirs alone. */
  EXPECT_OK(kvt_flush(s));
  EXPECT_OK(kvt_events_poll(s, ev, BIG * 2, &nev, NULL));
  size_t prefix = 0;
  kvt_tier_t tier = KVT_TIER_NONE;
  EXPECT_OK(kvt_lookup(s, ns, &keys[BIG - 1], 1, &prefix, &tier));
  EXPECT(tier != KVT_TIER_NONE); /* the newest block is held */
  EXPECT_OK(kvt_remove(s, ns, keys[BIG - 1]));
  EXPECT_OK(kvt_events_poll(s, ev, BIG * 2, &nev, NULL));
  EXPECT(nev == 1 && ev[0].kind == KVT_EVENT_REMOVED && same_key(ev[0].key, keys[BIG - 1]));
  {
    int held = 0;
    for (int i = 0; i < BIG - 1; ++i) {
      kvt_lookup(s, ns, &keys[i], 1, &prefix, &tier);
      held += tier != KVT_TIER_NONE;
    }
    EXPECT_OK(kvt_drop_namespace(s, ns));
    EXPECT_OK(kvt_events_poll(s, ev, BIG * 2, &nev, NULL));
    int all_removed = 1;
    for (size_t i = 0; i < nev; ++i) all_removed = all_removed && ev[i].kind == KVT_EVENT_REMOVED;
    EXPECT(all_removed && (int)nev == held);
  }
  EXPECT(stat_of(s, "lost") == 0);
  EXPECT_OK(kvt_close(s));

  /* a small queue: the oldest events are dropped and counted */
  s = open_engine_store(dir, "8");
  if (s != NULL) {
    EXPECT_OK(kvt_namespace_open(s, d, &ns));
    for (int i = 0; i < 20; ++i) v[i].status = (kvt_status_t)77;
    EXPECT_OK(kvt_put_batch(s, ns, v, 20));
    EXPECT_OK(kvt_events_poll(s, ev, 5, &nev, &lost));
    EXPECT(nev == 5 && lost == 12 && same_key(ev[0].key, keys[12]));
    EXPECT_OK(kvt_events_poll(s, ev, 10, &nev, &lost));
    EXPECT(nev == 3 && lost == 0 && same_key(ev[2].key, keys[19]));
    EXPECT(stat_of(s, "lost") == 12);
    EXPECT_OK(kvt_close(s));
  }
  /* events off: KVT_UNAVAILABLE */
  s = open_engine_store(dir, "0");
  if (s != NULL) {
    EXPECT_REJECT(kvt_events_poll(s, ev, 4, &nev, &lost), KVT_UNAVAILABLE);
    EXPECT_OK(kvt_close(s));
  }
  free(src);
  free(dst);
}

int main(void) {
  char dir[] = "/tmp/kvtier-capi-XXXXXX";
  if (mkdtemp(dir) == NULL) return 2;

  /* library */
  EXPECT(kvt_version() != NULL && strlen(kvt_version()) > 0);
  EXPECT(kvt_last_error() != NULL && kvt_last_error()[0] == '\0');
  EXPECT(strcmp(kvt_status_name(KVT_BUSY), "KVT_BUSY") == 0);
  EXPECT(strcmp(kvt_status_name((kvt_status_t)99), "KVT_UNKNOWN") == 0);
  kvt_free(NULL);

  /* options */
  kvt_options* o = kvt_options_create();
  EXPECT(o != NULL);
  EXPECT_REJECT(kvt_options_set(NULL, "dir", dir), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_options_set(o, NULL, "x"), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_options_set(o, "dir", NULL), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_options_set(o, "no_such_option", "1"), KVT_INVALID_ARGUMENT);
  EXPECT(strstr(kvt_last_error(), "no_such_option") != NULL);
  EXPECT_REJECT(kvt_options_set(o, "remote_compression", "lz4"), KVT_INVALID_ARGUMENT);
  EXPECT(strstr(kvt_last_error(), "remote_compression") != NULL);
  EXPECT_OK(kvt_options_set(o, "remote_compression", "zstd"));
  EXPECT_OK(kvt_options_set(o, "remote_compression", "none"));
  EXPECT_REJECT(kvt_options_set(o, "host_bytes", "12XB"), KVT_INVALID_ARGUMENT);
  EXPECT(strstr(kvt_last_error(), "12XB") != NULL);
  EXPECT_REJECT(kvt_options_set(o, "host_bytes", ""), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_options_set(o, "host_policy", "random"), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_options_set(o, "io_depth", "-3"), KVT_INVALID_ARGUMENT);
  EXPECT_OK(kvt_options_set(o, "dir", dir));
  EXPECT_OK(kvt_options_set(o, "host_bytes", "4MiB"));
  EXPECT_OK(kvt_options_set(o, "host_slab_bytes", "256KiB"));
  EXPECT_OK(kvt_options_set(o, "host_mlock", "false"));
  EXPECT_REJECT(kvt_options_load_file(o, NULL), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_options_load_file(NULL, "/x"), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_options_load_file(o, "/nonexistent/kvtier.conf"), KVT_INVALID_ARGUMENT);
  /* Issue 14: /dev/zero was read until memory ran out; an absurd size threw (KVT_INTERNAL). */
  EXPECT_REJECT(kvt_options_load_file(o, "/dev/zero"), KVT_INVALID_ARGUMENT);
  EXPECT(strstr(kvt_last_error(), "limit") != NULL);
  {
    char absurd[420];
    memset(absurd, '0', sizeof absurd);
    absurd[0] = '1';
    memcpy(absurd + 401, ".0GiB", 6);
    EXPECT_REJECT(kvt_options_set(o, "host_bytes", absurd), KVT_INVALID_ARGUMENT);
  }
  {
    char path[256];
    snprintf(path, sizeof path, "%s/bad.conf", dir);
    FILE* f = fopen(path, "w");
    fputs("host_policy = s3fifo\nhost_bytes = lots\n", f);
    fclose(f);
    EXPECT_REJECT(kvt_options_load_file(o, path), KVT_INVALID_ARGUMENT);
    EXPECT(strstr(kvt_last_error(), ":2:") != NULL);
    snprintf(path, sizeof path, "%s/good.conf", dir);
    f = fopen(path, "w");
    fputs("# policy\nhost_policy = s3fifo\n", f);
    fclose(f);
    EXPECT_OK(kvt_options_load_file(o, path));
  }
  EXPECT_REJECT(kvt_open(NULL, NULL), KVT_INVALID_ARGUMENT);
  kvt_store* s = NULL;
  EXPECT_REJECT(kvt_open(o, NULL), KVT_INVALID_ARGUMENT);
  EXPECT_OK(kvt_open(o, &s));
  if (s == NULL) return 1;
  {
    kvt_store* s2 = NULL;
    EXPECT_REJECT(kvt_open(o, &s2), KVT_BUSY); /* directory locked by s */
    EXPECT(s2 == NULL);
  }
  kvt_options_destroy(o);
  kvt_options_destroy(NULL);

  /* namespaces */
  kvt_namespace_desc d;
  memset(&d, 0, sizeof d);
  d.model = "tiny@1";
  d.kv_dtype = "fp16";
  d.layers = 2;
  d.kv_heads = 2;
  d.head_dim = 64;
  d.block_tokens = 4;
  uint64_t ns = 0, ns_b = 0;
  EXPECT_REJECT(kvt_namespace_open(NULL, &d, &ns), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_namespace_open(s, NULL, &ns), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_namespace_open(s, &d, NULL), KVT_INVALID_ARGUMENT);
  d.kv_dtype = "fp64";
  EXPECT_REJECT(kvt_namespace_open(s, &d, &ns), KVT_INVALID_ARGUMENT);
  d.kv_dtype = "fp16";
  d.layers = 0;
  EXPECT_REJECT(kvt_namespace_open(s, &d, &ns), KVT_INVALID_ARGUMENT);
  d.layers = 2;
  d.model = NULL;
  EXPECT_REJECT(kvt_namespace_open(s, &d, &ns), KVT_INVALID_ARGUMENT);
  d.model = "tiny@1";
  d.layers = 100000; /* 100000 layers x 2 x 4 x 2 x 64 x 2 B = 200 MB: larger than the host tier */
  EXPECT_REJECT(kvt_namespace_open(s, &d, &ns), KVT_INVALID_ARGUMENT);
  d.layers = 2;
  EXPECT(ns == 0);
  EXPECT_OK(kvt_namespace_open(s, &d, &ns));
  d.tenant_salt = "tenant-b";
  EXPECT_OK(kvt_namespace_open(s, &d, &ns_b));
  d.tenant_salt = NULL;
  EXPECT(ns != ns_b);
  {
    uint64_t again = 0;
    EXPECT_OK(kvt_namespace_open(s, &d, &again));
    EXPECT(again == ns);
  }
  {
    /* KVT_NS_LOSSY_OK: another namespace (lossy copies never meet exact ones); fp16/bf16 only */
    uint64_t lossy = 0;
    d.flags = KVT_NS_LOSSY_OK;
    EXPECT_OK(kvt_namespace_open(s, &d, &lossy));
    EXPECT(lossy != 0 && lossy != ns);
    d.kv_dtype = "int8";
    EXPECT_REJECT(kvt_namespace_open(s, &d, &lossy), KVT_INVALID_ARGUMENT);
    d.kv_dtype = "fp16";
    d.flags = 0;
  }
  size_t bb = 0;
  EXPECT_REJECT(kvt_block_bytes(NULL, ns, &bb), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_block_bytes(s, ns, NULL), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_block_bytes(s, 0xdeadbeefull, &bb), KVT_INVALID_ARGUMENT);
  EXPECT_OK(kvt_block_bytes(s, ns, &bb));
  EXPECT(bb == 2u * 2 * 4 * 2 * 64 * 2);
  kvt_key root;
  EXPECT_REJECT(kvt_namespace_root(s, ns, NULL), KVT_INVALID_ARGUMENT);
  EXPECT_OK(kvt_namespace_root(s, ns, &root));

  /* hashing */
  int32_t toks[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  kvt_key keys[4];
  size_t n_keys = 0;
  EXPECT_REJECT(kvt_hash_tokens(NULL, ns, toks, 10, keys, 4, &n_keys), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_hash_tokens(s, ns, NULL, 10, keys, 4, &n_keys), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_hash_tokens(s, ns, toks, 10, NULL, 4, &n_keys), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_hash_tokens(s, ns, toks, 10, keys, 4, NULL), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_hash_tokens(s, 12345, toks, 10, keys, 4, &n_keys), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_hash_tokens(s, ns, toks, 10, keys, 1, &n_keys), KVT_INVALID_ARGUMENT);
  EXPECT(n_keys == 2); /* the number needed */
  n_keys = 99;
  EXPECT_OK(kvt_hash_tokens(s, ns, toks, 0, NULL, 0, &n_keys));
  EXPECT(n_keys == 0);
  EXPECT_OK(kvt_hash_tokens(s, ns, toks, 10, keys, 4, &n_keys));
  EXPECT(n_keys == 2); /* 10 tokens: 2 full blocks of 4, the partial block has no key */
  {
    kvt_key keys_b[4];
    size_t nb = 0;
    EXPECT_OK(kvt_hash_tokens(s, ns_b, toks, 10, keys_b, 4, &nb));
    EXPECT(keys_b[0].lo != keys[0].lo || keys_b[0].hi != keys[0].hi);
  }

  /* put / get */
  unsigned char* buf = malloc(bb + 16);
  unsigned char* out = malloc(bb + 16);
  kvt_key zero = {0, 0};
  fill(buf, bb, 1);
  char* before = stats(s);
  EXPECT_REJECT(kvt_put(NULL, ns, keys[0], zero, toks, buf, bb), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_put(s, ns, keys[0], zero, toks, NULL, bb), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_put(s, ns, keys[0], zero, toks, buf, 0), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_put(s, ns, keys[0], zero, toks, buf, bb + 1), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_put(s, 777, keys[0], zero, toks, buf, bb), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_get(s, ns, keys[0], NULL, bb), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_get(s, ns, keys[0], out, 0), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_get(s, 777, keys[0], out, bb), KVT_INVALID_ARGUMENT);
  {
    char* after = stats(s);
    EXPECT(before && after && strcmp(before, after) == 0); /* nothing changed */
    kvt_free(after);
  }
  kvt_free(before);
  EXPECT_REJECT(kvt_get(s, ns, keys[0], out, bb), KVT_NOT_FOUND);
  EXPECT_OK(kvt_put(s, ns, keys[0], zero, toks, buf, bb));
  fill(buf + 0, bb, 2);
  EXPECT_OK(kvt_put(s, ns, keys[1], keys[0], toks + 4, buf, bb));
  EXPECT_REJECT(kvt_get(s, ns, keys[0], out, bb + 1), KVT_INVALID_ARGUMENT);
  EXPECT_OK(kvt_get(s, ns, keys[1], out, bb));
  EXPECT(memcmp(out, buf, bb) == 0);
  fill(buf, bb, 1);
  EXPECT_OK(kvt_get(s, ns, keys[0], out, bb));
  EXPECT(memcmp(out, buf, bb) == 0);
  EXPECT_REJECT(kvt_get(s, ns_b, keys[0], out, bb), KVT_NOT_FOUND); /* other tenant */

  /* lookup / match */
  size_t prefix = 99;
  kvt_tier_t tiers[4];
  EXPECT_REJECT(kvt_lookup(NULL, ns, keys, 2, &prefix, tiers), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_lookup(s, ns, NULL, 2, &prefix, tiers), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_lookup(s, ns, keys, 2, NULL, tiers), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_lookup(s, 5, keys, 2, &prefix, tiers), KVT_INVALID_ARGUMENT);
  EXPECT(prefix == 99);
  EXPECT_OK(kvt_lookup(s, ns, keys, 2, &prefix, tiers));
  EXPECT(prefix == 2 && tiers[0] == KVT_TIER_HOST && tiers[1] == KVT_TIER_HOST);
  EXPECT_OK(kvt_lookup(s, ns, keys + 1, 1, &prefix, NULL)); /* chain broken: parent != root */
  EXPECT(prefix == 0);
  EXPECT_OK(kvt_lookup(s, ns, keys, 0, &prefix, NULL));
  EXPECT(prefix == 0);
  {
    kvt_key mk[4];
    size_t mn = 0, mp = 0;
    EXPECT_REJECT(kvt_match_prefix(s, ns, toks, 10, mk, 4, &mn, NULL, tiers), KVT_INVALID_ARGUMENT);
    EXPECT_REJECT(kvt_match_prefix(s, ns, NULL, 10, mk, 4, &mn, &mp, tiers), KVT_INVALID_ARGUMENT);
    EXPECT_REJECT(kvt_match_prefix(s, ns, toks, 10, mk, 1, &mn, &mp, tiers), KVT_INVALID_ARGUMENT);
    EXPECT(mn == 2);
    EXPECT_REJECT(kvt_match_prefix(s, 3, toks, 10, mk, 4, &mn, &mp, tiers), KVT_INVALID_ARGUMENT);
    EXPECT_OK(kvt_match_prefix(s, ns, toks, 10, mk, 4, &mn, &mp, tiers));
    EXPECT(mn == 2 && mp == 2 && mk[1].lo == keys[1].lo && mk[1].hi == keys[1].hi);
    int32_t other[8] = {1, 2, 3, 4, 50, 60, 70, 80};
    EXPECT_OK(kvt_match_prefix(s, ns, other, 8, mk, 4, &mn, &mp, tiers));
    EXPECT(mn == 2 && mp == 1 && tiers[1] == KVT_TIER_NONE);
  }

  /* prefetch and tickets */
  kvt_ticket* t = NULL;
  EXPECT_REJECT(kvt_prefetch(NULL, ns, keys, 2, KVT_TIER_HOST, &t), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_prefetch(s, ns, NULL, 2, KVT_TIER_HOST, &t), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_prefetch(s, ns, keys, 0, KVT_TIER_HOST, &t), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_prefetch(s, ns, keys, 2, (kvt_tier_t)9, &t), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_prefetch(s, ns, keys, 2, KVT_TIER_HOST, NULL), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_prefetch(s, 1, keys, 2, KVT_TIER_HOST, &t), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_prefetch(s, ns, keys, 2, KVT_TIER_HBM, &t), KVT_UNAVAILABLE);
  EXPECT(t == NULL);
  EXPECT_OK(kvt_prefetch(s, ns, keys, 2, KVT_TIER_HOST, &t));
  EXPECT_REJECT(kvt_ticket_wait(NULL, 0), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_ticket_wait_layer(NULL, 0, 0), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_ticket_wait_layer(t, 2, 0), KVT_INVALID_ARGUMENT);
  EXPECT_OK(kvt_ticket_wait_layer(t, 0, -1));
  EXPECT_OK(kvt_ticket_wait_layer(t, 1, -1));
  EXPECT_OK(kvt_ticket_wait(t, 1000));
  kvt_ticket_release(t);
  kvt_ticket_release(NULL);
  {
    kvt_key missing = {123, 456};
    EXPECT_OK(kvt_prefetch(s, ns, &missing, 1, KVT_TIER_HOST, &t));
    EXPECT_REJECT(kvt_ticket_wait(t, -1), KVT_NOT_FOUND);
    kvt_ticket_release(t);
  }

  /* remove / drop */
  EXPECT_REJECT(kvt_remove(NULL, ns, keys[1]), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_remove(s, 9, keys[1]), KVT_INVALID_ARGUMENT);
  EXPECT_OK(kvt_remove(s, ns, keys[1]));
  EXPECT_REJECT(kvt_remove(s, ns, keys[1]), KVT_NOT_FOUND);
  EXPECT_REJECT(kvt_get(s, ns, keys[1], out, bb), KVT_NOT_FOUND);
  EXPECT_REJECT(kvt_drop_namespace(NULL, ns), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_drop_namespace(s, 9), KVT_INVALID_ARGUMENT);
  EXPECT_OK(kvt_drop_namespace(s, ns));
  EXPECT_REJECT(kvt_get(s, ns, keys[0], out, bb), KVT_NOT_FOUND);
  EXPECT_OK(kvt_block_bytes(s, ns, &bb)); /* the id stays valid */

  /* stats, flush, close */
  char* json = NULL;
  EXPECT_REJECT(kvt_stats_json(NULL, &json), KVT_INVALID_ARGUMENT);
  EXPECT_REJECT(kvt_stats_json(s, NULL), KVT_INVALID_ARGUMENT);
  EXPECT_OK(kvt_stats_json(s, &json));
  EXPECT(json != NULL && strstr(json, "\"host\"") != NULL && strstr(json, "\"evictions\"") != NULL);
  kvt_free(json);
  EXPECT_REJECT(kvt_flush(NULL), KVT_INVALID_ARGUMENT);
  EXPECT_OK(kvt_flush(s));
  EXPECT_OK(kvt_close(s));
  EXPECT_OK(kvt_close(NULL));

  /* the HBM tier (emulated in host memory without a GPU) and the kvt_gpu_* paths */
  o = kvt_options_create();
  kvt_options_set(o, "dir", dir);
  kvt_options_set(o, "host_bytes", "1MiB");
  kvt_options_set(o, "host_slab_bytes", "256KiB");
  kvt_options_set(o, "host_mlock", "false");
  kvt_options_set(o, "hbm_bytes", "1MiB");
  s = NULL;
  EXPECT_OK(kvt_open(o, &s));
  kvt_options_destroy(o);
  if (s != NULL) {
    EXPECT_OK(kvt_namespace_open(s, &d, &ns)); /* 2 layers x {K,V} x 4 tokens x 2 heads x 64: 4 KiB */
    int32_t toks[8] = {11, 12, 13, 14, 15, 16, 17, 18};
    kvt_key hk[2];
    size_t nk = 0;
    EXPECT_OK(kvt_hash_tokens(s, ns, toks, 8, hk, 2, &nk));
    /* An engine cache of 4 NHD blocks per layer and tensor, 1 KiB each. */
    unsigned char* eng = calloc(4 * 4096, 1);
    void* kl[2] = {eng, eng + 8192};
    void* vl[2] = {eng + 4096, eng + 12288};
    kvt_gpu_cache_desc gd;
    memset(&gd, 0, sizeof gd);
    gd.layers = 2;
    gd.k_layers = kl;
    gd.v_layers = vl;
    gd.num_blocks = 4;
    kvt_gpu_cache* gc = NULL;
    kvt_status_t st = kvt_gpu_register(s, ns, &gd, &gc); /* device memory: needs a GPU */
    if (st == KVT_UNAVAILABLE) {
      EXPECT(gc == NULL);
      EXPECT(strstr(kvt_last_error(), "KVT_GPU_HOST_MEMORY") != NULL);
    } else {
      EXPECT(st == KVT_OK); /* a GPU is visible: the registration itself works */
    }
    kvt_gpu_unregister(gc);
    kvt_gpu_unregister(NULL);
    gc = NULL;
    gd.flags = KVT_GPU_HOST_MEMORY;
    EXPECT_REJECT(kvt_gpu_register(NULL, ns, &gd, &gc), KVT_INVALID_ARGUMENT);
    EXPECT_REJECT(kvt_gpu_register(s, ns, NULL, &gc), KVT_INVALID_ARGUMENT);
    EXPECT_REJECT(kvt_gpu_register(s, 5, &gd, &gc), KVT_INVALID_ARGUMENT);
    gd.layers = 3;
    EXPECT_REJECT(kvt_gpu_register(s, ns, &gd, &gc), KVT_INVALID_ARGUMENT);
    gd.layers = 2;
    gd.flags = 0x80u;
    EXPECT_REJECT(kvt_gpu_register(s, ns, &gd, &gc), KVT_INVALID_ARGUMENT);
    gd.flags = KVT_GPU_HOST_MEMORY;
    EXPECT(gc == NULL);
    EXPECT_OK(kvt_gpu_register(s, ns, &gd, &gc));
    fill(eng, 4 * 4096, 7);
    int32_t src_ids[2] = {1, 2}, bad_ids[2] = {1, 4}, dst_ids[2] = {3, 0};
    EXPECT_REJECT(kvt_gpu_save(gc, bad_ids, hk, NULL, toks, 2, NULL), KVT_INVALID_ARGUMENT);
    EXPECT_REJECT(kvt_gpu_save(gc, src_ids, hk, NULL, toks, 0, NULL), KVT_INVALID_ARGUMENT);
    EXPECT_REJECT(kvt_get(s, ns, hk[0], out, 4096), KVT_NOT_FOUND); /* nothing stored */
    EXPECT_OK(kvt_gpu_save(gc, src_ids, hk, NULL, toks, 2, NULL));
    {
      /* The payload is layer-major: layer 0 K, layer 0 V, layer 1 K, layer 1 V of block 1. */
      unsigned char* blk = malloc(4096);
      EXPECT_OK(kvt_get(s, ns, hk[0], blk, 4096));
      EXPECT(memcmp(blk, (unsigned char*)kl[0] + 1024, 1024) == 0);
      EXPECT(memcmp(blk + 1024, (unsigned char*)vl[0] + 1024, 1024) == 0);
      EXPECT(memcmp(blk + 2048, (unsigned char*)kl[1] + 1024, 1024) == 0);
      EXPECT(memcmp(blk + 3072, (unsigned char*)vl[1] + 1024, 1024) == 0);
      free(blk);
    }
    /* Into HBM layer by layer, then from the store into two other engine blocks. */
    kvt_ticket* ht = NULL;
    EXPECT_OK(kvt_prefetch(s, ns, hk, 2, KVT_TIER_HBM, &ht));
    EXPECT_OK(kvt_ticket_wait_layer(ht, 0, -1));
    EXPECT_OK(kvt_ticket_wait_layer(ht, 1, -1));
    EXPECT_OK(kvt_ticket_wait(ht, -1));
    {
      void* ev = &ev;
      EXPECT_REJECT(kvt_ticket_layer_event(NULL, 0, -1, &ev), KVT_INVALID_ARGUMENT);
      EXPECT_REJECT(kvt_ticket_layer_event(ht, 0, -1, NULL), KVT_INVALID_ARGUMENT);
      EXPECT_REJECT(kvt_ticket_layer_event(ht, 2, -1, &ev), KVT_INVALID_ARGUMENT);
      EXPECT_OK(kvt_ticket_layer_event(ht, 1, -1, &ev));
      EXPECT(ev == NULL); /* all layers resident: nothing left to wait for on a stream */
    }
    kvt_tier_t ht_tiers[2];
    size_t ht_prefix = 0;
    EXPECT_OK(kvt_lookup(s, ns, hk, 2, &ht_prefix, ht_tiers));
    EXPECT(ht_prefix == 2 && ht_tiers[0] == KVT_TIER_HBM && ht_tiers[1] == KVT_TIER_HBM);
    kvt_ticket_release(ht);
    EXPECT_REJECT(kvt_gpu_load(NULL, hk, dst_ids, 2, NULL, NULL), KVT_INVALID_ARGUMENT);
    EXPECT_REJECT(kvt_gpu_load(gc, hk, bad_ids, 2, NULL, NULL), KVT_INVALID_ARGUMENT);
    EXPECT_OK(kvt_gpu_load(gc, hk, dst_ids, 2, NULL, NULL));
    for (int l = 0; l < 2; ++l) {
      unsigned char* k = kl[l];
      unsigned char* v = vl[l];
      EXPECT(memcmp(k + 3 * 1024, k + 1 * 1024, 1024) == 0 && memcmp(v + 3 * 1024, v + 1024, 1024) == 0);
      EXPECT(memcmp(k, k + 2 * 1024, 1024) == 0 && memcmp(v, v + 2 * 1024, 1024) == 0);
    }
    kvt_key nowhere = {9, 9};
    EXPECT_REJECT(kvt_gpu_load(gc, &nowhere, dst_ids, 1, NULL, NULL), KVT_NOT_FOUND);
    kvt_gpu_unregister(gc);
    json = NULL;
    EXPECT_OK(kvt_stats_json(s, &json));
    EXPECT(json != NULL && strstr(json, "\"hbm\"") != NULL && strstr(json, "\"prefetch\"") != NULL);
    kvt_free(json);
    EXPECT_OK(kvt_close(s));
    free(eng);
  }

  engine_facing(dir, &d);

  free(buf);
  free(out);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  printf("%d passed, %d failed\n", g_pass, g_fail);
  return g_fail == 0 ? 0 : 1;
}
