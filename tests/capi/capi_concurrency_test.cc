// The whole C API from 12 threads at once, on host + emulated HBM + NVMe with reclaim running
// (the NVMe budget holds about a fifth of the keys): put, get, prefetch (host and HBM targets),
// flush, remove, drop_namespace, lookup and stats. Every block's bytes are a function of its key,
// so every successful read is checked byte for byte whatever raced it. Each thread runs a fixed
// number of operations (not a duration); sanitizer builds run fewer. Built for TSAN too: all
// shared test state is atomics, and the only waits are ticket waits with generous timeouts.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kvtier/kvtier.h"
#include "tests/common/test_dir.h"

namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kOpsPerThread = 300;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr int kOpsPerThread = 300;
#else
constexpr int kOpsPerThread = 1500;
#endif
#else
constexpr int kOpsPerThread = 1500;
#endif
constexpr uint64_t kKeys = 250;  // per namespace: the two are 500 blocks, NVMe holds ~400
constexpr int64_t kTicketTimeoutUs = 30 * 1000 * 1000;  // bounds a hang only

kvt_key KeyOf(uint64_t tag, uint64_t i) {
  return kvt_key{i * 0x9E3779B97F4A7C15ull + tag, (tag << 32) ^ (i + 1)};
}

void ContentOf(kvt_key key, uint8_t* b, size_t n) {
  uint64_t x = key.lo ^ (key.hi * 0x9E3779B97F4A7C15ull) ^ 0x5bd1e995ull;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b[i] = static_cast<uint8_t>(x);
  }
}

uint64_t JsonField(const std::string& json, const std::string& section, const std::string& name) {
  size_t p = json.find("\"" + section + "\"");
  if (p == std::string::npos) return 0;
  p = json.find("\"" + name + "\":", p);
  if (p == std::string::npos) return 0;
  return std::strtoull(json.c_str() + p + name.size() + 3, nullptr, 10);
}

struct Shared {
  kvt_store* s = nullptr;
  uint64_t ns[2] = {0, 0};  // [0] stable, [1] dropped now and then
  size_t bytes = 0;
  std::atomic<uint64_t> verified{0}, misses{0}, prefetched{0}, flushes{0}, drops{0};
  std::atomic<uint64_t> failures{0};
  std::atomic<bool> logged{false};
  void Fail(const std::string& what) {
    failures.fetch_add(1);
    if (!logged.exchange(true)) ADD_FAILURE() << what;  // the first one, with its detail
  }
};

class CapiConcurrencyTest : public ::testing::Test {
 protected:
  kvt_store* Open() {
    kvt_options* o = kvt_options_create();
    kvt_options_set(o, "dir", dir_.path().c_str());
    kvt_options_set(o, "host_bytes", "1MiB");
    kvt_options_set(o, "host_slab_bytes", "256KiB");
    kvt_options_set(o, "host_mlock", "false");
    kvt_options_set(o, "hbm_bytes", "512KiB");
    kvt_options_set(o, "nvme_bytes", "8MiB");
    kvt_options_set(o, "nvme_segment_bytes", "1MiB");
    kvt_store* s = nullptr;
    kvt_status_t st = kvt_open(o, &s);
    kvt_options_destroy(o);
    EXPECT_EQ(st, KVT_OK) << kvt_last_error();
    return s;
  }
  uint64_t Ns(kvt_store* s, const char* model) {
    kvt_namespace_desc d;
    std::memset(&d, 0, sizeof d);
    d.model = model;
    d.kv_dtype = "fp16";
    d.layers = 2;
    d.kv_heads = 2;
    d.head_dim = 64;
    d.block_tokens = 16;
    uint64_t ns = 0;
    EXPECT_EQ(kvt_namespace_open(s, &d, &ns), KVT_OK) << kvt_last_error();
    return ns;
  }
  kvt::testing::TestDir dir_;
};

