// GPU gather/scatter and quantizing codec against the CPU references: byte-exact, including the
// bytes a call must leave untouched (skipped ids, other layers, slot padding).
#include <gtest/gtest.h>

#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/gpu_kernels.h"
#include "kernels/paged_copy.h"
#include "kernels/quantize.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/kernels/kernel_test_util.h"

namespace kvt {
namespace {

using testing::DeviceBuffer;

class GpuKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = testing::NoGpuReason();
    if (!why.empty()) GTEST_SKIP() << why;
    ASSERT_EQ(cudaStreamCreate(&stream_), cudaSuccess);
  }
  void TearDown() override {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  void Sync() { ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess); }
  cudaStream_t stream_ = nullptr;
};

// One engine cache, on the host and mirrored on the device (one allocation per layer).
struct MirroredEngine {
  BlockLayout g;
  std::vector<std::vector<uint8_t>> host;
  std::vector<DeviceBuffer> dev;
  std::vector<void*> hk, hv, dk, dv;
  DeviceBuffer dk_table, dv_table;
  PagedKvLayout host_layout, dev_layout;

  MirroredEngine(const BlockLayout& geo, bool hnd, int64_t blocks, std::mt19937& rng) : g(geo) {
    const int64_t te = g.tensor_elems(), eb = g.elem_bytes();
    for (int l = 0; l < g.layers; ++l) {
      host.push_back(testing::RandomBytes(rng, static_cast<size_t>(blocks * g.tensors() * te * eb)));
      dev.emplace_back(host.back().data(), host.back().size());
      hk.push_back(host.back().data());
      dk.push_back(dev.back().get());
      hv.push_back(g.mla ? nullptr : host.back().data() + blocks * te * eb);
      dv.push_back(g.mla ? nullptr : dev.back().as<uint8_t>() + blocks * te * eb);
    }
    dk_table = DeviceBuffer(dk.data(), dk.size() * sizeof(void*));
    dv_table = DeviceBuffer(dv.data(), dv.size() * sizeof(void*));
    auto make = hnd ? &PagedKvLayout::Hnd : &PagedKvLayout::Nhd;
    host_layout = make(g, hk.data(), g.mla ? nullptr : hv.data(), blocks);
    dev_layout = make(g, dk_table.as<void*>(), g.mla ? nullptr : dv_table.as<void*>(), blocks);
  }
  void ExpectSameAsDevice() const {
    for (int l = 0; l < g.layers; ++l) ASSERT_EQ(dev[l].Download(), host[l]) << "layer " << l;
  }
};

struct CopyCase {
  int32_t d, heads, n;
  DType t;
  bool hnd, mla;
  int64_t slot_pad;  // 0 keeps slots 16-byte aligned; 2 forces the byte path
};

