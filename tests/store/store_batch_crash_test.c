/* kill -9 during a batched flush, through the C API. Each cycle execs a child that opens a
 * write-back store (io_depth 8, so a flush writes its host-only blocks in many WriteBatch calls of
 * 8 and drains the demotion queue) and runs rounds: kvt_put_batch of kBatch blocks, then
 * kvt_flush. Before each flush it reports 'F' on a pipe; after the flush returns OK it records the
 * round in an oracle file (fsynced) and reports 'f'. The parent SIGKILLs the child as soon as it
 * reads the seeded k-th 'F' (k >= 2: at least one flush finished), plus a seeded 0-2 ms, so that
 * the kill lands at a different point of that flush's writes each cycle (the delay only spreads
 * the kill points; no outcome depends on it). It then reopens the store and reads every key the directory's children could have put
 * with kvt_get_batch:
 *   - every block of a round whose flush returned OK reads back byte-exact (per-block status OK);
 *   - every other entry is exact or KVT_NOT_FOUND: no read returns foreign bytes or an error.
 * The verdict counts blocks and reports, not time. How many blocks of each killed flush's round
 * were found (the kill landed mid-flush when some but not all were) is printed, not asserted.
 * Usage: store_batch_crash_test [--cycles N] [--seed S]; KVT_CRASH_SEED overrides the seed. */
#include "crash_util.h"

#include <signal.h>
#include <time.h>
#include <sys/wait.h>

enum {
  kBatch = 96, /* a flush writes them in 12 WriteBatch calls of io_depth 8 */
  kRounds = 10, /* a child puts at most kRounds * kBatch = 960 blocks */
  /* 8 KiB blocks take 12 KiB records: 341 per 4 MiB segment, 10,912 in the 32-segment budget.
   * 5 cycles put at most 4,800 blocks (each reaches NVMe once per flush that finds it only in
   * host RAM): no segment is ever reclaimed, so no flushed block may be missing. */
  kCyclesPerDir = 5
};

static const char kModel[] = "batch-crash@1";
static const uint64_t kSalt = 0x5151ull;

static kvt_store* open_store(void) {
  kvt_options* o = kvt_options_create();
  kvt_options_set(o, "dir", g_dir);
  kvt_options_set(o, "host_bytes", "2MiB"); /* 256 blocks: flushes write many, evictions too */
  kvt_options_set(o, "host_mlock", "false");
  kvt_options_set(o, "nvme_bytes", "128MiB");
  kvt_options_set(o, "nvme_segment_bytes", "4MiB");
  kvt_options_set(o, "write_policy", "write_back");
  kvt_options_set(o, "io_depth", "8");
  kvt_store* s = NULL;
  kvt_status_t st = kvt_open(o, &s);
  kvt_options_destroy(o);
  if (st != KVT_OK) {
    fprintf(stderr, "open %s: %s: %s\n", g_dir, kvt_status_name(st), kvt_last_error());
    return NULL;
  }
  return s;
}

static kvt_key key_of(kvt_store* s, uint64_t ns, int cycle, int i) {
  int32_t t[kBlockTokens];
  tokens_of(cycle, i, t);
  kvt_key key = {0, 0};
  size_t n = 0;
  kvt_hash_tokens(s, ns, t, kBlockTokens, &key, 1, &n);
  return key;
}

static void child(int cycle, const char* oracle, int progress) {
  kvt_store* s = open_store();
  if (s == NULL) _exit(4);
  uint64_t ns = open_ns(s, kModel);
  size_t bytes = 0;
  kvt_block_bytes(s, ns, &bytes);
  unsigned char* buf = malloc((size_t)kBatch * bytes);
  int32_t* toks = malloc(sizeof(int32_t) * kBatch * kBlockTokens);
  kvt_io v[kBatch];
  FILE* f = fopen(oracle, "a");
  if (buf == NULL || toks == NULL || f == NULL) _exit(9);
  for (int r = 0; r < kRounds; ++r) {
    memset(v, 0, sizeof v);
    for (int j = 0; j < kBatch; ++j) {
      const int i = r * kBatch + j;
      tokens_of(cycle, i, toks + j * kBlockTokens);
      v[j].key = key_of(s, ns, cycle, i);
      v[j].tokens = toks + j * kBlockTokens;
      v[j].buf = buf + (size_t)j * bytes;
      v[j].bytes = bytes;
      content_of(v[j].key, kSalt, v[j].buf, bytes);
    }
    if (kvt_put_batch(s, ns, v, kBatch) != KVT_OK) _exit(5);
    for (int j = 0; j < kBatch; ++j) {
      if (v[j].status != KVT_OK) _exit(5);
    }
    report(progress, 'F');
    if (kvt_flush(s) != KVT_OK) _exit(6);
    fprintf(f, "%d %d\n", cycle, (r + 1) * kBatch);
    fflush(f);
    fsync(fileno(f));
    report(progress, 'f');
  }
  for (;;) pause(); /* wait for the kill */
}

