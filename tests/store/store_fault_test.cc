// Fault injection at the store level (Options::nvme_io_factory wrapping FaultInjectionFileIo):
// demotion on eviction, demotion at flush, write-through, promotion and the flush's syncs under
// EIO, ENOSPC and short (torn) transfers. What must hold: a failure reaches the caller (at put,
// get, or the next flush; docs/decisions.md "Lost demotions"), and a read answers exact bytes, a
// miss or an error, never other bytes.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>
#include <nlohmann/json.hpp>

#include "io/fault_injection_file_io.h"
#include "src/store.h"
#include "tests/core/test_util.h"

namespace kvt {
namespace {

constexpr size_t kHostBlocks = 16;  // 256 KiB host tier, 16 KiB blocks

struct FaultCase {
  FaultKind kind;
  Code expect;  // the status a failed write reports
  const char* name;
};
void PrintTo(const FaultCase& c, std::ostream* os) { *os << c.name; }

class StoreFaultTest : public ::testing::TestWithParam<FaultCase> {
 protected:
  std::unique_ptr<Store> Open(const char* write_policy) {
    Options o;
    EXPECT_TRUE(o.Set("dir", dir_.path()).ok());
    EXPECT_TRUE(o.Set("host_bytes", "256KiB").ok());
    EXPECT_TRUE(o.Set("host_slab_bytes", "128KiB").ok());
    EXPECT_TRUE(o.Set("host_mlock", "false").ok());
    EXPECT_TRUE(o.Set("nvme_bytes", "16MiB").ok());
    EXPECT_TRUE(o.Set("nvme_segment_bytes", "2MiB").ok());
    EXPECT_TRUE(o.Set("write_policy", write_policy).ok());
    o.nvme_io_factory = [ctl = ctl_] {
      return std::make_unique<FaultInjectionFileIo>(MakeDefaultFileIo(16), ctl);
    };
    auto s = Store::Open(o);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    if (!s.ok()) return nullptr;
    NamespaceDesc d;
    d.model = "tiny@1";
    d.kv_dtype = "bf16";
    d.layers = 2;
    d.kv_heads = 2;
    d.head_dim = 64;
    d.block_tokens = 16;
    ns_ = *(*s)->OpenNamespace(d);
    bytes_ = (*(*s)->Namespace(ns_))->block_bytes;
    return std::move(s).value();
  }
  static Hash128 Key(uint64_t i) { return Hash128{i * 0x9e3779b97f4a7c15ull + 7, i + 1}; }
  Status Put(Store* s, uint64_t i) {
    auto d = testing::PatternBytes(i, bytes_);
    return s->Put(ns_, Key(i), Hash128{}, nullptr, d.data(), bytes_);
  }
  // OK with exact bytes, or the failure; wrong bytes fail the test.
  Status Get(Store* s, uint64_t i) {
    std::vector<uint8_t> out(bytes_);
    Status st = s->Get(ns_, Key(i), out.data(), bytes_);
    if (st.ok()) {
      EXPECT_EQ(out, testing::PatternBytes(i, bytes_)) << "WRONG BYTES for block " << i;
    }
    return st;
  }
  static uint64_t StoreStat(Store* s, const char* name) {
    return nlohmann::json::parse(s->StatsJson())["store"][name].get<uint64_t>();
  }
  // Waits (bounded: only a hang fails it) until no evicted block waits for or is being written.
  static bool WaitForEmptyDemotionQueue(Store* s) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      auto q = nlohmann::json::parse(s->StatsJson())["demotion_queue"];
      if (q["depth"].get<uint64_t>() == 0) return true;
      std::this_thread::yield();
    }
    return false;
  }
  void FailAll(FaultOp op) {
    ctl_->AddRule({.op = op, .kind = GetParam().kind, .probability = 1.0});
  }

  testing::TestDir dir_;
  std::shared_ptr<FaultController> ctl_ = std::make_shared<FaultController>(17);
  uint64_t ns_ = 0;
  size_t bytes_ = 0;
};

// Write-back: puts are acknowledged from host RAM; an eviction whose NVMe write fails loses an
// acknowledged block. The next Flush must say so (once), and the lost blocks read as misses.
TEST_P(StoreFaultTest, FailedDemotionOnEvictionFailsTheNextFlush) {
  auto s = Open("write_back");
  ASSERT_TRUE(s);
  ASSERT_TRUE(Put(s.get(), 1000).ok());
  ASSERT_TRUE(s->Flush().ok());  // the active segment exists before the faults start
  FailAll(FaultOp::kWrite);
  constexpr uint64_t kN = 4 * kHostBlocks;
  for (uint64_t i = 0; i < kN; ++i) ASSERT_TRUE(Put(s.get(), i).ok()) << i;
  // Demotion is asynchronous (src/demotion_queue.h): the failures are counted once the queue's
  // writer has tried every evicted block.
  ASSERT_TRUE(WaitForEmptyDemotionQueue(s.get()));
  const uint64_t lost = StoreStat(s.get(), "demotion_failures");
  ASSERT_GT(lost, kHostBlocks) << "evictions did not reach the faulty NVMe tier";
  ctl_->Clear();
  Status f = s->Flush();
  EXPECT_EQ(f.code(), GetParam().expect) << f.ToString();
  EXPECT_NE(f.message().find("evicted"), std::string::npos) << f.ToString();
  EXPECT_TRUE(s->Flush().ok()) << "a lost demotion is reported once";
  uint64_t misses = 0;
  for (uint64_t i = 0; i < kN; ++i) {
    Status st = Get(s.get(), i);
    ASSERT_TRUE(st.ok() || st.IsNotFound()) << i << ": " << st.ToString();
    misses += st.IsNotFound() ? 1 : 0;
  }
  EXPECT_EQ(misses, lost) << "each failed demotion loses exactly its block";
}

