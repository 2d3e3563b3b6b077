/* Crash test through the C API. Each cycle execs a child that opens the store, puts blocks
 * (alternating write-back and write-through cycles), calls kvt_flush every few puts and, after
 * each flush returns, records in an oracle file how many blocks of its cycle were flushed. The
 * child reports progress through a pipe; the parent SIGKILLs it once it has put a seeded number
 * of blocks and flushed at least once (block counts, not time: the verdict does not depend on
 * the disk's speed), reopens the store and checks that:
 *   - every block the oracle says was flushed (this cycle and all earlier ones of the directory)
 *     reads back byte-exact, and
 *   - no read of any key the children could have written returns bytes other than that key's.
 * Misses of flushed blocks are lost data unless the NVMe tier could have reclaimed them: a child
 * puts at most kMaxPerCycle blocks and each block reaches NVMe once, so a directory is replaced
 * before its writes could fill the budget; the reopened store's own counters
 * (segments_created < segments_total: a segment was never reused) confirm it.
 * Usage: store_crash_test [--cycles N] [--seed S]; KVT_STORE_CRASH_CYCLES and KVT_CRASH_SEED
 * override both (long soaks, reruns of a printed seed). Prints "N passed, M failed". */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kvtier/kvtier.h"

enum {
  kBlockTokens = 16,
  kMaxPerCycle = 100, /* a child stops putting after this many blocks */
  kFlushEvery = 7,
  kMaxKill = 70, /* the kill comes after 7..kMaxKill puts (and at least one flush) */
  /* 8 KiB blocks take 12 KiB records: 341 per 4 MiB segment, 10,912 in the 32-segment budget.
   * 10 cycles put at most 1,000 blocks: the budget is never reached (and each reopen reads
   * back every block of its directory: fewer cycles per directory keep that short). */
  kCyclesPerDir = 10
};

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

/* A numeric field of the stats JSON ("name":value, first occurrence after `after`), or -1. */
static long long stat_of(const char* json, const char* after, const char* name) {
  const char* p = strstr(json, after);
  if (p == NULL) return -1;
  char pat[80];
  snprintf(pat, sizeof pat, "\"%s\":", name);
  p = strstr(p, pat);
  return p == NULL ? -1 : atoll(p + strlen(pat));
}

static void report(int fd, char c) {
  if (write(fd, &c, 1) != 1) _exit(8);
}

static void child(int cycle, const char* oracle, int progress) {
  kvt_store* s = open_store(cycle % 2);
  if (s == NULL) _exit(4);
  uint64_t ns = open_ns(s);
  size_t bytes = 0;
  kvt_block_bytes(s, ns, &bytes);
  unsigned char* buf = malloc(bytes);
  FILE* f = fopen(oracle, "a");
  if (buf == NULL || f == NULL) _exit(9);
  int32_t t[kBlockTokens];
  for (int i = 0; i < kMaxPerCycle; ++i) {
    kvt_key key;
    size_t n = 0;
    tokens_of(cycle, i, t);
    kvt_hash_tokens(s, ns, t, kBlockTokens, &key, 1, &n);
    content_of(key, buf, bytes);
    kvt_key root = {0, 0};
    if (kvt_put(s, ns, key, root, t, buf, bytes) != KVT_OK) _exit(5);
    report(progress, 'p');
    if ((i + 1) % kFlushEvery == 0) {
      if (kvt_flush(s) != KVT_OK) _exit(6);
      fprintf(f, "%d %d\n", cycle, i + 1);
      fflush(f);
      fsync(fileno(f));
      report(progress, 'f');
    }
  }
  for (;;) pause(); /* wait for the kill */
}

/* Execs the child, waits until it has put `kill_after` blocks and flushed once, kills it.
 * 0 when the kill ended it, -1 otherwise. */
