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
#include "crash_util.h"

#include <signal.h>
#include <sys/wait.h>

enum {
  kMaxPerCycle = 100, /* a child stops putting after this many blocks */
  kFlushEvery = 7,
  kMaxKill = 70, /* the kill comes after 7..kMaxKill puts (and at least one flush) */
  /* 8 KiB blocks take 12 KiB records: 341 per 4 MiB segment, 10,912 in the 32-segment budget.
   * 10 cycles put at most 1,000 blocks: the budget is never reached (and each reopen reads
   * back every block of its directory: fewer cycles per directory keep that short). */
  kCyclesPerDir = 10
};

static const char kModel[] = "crash@1";
static const uint64_t kSalt = 0xabcdefull;

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

/* A numeric field of the stats JSON ("name":value, first occurrence after `after`), or -1. */
static long long stat_of(const char* json, const char* after, const char* name) {
  const char* p = strstr(json, after);
  if (p == NULL) return -1;
  char pat[80];
  snprintf(pat, sizeof pat, "\"%s\":", name);
  p = strstr(p, pat);
  return p == NULL ? -1 : atoll(p + strlen(pat));
}

static void child(int cycle, const char* oracle, int progress) {
  kvt_store* s = open_store(cycle % 2);
  if (s == NULL) _exit(4);
  uint64_t ns = open_ns(s, kModel);
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
    content_of(key, kSalt, buf, bytes);
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
  int progress = -1;
  const pid_t pid = spawn_child(argv, c, oracle, &progress);
  if (pid < 0) return -1;
  int puts = 0, flushes = 0;
  char ch;
  while ((puts < kill_after || flushes == 0) && read(progress, &ch, 1) == 1) {
    if (ch == 'p') ++puts;
    if (ch == 'f') ++flushes;
  }
  kill(pid, SIGKILL);
  close(progress);
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
  run_if_child(argc, argv, child);
  int cycles = 30;
  unsigned seed = 17;
  parse_args(argc, argv, "KVT_STORE_CRASH_CYCLES", &cycles, &seed);
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
    read_oracle(oracle, cycles, flushed);
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
    uint64_t ns = open_ns(s, kModel);
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
        content_of(key, kSalt, want, bytes);
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
  remove_tree(base);
  free(flushed);
  printf("%d passed, %d failed\n", pass, fail);
  return fail == 0 ? 0 : 1;
}