// Write-back flush: blocks still in host RAM go down at Flush; when that write fails the Flush
// fails and the blocks stay readable in RAM, and a later Flush makes them durable.
TEST_P(StoreFaultTest, FailedDemotionAtFlushFailsItAndKeepsTheBlocks) {
  {
    auto s = Open("write_back");
    ASSERT_TRUE(s);
    ASSERT_TRUE(Put(s.get(), 1000).ok());
    ASSERT_TRUE(s->Flush().ok());
    for (uint64_t i = 0; i < kHostBlocks / 2; ++i) ASSERT_TRUE(Put(s.get(), i).ok());
    FailAll(FaultOp::kWrite);
    Status f = s->Flush();
    EXPECT_EQ(f.code(), GetParam().expect) << f.ToString();
    EXPECT_GT(StoreStat(s.get(), "demotion_failures"), 0u);
    for (uint64_t i = 0; i < kHostBlocks / 2; ++i) ASSERT_TRUE(Get(s.get(), i).ok()) << i;
    ctl_->Clear();
    ASSERT_TRUE(s->Flush().ok());
  }
  auto s = Open("write_back");
  ASSERT_TRUE(s);
  for (uint64_t i = 0; i < kHostBlocks / 2; ++i) {
    EXPECT_TRUE(Get(s.get(), i).ok()) << "block " << i << " not durable after a good flush";
  }
}

// Write-through: the put itself reports the failed NVMe write.
TEST_P(StoreFaultTest, FailedWriteThroughFailsThePut) {
  auto s = Open("write_through");
  ASSERT_TRUE(s);
  ASSERT_TRUE(Put(s.get(), 1000).ok());
  FailAll(FaultOp::kWrite);
  for (uint64_t i = 0; i < 4; ++i) {
    Status st = Put(s.get(), i);
    EXPECT_EQ(st.code(), GetParam().expect) << st.ToString();
    Status g = Get(s.get(), i);  // the host copy (exact) or a miss, never other bytes
    EXPECT_TRUE(g.ok() || g.IsNotFound()) << g.ToString();
  }
  EXPECT_EQ(StoreStat(s.get(), "write_through_failures"), 4u);
  ctl_->Clear();
  for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(Put(s.get(), i).ok());
  ASSERT_TRUE(s->Flush().ok());
  s.reset();
  s = Open("write_through");
  ASSERT_TRUE(s);
  for (uint64_t i = 0; i < 4; ++i) EXPECT_TRUE(Get(s.get(), i).ok()) << i;
}

// Promotion: a failed NVMe read is an error (the entry is kept), never bytes; it reads exact
// once the device recovers.
TEST_P(StoreFaultTest, FailedPromotionIsAnErrorNotBytes) {
  if (GetParam().kind == FaultKind::kEnospc) GTEST_SKIP() << "reads do not fail with ENOSPC";
  auto s = Open("write_back");
  ASSERT_TRUE(s);
  constexpr uint64_t kN = 3 * kHostBlocks;
  for (uint64_t i = 0; i < kN; ++i) ASSERT_TRUE(Put(s.get(), i).ok());
  ASSERT_TRUE(s->Flush().ok());
  FailAll(FaultOp::kRead);
  const uint64_t before = StoreStat(s.get(), "promotions");
  for (uint64_t i = 0; i < kHostBlocks; ++i) {  // evicted long ago: only NVMe holds them
    Status st = Get(s.get(), i);
    EXPECT_EQ(st.code(), Code::kIoError) << i << ": " << st.ToString();
  }
  EXPECT_EQ(StoreStat(s.get(), "promotions"), before);
  EXPECT_GE(ctl_->injected(FaultOp::kRead), kHostBlocks);
  ctl_->Clear();
  for (uint64_t i = 0; i < kHostBlocks; ++i) EXPECT_TRUE(Get(s.get(), i).ok()) << i;
}

// The flush's own syncs: a failed fdatasync fails the Flush; the next one syncs again.
TEST_P(StoreFaultTest, FailedSyncFailsTheFlush) {
  if (GetParam().kind == FaultKind::kShort) GTEST_SKIP() << "a short sync is plain EIO";
  auto s = Open("write_through");
  ASSERT_TRUE(s);
  for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(Put(s.get(), i).ok());
  FailAll(FaultOp::kSync);
  Status f = s->Flush();
  EXPECT_EQ(f.code(), GetParam().expect) << f.ToString();
  ctl_->Clear();
  const uint64_t syncs = ctl_->ops(FaultOp::kSync);
  ASSERT_TRUE(s->Flush().ok());
  EXPECT_GT(ctl_->ops(FaultOp::kSync), syncs) << "the failed segment sync was not retried";
}

INSTANTIATE_TEST_SUITE_P(Faults, StoreFaultTest,
                         ::testing::Values(FaultCase{FaultKind::kEio, Code::kIoError, "eio"},
                                           FaultCase{FaultKind::kEnospc, Code::kNoSpace, "enospc"},
                                           FaultCase{FaultKind::kShort, Code::kIoError, "short"}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace kvt