static int run_child(char** argv, int c, const char* oracle, int kill_after) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    /* exec a fresh image: the parent has used RocksDB, whose background threads a plain
     * fork would leave half-present in the child */
    char cs[16], fs[16];
    snprintf(cs, sizeof cs, "%d", c);
    snprintf(fs, sizeof fs, "%d", fds[1]);
    close(fds[0]);
    execl("/proc/self/exe", argv[0], "--child", cs, oracle, g_dir, fs, (char*)NULL);
    _exit(7);
  }
  close(fds[1]);
  int puts = 0, flushes = 0;
  char ch;
  while ((puts < kill_after || flushes == 0) && read(fds[0], &ch, 1) == 1) {
    if (ch == 'p') ++puts;
    if (ch == 'f') ++flushes;
  }
  kill(pid, SIGKILL);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) {
    fprintf(stderr, "cycle %d: child exited with %d after %d puts, before the kill\n", c,
            WEXITSTATUS(status), puts);
    return -1;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 6 && strcmp(argv[1], "--child") == 0) {
    snprintf(g_dir, sizeof g_dir, "%s", argv[4]);
    child(atoi(argv[2]), argv[3], atoi(argv[5]));
  }
  int cycles = 30;
  unsigned seed = 17;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--cycles") == 0) cycles = atoi(argv[i + 1]);
    if (strcmp(argv[i], "--seed") == 0) seed = (unsigned)strtoul(argv[i + 1], NULL, 10);
  }
  if (getenv("KVT_STORE_CRASH_CYCLES") != NULL) cycles = atoi(getenv("KVT_STORE_CRASH_CYCLES"));
  if (getenv("KVT_CRASH_SEED") != NULL) seed = (unsigned)strtoul(getenv("KVT_CRASH_SEED"), NULL, 10);
  srand(seed);
  printf("crash test: %d cycles, seed %u (--seed or KVT_CRASH_SEED reruns it)\n", cycles, seed);
  fflush(stdout);
  char base[] = "/tmp/kvtier-crash-XXXXXX";
  if (mkdtemp(base) == NULL) return 2;
  char oracle[300];
  snprintf(oracle, sizeof oracle, "%s/oracle", base);
  int* flushed = calloc((size_t)cycles + 1, sizeof(int));
  int pass = 0, fail = 0, first_cycle_of_dir = 0;
  long verified = 0, flushed_ok = 0, maybe_reclaimed = 0;
  for (int c = 0; c < cycles; ++c) {
    if (c % kCyclesPerDir == 0) {
      snprintf(g_dir, sizeof g_dir, "%s/store-%d", base, c / kCyclesPerDir);
      first_cycle_of_dir = c;
    }
    const int kill_after = kFlushEvery + rand() % (kMaxKill - kFlushEvery + 1);
    if (run_child(argv, c, oracle, kill_after) != 0) {
      ++fail;
      continue;
    }
    FILE* f = fopen(oracle, "r");
    int oc, on;
    while (f && fscanf(f, "%d %d", &oc, &on) == 2) {
      if (oc >= 0 && oc <= cycles && on > flushed[oc]) flushed[oc] = on;
    }
    if (f) fclose(f);
    if (flushed[c] < kFlushEvery) {
      fprintf(stderr, "cycle %d: the oracle shows no flush of this cycle\n", c);
      ++fail;
      continue;
    }

    kvt_store* s = open_store(0);
    if (s == NULL) {
      ++fail;
      continue;
    }
    /* Could the NVMe tier have reused a segment? Only once every segment file exists. */
    char* json = NULL;
    kvt_stats_json(s, &json);
    long long created = json ? stat_of(json, "\"nvme\"", "segments_created") : -1;
    long long total = json ? stat_of(json, "\"nvme\"", "segments_total") : -1;
    kvt_free(json);
    const int could_reclaim = created < 0 || total < 0 || created >= total;
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
          if (i < flushed[cc]) ++flushed_ok;
        } else if (st != KVT_NOT_FOUND) {
          ++wrong; /* an error reading a block is neither bytes nor a clean miss */
        } else if (i < flushed[cc]) {
          if (could_reclaim && cc < c) {
            ++maybe_reclaimed;
          } else {
            ++lost;
          }
        }
      }
    }
    if (lost == 0 && wrong == 0) {
      ++pass;
    } else {
      ++fail;
      fprintf(stderr, "cycle %d (seed %u): %d flushed blocks lost, %d reads wrong or failed\n",
              c, seed, lost, wrong);
    }
    free(want);
    free(got);
    kvt_close(s);
  }
  printf("verified %ld block reads (%ld of flushed blocks) after %d kills; %ld flushed blocks "
         "possibly reclaimed\n",
         verified, flushed_ok, cycles, maybe_reclaimed);
  /* Every cycle flushed at least kFlushEvery blocks and each is read at every later cycle of its
   * directory: fewer reads means the test checked less than it claims. */
  if (flushed_ok < (long)cycles * kFlushEvery) {
    fprintf(stderr, "only %ld reads of flushed blocks for %d cycles\n", flushed_ok, cycles);
    ++fail;
  }
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", base);
  free(flushed);
  printf("%d passed, %d failed\n", pass, fail);
  return fail == 0 ? 0 : 1;
}
