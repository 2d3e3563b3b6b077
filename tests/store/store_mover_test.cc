// The mover's paths with an NVMe device whose writes can be held (a gate in front of the real
// FileIo): a get never waits for an NVMe write even when the demotion queue is full and its
// writer is stuck; blocks on their way to NVMe stay readable; flush reports background demotion
// failures (sticky) and makes the queued blocks durable once the device moves again.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <condition_variable>
#include <future>
#include <mutex>

#include <nlohmann/json.hpp>

#include "io/fault_injection_file_io.h"
#include "src/store.h"
#include "tests/core/test_util.h"

namespace kvt {
namespace {

// Holds every batch that writes while closed; reads and syncs pass. While hold_after is set, a
// batch with a completion callback is also held after its first request completed and was
// handed to the caller (a demotion batch has then indexed its first run but not returned).
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool closed = false;
  int waiting = 0;
  bool hold_after = false;
  int waiting_after = 0;
  void HoldAfter(bool on) {
    {
      std::lock_guard<std::mutex> l(mu);
      hold_after = on;
    }
    cv.notify_all();
  }
  void PassAfter() {
    std::unique_lock<std::mutex> l(mu);
    if (hold_after) WaitWhile(l, hold_after, waiting_after);
  }
  void Close() {
    std::lock_guard<std::mutex> l(mu);
    closed = true;
  }
  void Open() {
    {
      std::lock_guard<std::mutex> l(mu);
      closed = false;
    }
    cv.notify_all();
  }
  void Pass(std::span<IoRequest> reqs) {
    bool writes = false;
    for (const IoRequest& r : reqs) writes = writes || r.op == IoOp::kWrite;
    if (!writes) return;
    std::unique_lock<std::mutex> l(mu);
    WaitWhile(l, closed, waiting);
  }
  // Blocks while `held` is set, counted in `count` meanwhile. REQUIRES: l holds mu.
  void WaitWhile(std::unique_lock<std::mutex>& l, const bool& held, int& count) {
    ++count;
    cv.notify_all();
    cv.wait(l, [&] { return !held; });
    --count;
  }
  // Generous bound: only keeps a broken build from hanging the test.
  bool WaitForWaiter() { return WaitForCount(waiting); }
  bool WaitForWaiterAfter() { return WaitForCount(waiting_after); }
  bool WaitForCount(const int& count) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, std::chrono::seconds(60), [&] { return count > 0; });
  }
};

class GatedFileIo final : public FileIo {
 public:
  GatedFileIo(std::unique_ptr<FileIo> base, Gate* gate) : base_(std::move(base)), gate_(gate) {}
  Status Execute(std::span<IoRequest> reqs) override {
    gate_->Pass(reqs);
    return base_->Execute(reqs);
  }
  Status Execute(std::span<IoRequest> reqs, const Completion& done) override {
    gate_->Pass(reqs);
    bool first = true;
    return base_->Execute(reqs, [&](size_t i) {
      if (done) done(i);
      if (first && reqs[i].op == IoOp::kWrite) gate_->PassAfter();
      first = false;
    });
  }
  Status Fsync(int fd) override { return base_->Fsync(fd); }
  Status Fdatasync(int fd) override { return base_->Fdatasync(fd); }
  Status Fallocate(int fd, uint64_t o, uint64_t n) override { return base_->Fallocate(fd, o, n); }
  Status RegisterBuffers(std::span<const iovec> b) override { return base_->RegisterBuffers(b); }
  bool BuffersRegistered() const override { return base_->BuffersRegistered(); }
  const char* Name() const override { return "gated"; }

 private:
  std::unique_ptr<FileIo> base_;
  Gate* gate_;
};

