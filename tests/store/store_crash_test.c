/* Crash test through the C API. Each cycle forks a child that opens the store, puts blocks
 * (alternating write-back and write-through cycles), calls kvt_flush every few puts and, after each
 * flush returns, records in an oracle file how many blocks of its cycle were flushed. The parent
 * SIGKILLs the child at a random moment, reopens the store and checks that:
 *   - every block the oracle says was flushed (this cycle and all earlier ones) reads back
 *     byte-exact, and
 *   - no read of any key the children could have written returns bytes other than that key's.
 * The directory starts afresh every 25 cycles so that the NVMe budget is never the reason for a
 * miss. Usage: store_crash_test [--cycles N] [--seed S]. Prints "N passed, M failed". */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE  // usleep
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kvtier/kvtier.h"

enum { kBlockTokens = 16, kMaxPerCycle = 400, kFlushEvery = 7, kCyclesPerDir = 25 };

static char g_dir[256];

static kvt_store* open_store(int write_through) {
  kvt_options* o = kvt_options_create();
  kvt_options_set(o, "dir", g_dir);
  kvt_options_set(o, "host_bytes", "512KiB");
  kvt_options_set(o, "host_slab_bytes", "128KiB");
  kvt_options_set(o, "host_mlock", "false");
  kvt_options_set(o, "nvme_bytes", "128MiB");
  kvt_options_set(o, "nvme_segment_bytes", "4MiB");
  kvt_options_set(o, "write_policy", write_through ? "write_through" : "write_back");
  kvt_store* s = NULL;
  kvt_status_t st = kvt_open(o, &s);
  kvt_options_destroy(o);
  if (st != KVT_OK) {
    fprintf(stderr, "open %s: %s: %s\n", g_dir, kvt_status_name(st), kvt_last_error());
    return NULL;
  }
  return s;
}

static uint64_t open_ns(kvt_store* s) {
  kvt_namespace_desc d;
  memset(&d, 0, sizeof d);
  d.model = "crash@1";
  d.kv_dtype = "fp16";
  d.layers = 1;
  d.kv_heads = 2;
  d.head_dim = 64;
  d.block_tokens = kBlockTokens;
  uint64_t ns = 0;
  if (kvt_namespace_open(s, &d, &ns) != KVT_OK) exit(3);
  return ns;
}

static void tokens_of(int cycle, int i, int32_t* t) {
  for (int k = 0; k < kBlockTokens; ++k) t[k] = cycle * 100000 + i * kBlockTokens + k;
}

static void content_of(kvt_key key, unsigned char* b, size_t n) {
  uint64_t x = key.lo ^ (key.hi * 0x9E3779B97F4A7C15ull) ^ 0xabcdefull;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b[i] = (unsigned char)x;
  }
}

static void child(int cycle, const char* oracle) {
  kvt_store* s = open_store(cycle % 2);
  if (s == NULL) _exit(4);
  uint64_t ns = open_ns(s);
  size_t bytes = 0;
  kvt_block_bytes(s, ns, &bytes);
  unsigned char* buf = malloc(bytes);
  FILE* f = fopen(oracle, "a");
  int32_t t[kBlockTokens];
  for (int i = 0; i < kMaxPerCycle; ++i) {
    kvt_key key;
    size_t n = 0;
    tokens_of(cycle, i, t);
    kvt_hash_tokens(s, ns, t, kBlockTokens, &key, 1, &n);
    content_of(key, buf, bytes);
    kvt_key root = {0, 0};
    if (kvt_put(s, ns, key, root, t, buf, bytes) != KVT_OK) _exit(5);
    if ((i + 1) % kFlushEvery == 0) {
      if (kvt_flush(s) != KVT_OK) _exit(6);
      fprintf(f, "%d %d\n", cycle, i + 1);
      fflush(f);
      fsync(fileno(f));
    }
  }
  for (;;) pause(); /* wait for the kill */
}

int main(int argc, char** argv) {
  if (argc == 5 && strcmp(argv[1], "--child") == 0) {
    snprintf(g_dir, sizeof g_dir, "%s", argv[4]);
    child(atoi(argv[2]), argv[3]);
  }
  int cycles = 30;
  unsigned seed = (unsigned)time(NULL);
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--cycles") == 0) cycles = atoi(argv[i + 1]);
    if (strcmp(argv[i], "--seed") == 0) seed = (unsigned)strtoul(argv[i + 1], NULL, 10);
  }
  srand(seed);
  printf("crash test: %d cycles, seed %u\n", cycles, seed);
  char base[] = "/tmp/kvtier-crash-XXXXXX";
  if (mkdtemp(base) == NULL) return 2;
  char oracle[300];
  snprintf(oracle, sizeof oracle, "%s/oracle", base);
  int* flushed = calloc((size_t)cycles + 1, sizeof(int));
  int pass = 0, fail = 0, first_cycle_of_dir = 0;
  long verified = 0;
  for (int c = 0; c < cycles; ++c) {
    if (c % kCyclesPerDir == 0) {
      snprintf(g_dir, sizeof g_dir, "%s/store-%d", base, c / kCyclesPerDir);
      first_cycle_of_dir = c;
    }
    pid_t pid = fork();
    if (pid == 0) {
      /* exec a fresh image: the parent has used RocksDB, whose background threads a plain
       * fork would leave half-present in the child */
      char cs[16];
      snprintf(cs, sizeof cs, "%d", c);
      execl("/proc/self/exe", argv[0], "--child", cs, oracle, g_dir, (char*)NULL);
      _exit(7);
    }
    usleep((useconds_t)(20000 + rand() % 250000));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status)) {
      fprintf(stderr, "cycle %d: child exited with %d before the kill\n", c, WEXITSTATUS(status));
      ++fail;
      continue;
    }
    FILE* f = fopen(oracle, "r");
    int oc, on;
    while (f && fscanf(f, "%d %d", &oc, &on) == 2) {
      if (oc >= 0 && oc <= cycles && on > flushed[oc]) flushed[oc] = on;
    }
    if (f) fclose(f);

    kvt_store* s = open_store(0);
    if (s == NULL) {
      ++fail;
      continue;
    }
    uint64_t ns = open_ns(s);
    size_t bytes = 0;
    kvt_block_bytes(s, ns, &bytes);
    unsigned char* want = malloc(bytes);
    unsigned char* got = malloc(bytes);
    int32_t t[kBlockTokens];
    int lost = 0, wrong = 0;
    for (int cc = first_cycle_of_dir; cc <= c; ++cc) {
      for (int i = 0; i < kMaxPerCycle; ++i) {
        kvt_key key;
        size_t n = 0;
        tokens_of(cc, i, t);
        kvt_hash_tokens(s, ns, t, kBlockTokens, &key, 1, &n);
        kvt_status_t st = kvt_get(s, ns, key, got, bytes);
        content_of(key, want, bytes);
        if (st == KVT_OK) {
          if (memcmp(want, got, bytes) != 0) ++wrong;
          ++verified;
        } else if (i < flushed[cc]) {
          ++lost;
        }
      }
    }
    if (lost == 0 && wrong == 0) {
      ++pass;
    } else {
      ++fail;
      fprintf(stderr, "cycle %d: %d flushed blocks lost, %d reads returned wrong bytes\n", c,
              lost, wrong);
    }
    free(want);
    free(got);
    kvt_close(s);
  }
  printf("verified %ld block reads after %d kills\n", verified, cycles);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", base);
  free(flushed);
  printf("%d passed, %d failed\n", pass, fail);
  return fail == 0 ? 0 : 1;
}