void Writer(Shared& sh, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> buf(sh.bytes);
  for (int op = 0; op < kOpsPerThread; ++op) {
    const int w = static_cast<int>(rng() % 2);
    const kvt_key k = KeyOf(w, rng() % kKeys);
    ContentOf(k, buf.data(), buf.size());
    kvt_status_t st = kvt_put(sh.s, sh.ns[w], k, kvt_key{0, 0}, nullptr, buf.data(), buf.size());
    // BUSY: every host slot pinned by readers and prefetches at that moment.
    if (st != KVT_OK && st != KVT_BUSY) {
      sh.Fail(std::string("put: ") + kvt_status_name(st) + ": " + kvt_last_error());
    }
  }
}

void Reader(Shared& sh, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> got(sh.bytes), want(sh.bytes);
  for (int op = 0; op < kOpsPerThread; ++op) {
    const int w = static_cast<int>(rng() % 2);
    const kvt_key k = KeyOf(w, rng() % kKeys);
    kvt_status_t st = kvt_get(sh.s, sh.ns[w], k, got.data(), got.size());
    if (st == KVT_OK) {
      ContentOf(k, want.data(), want.size());
      if (got != want) sh.Fail("get returned bytes of another block");
      sh.verified.fetch_add(1);
    } else if (st == KVT_NOT_FOUND) {
      sh.misses.fetch_add(1);
    } else {
      sh.Fail(std::string("get: ") + kvt_status_name(st) + ": " + kvt_last_error());
    }
    if (op % 16 == 0) {  // a lookup answers, whatever it finds
      kvt_tier_t tiers[4];
      kvt_key keys[4];
      for (int j = 0; j < 4; ++j) keys[j] = KeyOf(w, rng() % kKeys);
      size_t prefix = 0;
      st = kvt_lookup(sh.s, sh.ns[w], keys, 4, &prefix, tiers);
      if (st != KVT_OK) sh.Fail(std::string("lookup: ") + kvt_status_name(st));
    }
  }
}

void Prefetcher(Shared& sh, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (int op = 0; op < kOpsPerThread / 8; ++op) {
    const int w = static_cast<int>(rng() % 2);
    kvt_key keys[4];
    for (int j = 0; j < 4; ++j) keys[j] = KeyOf(w, rng() % kKeys);
    kvt_ticket* t = nullptr;
    const kvt_tier_t target = op % 2 ? KVT_TIER_HBM : KVT_TIER_HOST;
    kvt_status_t st = kvt_prefetch(sh.s, sh.ns[w], keys, 4, target, &t);
    if (st != KVT_OK) {
      sh.Fail(std::string("prefetch: ") + kvt_status_name(st) + ": " + kvt_last_error());
      continue;
    }
    st = kvt_ticket_wait(t, kTicketTimeoutUs);
    // NOT_FOUND: a key missing (never put, removed, dropped, reclaimed); BUSY: all pinned.
    if (st == KVT_OK) {
      sh.prefetched.fetch_add(1);
    } else if (st != KVT_NOT_FOUND && st != KVT_BUSY) {
      sh.Fail(std::string("ticket: ") + kvt_status_name(st) + ": " + kvt_last_error());
    }
    kvt_ticket_release(t);
  }
}

void Flusher(Shared& sh, uint64_t) {
  for (int op = 0; op < kOpsPerThread / 50; ++op) {
    kvt_status_t st = kvt_flush(sh.s);
    if (st != KVT_OK) sh.Fail(std::string("flush: ") + kvt_status_name(st) + ": " + kvt_last_error());
    sh.flushes.fetch_add(1);
    char* json = nullptr;
    st = kvt_stats_json(sh.s, &json);
    if (st != KVT_OK || json == nullptr || std::strstr(json, "\"store\"") == nullptr) {
      sh.Fail("stats_json");
    }
    kvt_free(json);
  }
}

void Remover(Shared& sh, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (int op = 0; op < kOpsPerThread; ++op) {
    if (op % 300 == 299) {
      kvt_status_t st = kvt_drop_namespace(sh.s, sh.ns[1]);
      if (st != KVT_OK) sh.Fail(std::string("drop: ") + kvt_status_name(st) + ": " + kvt_last_error());
      sh.drops.fetch_add(1);
      continue;
    }
    const int w = static_cast<int>(rng() % 2);
    kvt_status_t st = kvt_remove(sh.s, sh.ns[w], KeyOf(w, rng() % kKeys));
    if (st != KVT_OK && st != KVT_NOT_FOUND) {
      sh.Fail(std::string("remove: ") + kvt_status_name(st) + ": " + kvt_last_error());
    }
  }
}