class StoreMoverTest : public ::testing::Test {
 protected:
  void OpenStore(std::function<std::unique_ptr<FileIo>()> factory) {
    Options o;
    ASSERT_TRUE(o.Set("dir", dir_.path()).ok());
    ASSERT_TRUE(o.Set("host_bytes", "1MiB").ok());  // 16 blocks of 64 KiB
    ASSERT_TRUE(o.Set("host_mlock", "false").ok());
    ASSERT_TRUE(o.Set("nvme_bytes", "16MiB").ok());
    ASSERT_TRUE(o.Set("nvme_segment_bytes", "4MiB").ok());
    o.nvme_io_factory = std::move(factory);
    auto s = Store::Open(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    NamespaceDesc d;
    d.model = "mover@1";
    d.kv_dtype = "fp16";
    d.layers = 2;
    d.kv_heads = 2;
    d.head_dim = 64;
    d.block_tokens = 64;
    ns_ = *store_->OpenNamespace(d);
    bytes_ = (*store_->Namespace(ns_))->block_bytes;
    ASSERT_EQ(bytes_, 64u << 10);
  }
  Hash128 Key(uint64_t i) { return Hash128{i * 7919 + 1, i + 3}; }
  void Put(uint64_t i) {
    auto d = testing::PatternBytes(i, bytes_);
    ASSERT_TRUE(store_->Put(ns_, Key(i), Hash128{}, nullptr, d.data(), bytes_).ok()) << i;
  }
  void ExpectExact(uint64_t i) {
    std::vector<uint8_t> out(bytes_);
    ASSERT_TRUE(store_->Get(ns_, Key(i), out.data(), bytes_).ok()) << i;
    EXPECT_EQ(out, testing::PatternBytes(i, bytes_)) << i;
  }
  nlohmann::json Stats() { return nlohmann::json::parse(store_->StatsJson()); }

  testing::TestDir dir_;
  std::unique_ptr<Store> store_;
  uint64_t ns_ = 0;
  size_t bytes_ = 0;
};

TEST_F(StoreMoverTest, GetNeverWaitsForAnNvmeWriteWithAFullDemotionQueue) {
  Gate gate;
  OpenStore([&gate] { return std::make_unique<GatedFileIo>(MakeDefaultFileIo(64), &gate); });
  // Blocks 0..23 on NVMe (durable), 8..23 still in host RAM too (clean copies).
  for (uint64_t i = 0; i < 24; ++i) Put(i);
  ASSERT_TRUE(store_->Flush().ok());
  // The device stops writing. 16 new blocks evict the clean copies (no write needed); 4 more
  // evict dirty blocks into the demotion queue, whose writer then blocks in the device.
  gate.Close();
  for (uint64_t i = 100; i < 116; ++i) Put(i);
  auto q = Stats()["demotion_queue"];
  const uint64_t cap_blocks = q["capacity_bytes"].get<uint64_t>() / bytes_;
  ASSERT_GE(cap_blocks, 1u);
  for (uint64_t i = 116; i < 116 + cap_blocks; ++i) Put(i);
  ASSERT_TRUE(gate.WaitForWaiter()) << "the demotion writer never reached the device";
  q = Stats()["demotion_queue"];
  ASSERT_EQ(q["depth"].get<uint64_t>(), cap_blocks) << q.dump();  // full: every put now waits
  EXPECT_GE(q["high_water"].get<uint64_t>(), cap_blocks);

  // Gets of blocks only NVMe holds (promotion would evict into the full queue) and of blocks on
  // their way to NVMe: all must finish while the device is still held.
  auto gets = std::async(std::launch::async, [&] {
    std::vector<uint8_t> out(bytes_);
    int exact = 0;
    for (uint64_t i : {0ull, 1ull, 2ull, 100ull, 101ull}) {
      if (!store_->Get(ns_, Key(i), out.data(), bytes_).ok()) continue;
      exact += out == testing::PatternBytes(i, bytes_);
    }
    return exact;
  });
  const bool finished = gets.wait_for(std::chrono::seconds(60)) == std::future_status::ready;
  EXPECT_TRUE(finished) << "a get waited for the held NVMe write";
  gate.Open();  // let everything finish either way
  EXPECT_EQ(gets.get(), 5);
  EXPECT_GE(Stats()["store"]["promotions_skipped"].get<uint64_t>(), 1u);

  // The device moves again: flush makes the queued blocks durable; everything reads back.
  ASSERT_TRUE(store_->Flush().ok());
  EXPECT_EQ(Stats()["demotion_queue"]["depth"].get<uint64_t>(), 0u);
  for (uint64_t i = 0; i < 24; ++i) ExpectExact(i);
  for (uint64_t i = 100; i < 116 + cap_blocks; ++i) ExpectExact(i);
}

// Queued evictions live in the queue's one region (huge pages, reserved once), its slots reused
// as batches finish: many more evictions than the region has slots, none mapped on its own, every
// block exact after the flush. A block larger than the whole region still goes down, in a buffer
// of its own.
TEST_F(StoreMoverTest, EvictionsReuseTheQueueRegionAndEveryBlockLands) {
  OpenStore(nullptr);
  auto q = Stats()["demotion_queue"];
  const uint64_t region = q["region_bytes"].get<uint64_t>();
  ASSERT_GE(region, q["capacity_bytes"].get<uint64_t>());
  const uint64_t slots = region / bytes_;
  ASSERT_GE(slots, 1u);
  const uint64_t n = 16 + 8 * slots + 5;  // the host tier holds 16: the rest are evictions
  for (uint64_t i = 0; i < n; ++i) Put(i);
  ASSERT_TRUE(store_->Flush().ok());
  q = Stats()["demotion_queue"];
  EXPECT_GE(q["enqueued"].get<uint64_t>(), n - 16);
  EXPECT_EQ(q["own_buffers"].get<uint64_t>(), 0u) << q.dump();
  EXPECT_EQ(q["depth"].get<uint64_t>(), 0u);
  for (uint64_t i = 0; i < n; ++i) ExpectExact(i);

  // Blocks 4x the region: each eviction takes a buffer of its own.
  NamespaceDesc big;
  big.model = "mover-big@1";
  big.kv_dtype = "fp16";
  big.layers = 2;
  big.kv_heads = 2;
  big.head_dim = 64;
  big.block_tokens = static_cast<uint32_t>(64 * 4 * std::max<uint64_t>(region / bytes_, 1));
  auto ns = store_->OpenNamespace(big);
  ASSERT_TRUE(ns.ok()) << ns.status().ToString();
  const size_t big_bytes = (*store_->Namespace(*ns))->block_bytes;
  ASSERT_GT(big_bytes, region);
  for (uint64_t i = 0; i < 4; ++i) {
    auto d = testing::PatternBytes(1000 + i, big_bytes);
    ASSERT_TRUE(store_->Put(*ns, Key(1000 + i), Hash128{}, nullptr, d.data(), big_bytes).ok());
  }
  ASSERT_TRUE(store_->Flush().ok());
  EXPECT_GE(Stats()["demotion_queue"]["own_buffers"].get<uint64_t>(), 1u);
  std::vector<uint8_t> out(big_bytes);
  for (uint64_t i = 0; i < 4; ++i) {
    ASSERT_TRUE(store_->Get(*ns, Key(1000 + i), out.data(), big_bytes).ok()) << i;
    EXPECT_EQ(out, testing::PatternBytes(1000 + i, big_bytes)) << i;
  }
}

// A block removed while its demotion write is in flight is gone when Remove returns. The race
// this pins: Remove found the block neither in the queue (taken by the writer) nor on NVMe (not
// indexed yet) and returned; the write then indexed it, and gets found it until the writer
// removed it again after its batch. Remove now waits for the batch.
TEST_F(StoreMoverTest, RemoveDuringItsDemotionWaitsForTheWrite) {
  Gate gate;
  OpenStore([&gate] { return std::make_unique<GatedFileIo>(MakeDefaultFileIo(64), &gate); });
  for (uint64_t i = 0; i < 16; ++i) Put(i);  // the host tier is full
  gate.Close();
  Put(16);  // evicts block 0 into the queue; the writer takes it and is held before writing
  ASSERT_TRUE(gate.WaitForWaiter()) << "the demotion writer never reached the device";
  auto removed = std::async(std::launch::async, [&] { return store_->Remove(ns_, Key(0)); });
  std::vector<uint8_t> out(bytes_);
  if (removed.wait_for(std::chrono::milliseconds(300)) == std::future_status::ready) {
    // Remove did not wait. Let the write land and be indexed, and hold the batch there.
    gate.HoldAfter(true);
    gate.Open();
    ASSERT_TRUE(gate.WaitForWaiterAfter());
    EXPECT_TRUE(store_->Get(ns_, Key(0), out.data(), bytes_).IsNotFound())
        << "a get after Remove returned found the block its in-flight write indexed";
    gate.HoldAfter(false);
  } else {
    gate.Open();
  }
  EXPECT_TRUE(removed.get().ok());
  EXPECT_TRUE(store_->Get(ns_, Key(0), out.data(), bytes_).IsNotFound());
  EXPECT_EQ(Stats()["demotion_queue"].value("remove_waits", uint64_t{0}), 1u);
  ExpectExact(16);
  store_.reset();  // its closing flush writes through the gate, which dies with this scope
}

TEST_F(StoreMoverTest, FailedBackgroundDemotionIsReportedByTheNextFlushOnce) {
  auto faults = std::make_shared<FaultController>(7);
  OpenStore([faults] {
    return std::make_unique<FaultInjectionFileIo>(MakeDefaultFileIo(64), faults);
  });
  for (uint64_t i = 0; i < 16; ++i) Put(i);  // the host tier is full
  FaultRule r;
  r.op = FaultOp::kWrite;
  r.kind = FaultKind::kEio;
  r.probability = 1.0;
  faults->AddRule(r);
  for (uint64_t i = 16; i < 20; ++i) Put(i);  // each evicts a block the queue cannot write
  Status first = store_->Flush();
  EXPECT_FALSE(first.ok());
  EXPECT_NE(first.message().find("background demotion"), std::string::npos) << first.ToString();
  faults->Clear();
  EXPECT_TRUE(store_->Flush().ok());  // reported once, then forgotten
  EXPECT_GE(Stats()["demotion_queue"]["write_failures"].get<uint64_t>(), 1u);
}

TEST_F(StoreMoverTest, GetBatchServesEveryTierWithPerBlockStatuses) {
  OpenStore(nullptr);
  for (uint64_t i = 0; i < 24; ++i) Put(i);  // 0..7 went to NVMe (queue), 8..23 in host RAM
  ASSERT_TRUE(store_->Flush().ok());
  std::vector<Hash128> keys = {Key(0), Key(999), Key(20), Key(3)};
  std::vector<std::vector<uint8_t>> bufs(keys.size(), std::vector<uint8_t>(bytes_));
  std::vector<BatchEntry> v(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    v[i].key = keys[i];
    v[i].buf = bufs[i].data();
    v[i].bytes = bytes_;
  }
  ASSERT_TRUE(store_->GetBatch(ns_, v).ok());
  EXPECT_TRUE(v[0].status.ok() && v[2].status.ok() && v[3].status.ok());
  EXPECT_TRUE(v[1].status.IsNotFound()) << v[1].status.ToString();
  EXPECT_EQ(v[0].tier, Tier::kNvme);
  EXPECT_EQ(v[1].tier, Tier::kNone);
  EXPECT_EQ(v[2].tier, Tier::kHost);
  EXPECT_EQ(bufs[0], testing::PatternBytes(0, bytes_));
  EXPECT_EQ(bufs[2], testing::PatternBytes(20, bytes_));
  EXPECT_EQ(bufs[3], testing::PatternBytes(3, bytes_));
  EXPECT_GE(Stats()["store"]["fetch_nvme_reads"].get<uint64_t>(), 2u);  // one batched read
}

// Flips one payload byte of block i where it lies in a segment file (found by its bytes: the
// codec is none, so the payload is stored as written). Whether it was found.
bool CorruptOnDisk(const std::string& dir, const std::vector<uint8_t>& payload) {
  for (const auto& f : std::filesystem::recursive_directory_iterator(dir)) {
    if (!f.is_regular_file() || f.file_size() < payload.size()) continue;
    std::fstream io(f.path(), std::ios::in | std::ios::out | std::ios::binary);
    std::vector<uint8_t> all((std::istreambuf_iterator<char>(io)), std::istreambuf_iterator<char>());
    auto at = std::search(all.begin(), all.end(), payload.begin(), payload.begin() + 256);
    if (at == all.end()) continue;
    const auto off = (at - all.begin()) + static_cast<std::ptrdiff_t>(payload.size() / 2);
    io.clear();
    io.seekp(off);
    io.put(static_cast<char>(all[static_cast<size_t>(off)] ^ 0x5a));
    return io.good();
  }
  return false;
}

// A batch get where some blocks were never stored and some are corrupt on disk: each entry gets
// its own status (corrupt: NotFound, the entry dropped), the others read exact, nothing fails
// the batch, and no entry returns other bytes.
TEST_F(StoreMoverTest, GetBatchWithMissingAndCorruptBlocksHasPerBlockStatuses) {
  OpenStore(nullptr);
  for (uint64_t i = 0; i < 24; ++i) Put(i);
  ASSERT_TRUE(store_->Flush().ok());
  store_.reset();  // every block is on NVMe only after the reopen
  ASSERT_TRUE(CorruptOnDisk(dir_.path() + "/nvme", testing::PatternBytes(2, bytes_)));
  ASSERT_TRUE(CorruptOnDisk(dir_.path() + "/nvme", testing::PatternBytes(5, bytes_)));
  OpenStore(nullptr);
  const std::vector<uint64_t> ids = {0, 2, 999, 5, 7, 20, 1000};
  const std::vector<bool> good = {true, false, false, false, true, true, false};
  for (int pass = 0; pass < 2; ++pass) {  // 2nd: hits from the host tier, corrupt still missing
    std::vector<std::vector<uint8_t>> bufs(ids.size(), std::vector<uint8_t>(bytes_, 0xee));
    std::vector<BatchEntry> v(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      v[i].key = Key(ids[i]);
      v[i].buf = bufs[i].data();
      v[i].bytes = bytes_;
    }
    ASSERT_TRUE(store_->GetBatch(ns_, v).ok());
    for (size_t i = 0; i < ids.size(); ++i) {
      if (good[i]) {
        ASSERT_TRUE(v[i].status.ok()) << ids[i] << ": " << v[i].status.ToString();
        EXPECT_EQ(v[i].tier, pass == 0 ? Tier::kNvme : Tier::kHost) << ids[i];
        EXPECT_EQ(bufs[i], testing::PatternBytes(ids[i], bytes_)) << ids[i];
      } else {
        EXPECT_TRUE(v[i].status.IsNotFound()) << ids[i] << ": " << v[i].status.ToString();
        EXPECT_EQ(v[i].tier, Tier::kNone) << ids[i];
      }
    }
  }
  EXPECT_EQ(Stats()["tiers"]["nvme"]["checksum_failures"].get<uint64_t>(), 2u);
}

}  // namespace
}  // namespace kvt