TEST_F(GpuKernels, GatherScatterMatchCpuExactly) {
  std::vector<CopyCase> cases;
  for (int32_t d : {64, 80, 96, 128, 256})
    for (int32_t n : {1, 3, 7, 17}) cases.push_back({d, 3, n, DType::kFp16, false, false, 16});
  for (DType t : {DType::kBf16, DType::kFp8E4M3, DType::kInt8}) cases.push_back({128, 5, 7, t, true, false, 16});
  cases.push_back({40, 7, 3, DType::kFp16, true, false, 2});   // odd rows, unaligned slots
  cases.push_back({576, 1, 17, DType::kBf16, false, true, 0}); // MLA latent
  uint32_t seed = 1;
  for (const CopyCase& c : cases) {
    SCOPED_TRACE("d" + std::to_string(c.d) + " H" + std::to_string(c.heads) + " n" +
                 std::to_string(c.n) + " " + DTypeName(c.t) + (c.hnd ? " hnd" : " nhd") +
                 (c.mla ? " mla" : ""));
    std::mt19937 rng(seed++);
    const BlockLayout g{4, c.mla ? 1 : c.heads, c.d, 16, c.t, c.mla};
    const int64_t blocks = 2 * c.n + 1;
    MirroredEngine src(g, c.hnd, blocks, rng);
    std::vector<int32_t> perm(static_cast<size_t>(blocks)), ids(c.n), slots(c.n);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    for (int i = 0; i < c.n; ++i) ids[i] = (i % 4 == 2) ? -1 : perm[i];
    std::iota(slots.begin(), slots.end(), 0);
    std::shuffle(slots.begin(), slots.end(), rng);
    const int64_t slot_bytes = g.block_bytes() + c.slot_pad;
    std::vector<uint8_t> pay_host(static_cast<size_t>(c.n * slot_bytes), 0xAB);
    DeviceBuffer pay_dev(pay_host.data(), pay_host.size());
    DeviceBuffer ids_dev(ids.data(), ids.size() * 4), slots_dev(slots.data(), slots.size() * 4);

    // Gather everything, then gather layer 1 again alone (must be idempotent).
    PayloadSlots hp{pay_host.data(), slot_bytes, slots.data()};
    PayloadSlots dp{pay_dev.get(), slot_bytes, slots_dev.as<int32_t>()};
    ASSERT_TRUE(GatherBlocksRef(src.host_layout, ids.data(), c.n, hp, LayerRange::All(g)).ok());
    ASSERT_TRUE(GatherBlocksGpu(src.dev_layout, ids_dev.as<int32_t>(), c.n, dp, LayerRange::All(g), stream_).ok());
    ASSERT_TRUE(GatherBlocksGpu(src.dev_layout, ids_dev.as<int32_t>(), c.n, dp, LayerRange::One(1), stream_).ok());
    Sync();
    ASSERT_EQ(pay_dev.Download(), pay_host) << "gather";

    // Scatter layer by layer into another engine.
    MirroredEngine dst(g, c.hnd, blocks, rng);
    for (int l = 0; l < g.layers; ++l) {
      ASSERT_TRUE(ScatterBlocksRef(hp, dst.host_layout, ids.data(), c.n, LayerRange::One(l)).ok());
      ASSERT_TRUE(ScatterBlocksGpu(dp, dst.dev_layout, ids_dev.as<int32_t>(), c.n, LayerRange::One(l), stream_).ok());
    }
    Sync();
    dst.ExpectSameAsDevice();
  }
}

TEST_F(GpuKernels, QuantizeDequantizeMatchCpuExactly) {
  std::mt19937 rng(4);
  for (bool mla : {false, true}) {
    for (DType src_t : {DType::kFp16, DType::kBf16}) {
      for (DType q_t : {DType::kFp8E4M3, DType::kInt8}) {
        SCOPED_TRACE(std::string(DTypeName(src_t)) + " -> " + DTypeName(q_t) + (mla ? " mla" : ""));
        const BlockLayout g{3, mla ? 1 : 5, mla ? 576 : 80, 16, src_t, mla};
        const int64_t blocks = 4;
        auto in = testing::RandomElems(rng, src_t, blocks * g.block_elems(), 0.7f);
        StoreFromF32(in.data(), 5, src_t, INFINITY);  // special values take the same path too
        StoreFromF32(in.data(), 9, src_t, NAN);
        BlockLayout qg = g;
        qg.dtype = q_t;
        std::vector<uint8_t> q_cpu(static_cast<size_t>(blocks * qg.block_bytes()));
        std::vector<float> s_cpu(static_cast<size_t>(blocks * g.scales_per_block()));
        ASSERT_TRUE(QuantizeBlocksRef(g, blocks, in.data(), q_t, q_cpu.data(), s_cpu.data()).ok());
        DeviceBuffer in_d(in.data(), in.size()), q_d(q_cpu.size()), s_d(s_cpu.size() * 4);
        ASSERT_TRUE(QuantizeBlocksGpu(g, blocks, in_d.get(), q_t, q_d.get(), s_d.as<float>(), stream_).ok());
        Sync();
        ASSERT_EQ(q_d.Download(), q_cpu);
        const auto s_bytes = s_d.Download();
        ASSERT_EQ(0, std::memcmp(s_bytes.data(), s_cpu.data(), s_bytes.size())) << "scales";
        for (DType out_t : {src_t, DType::kFp32}) {
          std::vector<uint8_t> back_cpu(static_cast<size_t>(blocks * g.block_elems() * DTypeSize(out_t)));
          ASSERT_TRUE(DequantizeBlocksRef(qg, blocks, q_cpu.data(), s_cpu.data(), out_t, back_cpu.data()).ok());
          DeviceBuffer back_d(back_cpu.size());
          ASSERT_TRUE(DequantizeBlocksGpu(qg, blocks, q_d.get(), s_d.as<float>(), out_t, back_d.get(), stream_).ok());
          Sync();
          ASSERT_EQ(back_d.Download(), back_cpu) << "dequantize to " << DTypeName(out_t);
        }
      }
    }
  }
}

}  // namespace
}  // namespace kvt