TEST_F(CapiConcurrencyTest, TwelveThreadsOverEveryTierReadOnlyTheirOwnBytes) {
  Shared sh;
  sh.s = Open();
  ASSERT_NE(sh.s, nullptr);
  sh.ns[0] = Ns(sh.s, "stable@1");
  sh.ns[1] = Ns(sh.s, "dropped@1");
  ASSERT_EQ(kvt_block_bytes(sh.s, sh.ns[0], &sh.bytes), KVT_OK);
  {  // every key stored once first, so that reads hit whichever thread runs ahead
    std::vector<uint8_t> buf(sh.bytes);
    for (int w = 0; w < 2; ++w) {
      for (uint64_t i = 0; i < kKeys; ++i) {
        ContentOf(KeyOf(w, i), buf.data(), buf.size());
        ASSERT_EQ(kvt_put(sh.s, sh.ns[w], KeyOf(w, i), kvt_key{0, 0}, nullptr, buf.data(),
                          buf.size()),
                  KVT_OK);
      }
    }
  }
  std::vector<std::thread> threads;
  for (uint64_t i = 0; i < 4; ++i) threads.emplace_back(Writer, std::ref(sh), 100 + i);
  for (uint64_t i = 0; i < 4; ++i) threads.emplace_back(Reader, std::ref(sh), 200 + i);
  for (uint64_t i = 0; i < 2; ++i) threads.emplace_back(Prefetcher, std::ref(sh), 300 + i);
  threads.emplace_back(Flusher, std::ref(sh), 400);
  threads.emplace_back(Remover, std::ref(sh), 500);
  for (auto& t : threads) t.join();

  char* json = nullptr;
  ASSERT_EQ(kvt_stats_json(sh.s, &json), KVT_OK);
  const std::string stats = json;
  kvt_free(json);
  std::printf("verified %llu reads, %llu misses, %llu prefetches, %llu flushes, %llu drops; "
              "NVMe segments reclaimed %llu\n",
              (unsigned long long)sh.verified.load(), (unsigned long long)sh.misses.load(),
              (unsigned long long)sh.prefetched.load(), (unsigned long long)sh.flushes.load(),
              (unsigned long long)sh.drops.load(),
              (unsigned long long)JsonField(stats, "nvme", "segments_reclaimed"));
  EXPECT_EQ(sh.failures.load(), 0u);
  if (std::getenv("KVT_PRINT_STATS") != nullptr) std::printf("%s\n", stats.c_str());
  EXPECT_GT(sh.verified.load(), static_cast<uint64_t>(kOpsPerThread));  // reads did hit
  EXPECT_GT(JsonField(stats, "nvme", "segments_reclaimed"), 0u) << "reclaim never ran";
  EXPECT_GT(JsonField(stats, "store", "promotions"), 0u) << "no read reached NVMe";

  // Whatever survived is exact after a flush and a reopen.
  ASSERT_EQ(kvt_flush(sh.s), KVT_OK) << kvt_last_error();
  ASSERT_EQ(kvt_close(sh.s), KVT_OK);
  kvt_store* s = Open();
  ASSERT_NE(s, nullptr);
  const uint64_t ns = Ns(s, "stable@1");
  std::vector<uint8_t> got(sh.bytes), want(sh.bytes);
  uint64_t after = 0;
  for (uint64_t i = 0; i < kKeys; ++i) {
    const kvt_key k = KeyOf(0, i);
    kvt_status_t st = kvt_get(s, ns, k, got.data(), got.size());
    ASSERT_TRUE(st == KVT_OK || st == KVT_NOT_FOUND) << kvt_status_name(st);
    if (st == KVT_OK) {
      ContentOf(k, want.data(), want.size());
      ASSERT_EQ(got, want) << "key " << i << " after reopen";
      ++after;
    }
  }
  EXPECT_GT(after, 0u);
  EXPECT_EQ(kvt_close(s), KVT_OK);
}

}  // namespace
