/* What the C-API crash tests (store_crash_test.c, store_batch_crash_test.c) share: the namespace
 * and the bytes of their blocks, the child's progress pipe, the exec of a fresh child image, the
 * oracle file, the arguments and the clean-up. Each test keeps its own store options, child loop,
 * kill rule and verdict. */
#ifndef KVT_TESTS_STORE_CRASH_UTIL_H_
#define KVT_TESTS_STORE_CRASH_UTIL_H_

#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "kvtier/kvtier.h"

enum { kBlockTokens = 16 }; /* 8 KiB blocks in the namespace below */

/* The store directory of the current cycles; the child gets it on its command line. */
static char g_dir[256];

static uint64_t open_ns(kvt_store* s, const char* model) {
  kvt_namespace_desc d;
  memset(&d, 0, sizeof d);
  d.model = model;
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

/* Bytes that depend on the key and on the test's salt: a block served for another reads wrong. */
static void content_of(kvt_key key, uint64_t salt, unsigned char* b, size_t n) {
  uint64_t x = key.lo ^ (key.hi * 0x9E3779B97F4A7C15ull) ^ salt;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b[i] = (unsigned char)x;
  }
}

/* One progress character from the child to the parent. */
static void report(int fd, char c) {
  if (write(fd, &c, 1) != 1) _exit(8);
}

/* Forks and execs a fresh image of this test as the child of cycle c (the parent has used
 * RocksDB, whose background threads a plain fork would leave half-present in the child). Returns
 * its pid (-1 on failure) and the read end of its progress pipe in *progress. */
static pid_t spawn_child(char** argv, int c, const char* oracle, int* progress) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    char cs[16], fs[16];
    snprintf(cs, sizeof cs, "%d", c);
    snprintf(fs, sizeof fs, "%d", fds[1]);
    close(fds[0]);
    execl("/proc/self/exe", argv[0], "--child", cs, oracle, g_dir, fs, (char*)NULL);
    _exit(7);
  }
  close(fds[1]);
  *progress = fds[0];
  return pid;
}

/* Runs child(cycle, oracle, progress fd) when this process is a child spawned above. */
static void run_if_child(int argc, char** argv, void (*child)(int, const char*, int)) {
  if (argc == 6 && strcmp(argv[1], "--child") == 0) {
    snprintf(g_dir, sizeof g_dir, "%s", argv[4]);
    child(atoi(argv[2]), argv[3], atoi(argv[5]));
  }
}

/* --cycles N and --seed S; cycles_env (when not NULL) and KVT_CRASH_SEED override them. */
static void parse_args(int argc, char** argv, const char* cycles_env, int* cycles,
                       unsigned* seed) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--cycles") == 0) *cycles = atoi(argv[i + 1]);
    if (strcmp(argv[i], "--seed") == 0) *seed = (unsigned)strtoul(argv[i + 1], NULL, 10);
  }
  if (cycles_env != NULL && getenv(cycles_env) != NULL) *cycles = atoi(getenv(cycles_env));
  if (getenv("KVT_CRASH_SEED") != NULL) *seed = (unsigned)strtoul(getenv("KVT_CRASH_SEED"), NULL, 10);
}

/* The oracle holds "cycle blocks" lines, one per flush that returned OK: flushed[cycle] becomes
 * the largest count recorded for each cycle 0..cycles. */
static void read_oracle(const char* oracle, int cycles, int* flushed) {
  FILE* f = fopen(oracle, "r");
  int oc, on;
  while (f && fscanf(f, "%d %d", &oc, &on) == 2) {
    if (oc >= 0 && oc <= cycles && on > flushed[oc]) flushed[oc] = on;
  }
  if (f) fclose(f);
}

static void remove_tree(const char* base) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", base);
}

#endif /* KVT_TESTS_STORE_CRASH_UTIL_H_ */