/* Execs the child and kills it when it starts its kill_at-th flush. 0 when the kill ended it. */
static int run_child(char** argv, int c, const char* oracle, int kill_at, int delay_us) {
  int progress = -1;
  const pid_t pid = spawn_child(argv, c, oracle, &progress);
  if (pid < 0) return -1;
  int starts = 0;
  char ch;
  while (starts < kill_at && read(progress, &ch, 1) == 1) {
    if (ch == 'F') ++starts;
  }
  struct timespec d = {0, delay_us * 1000L};
  nanosleep(&d, NULL);
  kill(pid, SIGKILL); /* the kill_at-th flush is running now */
  close(progress);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status)) {
    fprintf(stderr, "cycle %d: child exited with %d before the kill\n", c, WEXITSTATUS(status));
    return -1;
  }
  return 0;
}

int main(int argc, char** argv) {
  run_if_child(argc, argv, child);
  int cycles = 20;
  unsigned seed = 23;
  parse_args(argc, argv, NULL, &cycles, &seed);
  srand(seed);
  printf("batch crash test: %d cycles, seed %u\n", cycles, seed);
  fflush(stdout);
  char base[] = "/tmp/kvtier-batch-crash-XXXXXX";
  if (mkdtemp(base) == NULL) return 2;
  char oracle[300];
  snprintf(oracle, sizeof oracle, "%s/oracle", base);
  int* flushed = calloc((size_t)cycles + 1, sizeof(int));
  int* killed_round = calloc((size_t)cycles + 1, sizeof(int));
  int pass = 0, fail = 0, first_cycle_of_dir = 0, mid_flush = 0;
  long flushed_ok = 0;
  const int n = kRounds * kBatch;
  for (int c = 0; c < cycles; ++c) {
    if (c % kCyclesPerDir == 0) {
      snprintf(g_dir, sizeof g_dir, "%s/store-%d", base, c / kCyclesPerDir);
      first_cycle_of_dir = c;
    }
    const int kill_at = 2 + rand() % (kRounds - 1); /* 2..kRounds */
    killed_round[c] = kill_at - 1;
    if (run_child(argv, c, oracle, kill_at, rand() % 2000) != 0) {
      ++fail;
      continue;
    }
    read_oracle(oracle, cycles, flushed);
    if (flushed[c] < kBatch) {
      fprintf(stderr, "cycle %d: the oracle shows no flush of this cycle\n", c);
      ++fail;
      continue;
    }
    kvt_store* s = open_store();
    if (s == NULL) {
      ++fail;
      continue;
    }
    uint64_t ns = open_ns(s, kModel);
    size_t bytes = 0;
    kvt_block_bytes(s, ns, &bytes);
    unsigned char* got = malloc((size_t)n * bytes);
    unsigned char* want = malloc(bytes);
    kvt_io* v = calloc((size_t)n, sizeof(kvt_io));
    int lost = 0, wrong = 0;
    for (int cc = first_cycle_of_dir; cc <= c; ++cc) {
      for (int i = 0; i < n; ++i) {
        v[i].key = key_of(s, ns, cc, i);
        v[i].buf = got + (size_t)i * bytes;
        v[i].bytes = bytes;
      }
      if (kvt_get_batch(s, ns, v, (size_t)n) != KVT_OK) {
        fprintf(stderr, "cycle %d: kvt_get_batch: %s\n", c, kvt_last_error());
        ++wrong;
        continue;
      }
      int found_in_killed = 0;
      for (int i = 0; i < n; ++i) {
        if (v[i].status == KVT_OK) {
          content_of(v[i].key, kSalt, want, bytes);
          if (memcmp(want, v[i].buf, bytes) != 0) ++wrong;
          if (i < flushed[cc]) ++flushed_ok;
          if (i / kBatch == killed_round[cc]) ++found_in_killed;
        } else if (v[i].status != KVT_NOT_FOUND) {
          ++wrong; /* an error is neither bytes nor a clean miss */
        } else if (i < flushed[cc]) {
          ++lost;
        }
      }
      if (cc == c && found_in_killed > 0 && found_in_killed < kBatch) ++mid_flush;
    }
    if (lost == 0 && wrong == 0) {
      ++pass;
    } else {
      ++fail;
      fprintf(stderr, "cycle %d (seed %u): %d flushed blocks lost, %d reads wrong or failed\n", c,
              seed, lost, wrong);
    }
    free(got);
    free(want);
    free(v);
    kvt_close(s);
  }
  printf("%ld reads of flushed blocks exact after %d kills; %d kills left part of the killed "
         "flush's batch on NVMe\n",
         flushed_ok, cycles, mid_flush);
  if (flushed_ok < (long)cycles * kBatch) {
    fprintf(stderr, "only %ld reads of flushed blocks for %d cycles\n", flushed_ok, cycles);
    ++fail;
  }
  remove_tree(base);
  free(flushed);
  free(killed_round);
  printf("%d passed, %d failed\n", pass, fail);
  return fail == 0 ? 0 : 1;
}
