// The layer-wise prefetch pipeline through the store: NVMe -> host -> HBM (emulated in host memory
// without a GPU), pins that hold blocks in flight, HBM eviction demoting to host. A test hook holds
// the worker after layer 0, so "layer 0 resident, layer 1 not yet" is observed deterministically.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "src/store.h"
#include "tests/core/test_util.h"

namespace kvt {
namespace {

// Holds the prefetch worker inside the layer hook until opened.
class Gate {
 public:
  void Arm() {
    std::lock_guard<std::mutex> l(mu_);
    armed_ = true;
    open_ = false;
  }
  void OnLayer(uint32_t layer) {
    std::unique_lock<std::mutex> l(mu_);
    if (layer != 0 || !armed_) return;
    armed_ = false;
    held_ = true;
    cv_.notify_all();
    cv_.wait(l, [&] { return open_; });
    held_ = false;
  }
  void WaitHeld() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return held_; });
  }
  void Open() {
    std::lock_guard<std::mutex> l(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false, open_ = true, held_ = false;
};

constexpr uint32_t kLayers = 4;

class PrefetchTest : public ::testing::Test {
 protected:
  void TearDown() override {
    gate_.Open();
    store_.reset();
  }
  void Open(bool with_nvme, const char* hbm_bytes = "512KiB") {
    Options o;
    ASSERT_TRUE(o.Set("dir", dir_.path()).ok());
    ASSERT_TRUE(o.Set("host_bytes", "1MiB").ok());  // 32 blocks of 32 KiB
    ASSERT_TRUE(o.Set("host_slab_bytes", "256KiB").ok());
    ASSERT_TRUE(o.Set("host_mlock", "false").ok());
    ASSERT_TRUE(o.Set("hbm_bytes", hbm_bytes).ok());  // 16 slots by default
    if (with_nvme) {
      ASSERT_TRUE(o.Set("nvme_bytes", "32MiB").ok());
      ASSERT_TRUE(o.Set("nvme_segment_bytes", "4MiB").ok());
    }
    auto s = Store::Open(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    ASSERT_NE(store_->hbm(), nullptr);
    store_->prefetcher()->SetLayerHookForTest([this](uint32_t l) { gate_.OnLayer(l); });
    NamespaceDesc d;
    d.model = "tiny@1";
    d.kv_dtype = "fp16";
    d.layers = kLayers;
    d.kv_heads = 2;
    d.head_dim = 64;
    d.block_tokens = 16;
    ns_ = *store_->OpenNamespace(d);
    bytes_ = (*store_->Namespace(ns_))->block_bytes;
    layer_bytes_ = bytes_ / kLayers;
    ASSERT_EQ(bytes_, 32u << 10);
  }
  // Stores `n` chained blocks whose tokens start at `base`; returns their keys.
  std::vector<Hash128> Put(size_t n, int32_t base) {
    std::vector<int32_t> toks(n * 16);
    for (size_t i = 0; i < toks.size(); ++i) toks[i] = base + static_cast<int32_t>(i);
    std::vector<Hash128> keys;
    EXPECT_TRUE(store_->HashTokens(ns_, toks, &keys).ok());
    for (size_t i = 0; i < keys.size(); ++i) {
      auto data = testing::PatternBytes(keys[i].lo, bytes_);
      Status st = store_->Put(ns_, keys[i], i ? keys[i - 1] : Hash128{}, &toks[i * 16],
                              data.data(), bytes_);
      EXPECT_TRUE(st.ok()) << st.ToString();
    }
    return keys;
  }
  std::vector<Tier> Tiers(const std::vector<Hash128>& keys) {
    std::vector<Tier> t(keys.size());
    size_t prefix = 0;
    EXPECT_TRUE(store_->Lookup(ns_, keys, &prefix, t.data()).ok());
    return t;
  }
  // Layer `layer` of block i of a ticket, read out of its HBM slot through the device's copy path.
  std::vector<uint8_t> HbmLayer(const Ticket& t, size_t i, uint32_t layer) {
    HbmTier* hbm = store_->hbm();
    const int64_t slot = t.Slots().at(i);
    EXPECT_GE(slot, 0);
    std::vector<uint8_t> out(layer_bytes_);
    DeviceMemory* dev = hbm->device();
    const uint8_t* src = hbm->base() + slot * hbm->slot_bytes() + layer * layer_bytes_;
    EXPECT_TRUE(dev->CopyAsync(out.data(), src, layer_bytes_, dev->copy_stream()).ok());
    EXPECT_TRUE(dev->Synchronize(dev->copy_stream()).ok());
    return out;
  }
  std::vector<uint8_t> Expected(const Hash128& key, uint32_t layer) {
    auto all = testing::PatternBytes(key.lo, bytes_);
    return std::vector<uint8_t>(all.begin() + layer * layer_bytes_,
                                all.begin() + (layer + 1) * layer_bytes_);
  }
  nlohmann::json Stats() { return nlohmann::json::parse(store_->StatsJson()); }

  testing::TestDir dir_;
  std::unique_ptr<Store> store_;
  Gate gate_;
  uint64_t ns_ = 0;
  size_t bytes_ = 0, layer_bytes_ = 0;
};

class PrefetchSourceTest : public PrefetchTest, public ::testing::WithParamInterface<Tier> {};

TEST_P(PrefetchSourceTest, LayerWaitsReturnInOrderWithExactBytes) {
  Open(/*with_nvme=*/true);
  auto keys = Put(8, 1);
  if (GetParam() == Tier::kNvme) {
    Put(40, 100000);  // pushes the first 8 out of the 32-block host tier, down to NVMe
  }
  for (Tier t : Tiers(keys)) ASSERT_EQ(t, GetParam());

  gate_.Arm();
  auto t = store_->Prefetch(ns_, keys, Tier::kHbm);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE((*t)->WaitLayer(0, -1).ok());
  gate_.WaitHeld();
  // Layer 0 of every block has landed; the worker is held before copying layer 1.
  EXPECT_EQ((*t)->WaitLayer(1, 0).code(), Code::kTimeout);
  EXPECT_EQ((*t)->Wait(0).code(), Code::kTimeout);
  // The stream-side wait: an event to wait on (GPU), or null once resident (emulated).
  void* ev = reinterpret_cast<void*>(1);
  ASSERT_TRUE((*t)->WaitLayerEvent(0, -1, &ev).ok());
  if (store_->hbm()->device()->emulated()) {
    EXPECT_EQ(ev, nullptr);
  }
  EXPECT_EQ((*t)->WaitLayerEvent(1, 0, &ev).code(),
            store_->hbm()->device()->emulated() ? Code::kTimeout : Code::kOk);
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(HbmLayer(**t, i, 0), Expected(keys[i], 0));
  gate_.Open();
  for (uint32_t l = 1; l < kLayers; ++l) {
    ASSERT_TRUE((*t)->WaitLayer(l, -1).ok());
    for (uint32_t k = 0; k < l; ++k) EXPECT_TRUE((*t)->WaitLayer(k, 0).ok());  // in order
    for (size_t i = 0; i < keys.size(); ++i) {
      EXPECT_EQ(HbmLayer(**t, i, l), Expected(keys[i], l)) << "block " << i << " layer " << l;
    }
  }
  ASSERT_TRUE((*t)->Wait(0).ok());
  for (Tier where : Tiers(keys)) EXPECT_EQ(where, Tier::kHbm);
  auto j = Stats();
  EXPECT_EQ(j["prefetch"]["blocks_from_nvme"], GetParam() == Tier::kNvme ? 8 : 0);
  EXPECT_EQ(j["prefetch"]["bytes_host_to_hbm"], 8 * bytes_);
  EXPECT_EQ(j["tiers"]["hbm"]["blocks"], 8);
  // A second prefetch of resident blocks moves nothing.
  auto t2 = store_->Prefetch(ns_, keys, Tier::kHbm);
  ASSERT_TRUE(t2.ok());
  ASSERT_TRUE((*t2)->Wait(-1).ok());
  EXPECT_EQ(Stats()["prefetch"]["blocks_in_hbm"], 8);
}

INSTANTIATE_TEST_SUITE_P(FromHostAndNvme, PrefetchSourceTest,
                         ::testing::Values(Tier::kHost, Tier::kNvme),
                         [](const auto& info) {
                           return std::string(info.param == Tier::kHost ? "Host" : "Nvme");
                         });

TEST_F(PrefetchTest, BlocksInFlightSurviveHostEvictionPressure) {
  Open(/*with_nvme=*/false);
  auto keys = Put(8, 1);
  gate_.Arm();
  auto t = store_->Prefetch(ns_, keys, Tier::kHbm);
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE((*t)->WaitLayer(0, -1).ok());
  gate_.WaitHeld();
  // Fill the host tier several times over while the transfer holds its source blocks.
  Put(100, 500000);
  for (const Hash128& k : keys) EXPECT_TRUE(store_->host()->Lookup(ns_, k, nullptr, false));
  gate_.Open();
  ASSERT_TRUE((*t)->Wait(-1).ok());
  for (uint32_t l = 0; l < kLayers; ++l) {
    for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(HbmLayer(**t, i, l), Expected(keys[i], l));
  }
  // The HBM copies are pinned by the ticket: prefetching other blocks into a full HBM tier
  // cannot take their slots.
  auto others = Put(8, 700000);
  auto t2 = store_->Prefetch(ns_, others, Tier::kHbm);  // 8 + 8 = all 16 slots
  ASSERT_TRUE(t2.ok());
  ASSERT_TRUE((*t2)->Wait(-1).ok());
  auto more = Put(1, 800000);
  auto t3 = store_->Prefetch(ns_, more, Tier::kHbm);
  ASSERT_TRUE(t3.ok());
  EXPECT_EQ((*t3)->Wait(-1).code(), Code::kBusy);  // every slot pinned: refused, not grown
  for (uint32_t l = 0; l < kLayers; ++l) {
    for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(HbmLayer(**t, i, l), Expected(keys[i], l));
  }
}

TEST_F(PrefetchTest, HostTargetFromNvmePinsAgainstPressure) {
  Open(/*with_nvme=*/true);
  auto keys = Put(6, 1);
  Put(40, 100000);
  for (Tier t : Tiers(keys)) ASSERT_EQ(t, Tier::kNvme);
  auto t = store_->Prefetch(ns_, keys, Tier::kHost);
  ASSERT_TRUE(t.ok());
  for (uint32_t l = 0; l < kLayers; ++l) ASSERT_TRUE((*t)->WaitLayer(l, -1).ok());
  Put(64, 300000);  // two host tiers' worth of new blocks
  std::vector<uint8_t> out(bytes_);
  for (const Hash128& k : keys) {
    EXPECT_TRUE(store_->host()->Lookup(ns_, k, nullptr, false));
    ASSERT_TRUE(store_->Get(ns_, k, out.data(), bytes_).ok());
    EXPECT_EQ(out, testing::PatternBytes(k.lo, bytes_));
  }
  EXPECT_EQ(Stats()["prefetch"]["blocks_from_nvme"], 6);
}

TEST_F(PrefetchTest, HbmEvictionDemotesToHostByteExact) {
  Open(/*with_nvme=*/false);
  auto first = Put(16, 1);
  {
    auto t = store_->Prefetch(ns_, first, Tier::kHbm);
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE((*t)->Wait(-1).ok());
  }
  // Only HBM holds them now: the demotion has to copy the bytes back down.
  for (const Hash128& k : first) ASSERT_TRUE(store_->host()->Remove(ns_, k).ok());
  for (Tier t : Tiers(first)) EXPECT_EQ(t, Tier::kHbm);
  std::vector<uint8_t> out(bytes_);
  ASSERT_TRUE(store_->Get(ns_, first[3], out.data(), bytes_).ok());  // served from HBM
  EXPECT_EQ(out, testing::PatternBytes(first[3].lo, bytes_));
  {
    // A host-target prefetch of a block only HBM holds copies it back down.
    std::vector<Hash128> two = {first[0], first[1]};
    auto t = store_->Prefetch(ns_, two, Tier::kHost);
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE((*t)->Wait(-1).ok());
    for (const Hash128& k : two) {
      EXPECT_TRUE(store_->host()->Lookup(ns_, k, nullptr, false));
      ASSERT_TRUE(store_->host()->Read(ns_, k, out.data(), bytes_, nullptr).ok());
      EXPECT_EQ(out, testing::PatternBytes(k.lo, bytes_));
    }
    for (const Hash128& k : two) ASSERT_TRUE(store_->host()->Remove(ns_, k).ok());
  }

  auto second = Put(16, 900000);
  auto t = store_->Prefetch(ns_, second, Tier::kHbm);  // evicts every block of `first`
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE((*t)->Wait(-1).ok());
  auto j = Stats();
  EXPECT_EQ(j["store"]["hbm_demotions"], 16);
  EXPECT_EQ(j["tiers"]["hbm"]["evictions"], 16);
  for (Tier where : Tiers(first)) EXPECT_EQ(where, Tier::kHost);
  for (const Hash128& k : first) {
    ASSERT_TRUE(store_->Get(ns_, k, out.data(), bytes_).ok());
    EXPECT_EQ(out, testing::PatternBytes(k.lo, bytes_));
  }
  // Remove and drop reach the HBM tier too.
  ASSERT_TRUE(store_->Remove(ns_, second[0]).ok());
  EXPECT_TRUE(store_->Get(ns_, second[0], out.data(), bytes_).IsNotFound());
  t->reset();
  ASSERT_TRUE(store_->DropNamespace(ns_).ok());
  EXPECT_EQ(Stats()["tiers"]["hbm"]["blocks"], 0);
}

TEST_F(PrefetchTest, ReleasingATicketMidFlightCancelsAndDropsEveryPin) {
  Open(/*with_nvme=*/false);
  auto keys = Put(8, 1);
  gate_.Arm();
  auto t = store_->Prefetch(ns_, keys, Tier::kHbm);
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE((*t)->WaitLayer(0, -1).ok());
  gate_.WaitHeld();
  t->reset();  // released while the worker holds pins
  gate_.Open();
  // The worker drops the job's pins right after counting the cancellation.
  auto settled = [&] {
    auto j = Stats();
    return j["prefetch"]["jobs_cancelled"] == 1 &&
           j["tiers"]["hbm"]["slots_free"] == j["tiers"]["hbm"]["slots_total"];
  };
  for (int i = 0; i < 2000 && !settled(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto j = Stats();
  ASSERT_EQ(j["prefetch"]["jobs_cancelled"], 1);
  EXPECT_EQ(j["tiers"]["hbm"]["blocks"], 0);  // never published
  EXPECT_EQ(j["tiers"]["hbm"]["slots_free"], j["tiers"]["hbm"]["slots_total"]);
  // The host pins are gone too: new blocks can evict the old ones.
  Put(40, 600000);
  for (const Hash128& k : keys) EXPECT_FALSE(store_->host()->Lookup(ns_, k, nullptr, false));
}

TEST_F(PrefetchTest, MissingKeysFailTheTicketAndLeaveNothingPinned) {
  Open(/*with_nvme=*/true);
  auto keys = Put(3, 1);
  keys.push_back(Hash128{1, 2});
  auto t = store_->Prefetch(ns_, keys, Tier::kHbm);
  ASSERT_TRUE(t.ok());
  Status st = (*t)->WaitLayer(0, -1);
  EXPECT_TRUE(st.IsNotFound()) << st.ToString();
  EXPECT_NE(st.message().find("1 of 4"), std::string::npos);
  t->reset();
  auto j = Stats();
  EXPECT_EQ(j["prefetch"]["jobs_failed"], 1);
  EXPECT_EQ(j["tiers"]["hbm"]["blocks"], 0);
  EXPECT_EQ(store_->Prefetch(ns_, keys, Tier::kNvme).status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace kvt
