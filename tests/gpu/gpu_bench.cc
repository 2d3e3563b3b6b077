// kvt_gpu_bench: GPU figures for the kernels layer, each next to this device's own limit measured
// in the same run.
//   1. H2D / D2H of block payloads (per block, per layer of a block) vs one plain cudaMemcpyAsync
//      of the same bytes from pinned memory.
//   2. gather / scatter kernels vs a device-to-device cudaMemcpyAsync of the same bytes.
//   3. paged decode attention: achieved GB/s (K/V bytes read / time) vs the D2D copy bandwidth of
//      the same bytes (read + write, the practical HBM limit) and the nominal peak.
// Usage: kvt_gpu_bench [--quick]. Exits 77 (skip) without a GPU.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "kernels/gpu_kernels.h"
#include "tests/gpu/gpu_test_util.h"

namespace kvt {
namespace {

using testing::DeviceBuffer;
using testing::PinnedBuffer;

#define CK(x)                                                                      \
  do {                                                                             \
    cudaError_t e_ = (x);                                                          \
    if (e_ != cudaSuccess) {                                                       \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                \
    }                                                                              \
  } while (0)

// Median milliseconds of `reps` runs of fn on stream, timed with events (after one warm-up).
double TimeMs(cudaStream_t s, int reps, const std::function<void()>& fn) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  fn();
  CK(cudaStreamSynchronize(s));
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    CK(cudaEventRecord(a, s));
    fn();
    CK(cudaEventRecord(b, s));
    CK(cudaEventSynchronize(b));
    float t = 0;
    CK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

double GBs(double bytes, double ms) { return bytes / (ms * 1e-3) / 1e9; }

void Must(const Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    std::exit(1);
  }
}

// Llama-3-8B-like geometry: 32 layers, 8 KV heads, head_dim 128, 16-token blocks, fp16: 2 MiB/block.
const BlockLayout kGeo{32, 8, 128, 16, DType::kFp16, false};

void Transfers(cudaStream_t s, int nblocks) {
  const int64_t bb = kGeo.block_bytes(), lb = kGeo.layer_bytes(), total = bb * nblocks;
  PinnedBuffer host(total);
  std::memset(host.get(), 1, total);
  DeviceBuffer dev(total);
  std::vector<int> perm(nblocks);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(1));  // pool slots are not contiguous
  auto* h = static_cast<uint8_t*>(host.get());
  auto* d = dev.as<uint8_t>();
  std::printf("\n== block transfers: %d blocks x %.2f MiB (layers %d x %.0f KiB), pinned host <-> HBM ==\n",
              nblocks, bb / 1048576.0, kGeo.layers, lb / 1024.0);
  for (int dir = 0; dir < 2; ++dir) {
    const auto kind = dir == 0 ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost;
    const char* name = dir == 0 ? "H2D" : "D2H";
    auto copy = [&](uint8_t* hp, uint8_t* dp, int64_t n) {
      CK(dir == 0 ? cudaMemcpyAsync(dp, hp, n, kind, s) : cudaMemcpyAsync(hp, dp, n, kind, s));
    };
    const double plain = TimeMs(s, 5, [&] { copy(h, d, total); });
    const double per_block = TimeMs(s, 5, [&] {
      for (int i = 0; i < nblocks; ++i) copy(h + i * bb, d + perm[i] * bb, bb);
    });
    const double per_layer = TimeMs(s, 5, [&] {
      for (int l = 0; l < kGeo.layers; ++l)
        for (int i = 0; i < nblocks; ++i) copy(h + i * bb + l * lb, d + perm[i] * bb + l * lb, lb);
    });
    // One cudaMemcpyBatchAsync per layer (what the prefetch pipeline does).
    std::vector<void*> dsts(nblocks);
    std::vector<const void*> srcs(nblocks);
    std::vector<size_t> sizes(nblocks, static_cast<size_t>(lb));
    cudaMemcpyAttributes attr{};
    attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
    size_t attr_idx = 0;
    const double per_layer_batch = TimeMs(s, 5, [&] {
      for (int l = 0; l < kGeo.layers; ++l) {
        for (int i = 0; i < nblocks; ++i) {
          uint8_t* hp = h + i * bb + l * lb;
          uint8_t* dp = d + perm[i] * bb + l * lb;
          dsts[i] = dir == 0 ? static_cast<void*>(dp) : hp;
          srcs[i] = dir == 0 ? static_cast<const void*>(hp) : dp;
        }
        CK(cudaMemcpyBatchAsync(dsts.data(), srcs.data(), sizes.data(), nblocks, &attr, &attr_idx,
                                1, s));
      }
    });
    std::printf("%s  plain cudaMemcpyAsync %7.2f GB/s | per block %7.2f GB/s (%.0f%%) | per layer-of-block %7.2f GB/s (%.0f%%) | one batch per layer %7.2f GB/s (%.0f%%)\n",
                name, GBs(total, plain), GBs(total, per_block), 100 * plain / per_block,
                GBs(total, per_layer), 100 * plain / per_layer, GBs(total, per_layer_batch),
                100 * plain / per_layer_batch);
  }
}

void GatherScatter(cudaStream_t s, int nblocks) {
  const int64_t te = kGeo.tensor_elems(), bb = kGeo.block_bytes(), total = bb * nblocks;
  const int64_t eng_blocks = nblocks * 2;
  std::vector<DeviceBuffer> layers;
  std::vector<void*> k, v;
  for (int l = 0; l < kGeo.layers; ++l) {
    layers.emplace_back(static_cast<size_t>(eng_blocks * 2 * te * 2));
    CK(cudaMemset(layers.back().get(), 0, layers.back().size()));
    k.push_back(layers.back().get());
    v.push_back(layers.back().as<uint8_t>() + eng_blocks * te * 2);
  }
  DeviceBuffer kt(k.data(), k.size() * 8), vt(v.data(), v.size() * 8);
  std::vector<int32_t> ids(eng_blocks);
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), std::mt19937(2));
  ids.resize(nblocks);
  DeviceBuffer ids_d(ids.data(), ids.size() * 4), pool(total), copy_dst(total);
  const PagedKvLayout e = PagedKvLayout::Nhd(kGeo, kt.as<void*>(), vt.as<void*>(), eng_blocks);
  const PayloadSlots slots{pool.get(), bb, nullptr};
  const double d2d = TimeMs(s, 10, [&] { CK(cudaMemcpyAsync(copy_dst.get(), pool.get(), total, cudaMemcpyDeviceToDevice, s)); });
  const double g = TimeMs(s, 10, [&] { Must(GatherBlocksGpu(e, ids_d.as<int32_t>(), nblocks, slots, LayerRange::All(kGeo), s)); });
  const double sc = TimeMs(s, 10, [&] { Must(ScatterBlocksGpu(slots, e, ids_d.as<int32_t>(), nblocks, LayerRange::All(kGeo), s)); });
  const double sc1 = TimeMs(s, 10, [&] { Must(ScatterBlocksGpu(slots, e, ids_d.as<int32_t>(), nblocks, LayerRange::One(3), s)); });
  std::printf("\n== gather/scatter (engine NHD pages <-> payload slots), %d blocks, %.0f MiB; GB/s count read + write ==\n",
              nblocks, total / 1048576.0);
  std::printf("D2D cudaMemcpyAsync %7.1f GB/s | gather %7.1f GB/s (%.0f%%) | scatter %7.1f GB/s (%.0f%%) | scatter one layer %7.1f GB/s\n",
              GBs(2.0 * total, d2d), GBs(2.0 * total, g), 100 * d2d / g, GBs(2.0 * total, sc), 100 * d2d / sc,
              GBs(2.0 * total / kGeo.layers, sc1));
}

void Attention(cudaStream_t s, bool quick) {
  struct Cfg { int seqs, ctx; };
  std::vector<Cfg> cfgs = {{1, 32768}, {8, 8192}, {32, 4096}, {128, 2048}};
  if (quick) cfgs = {{1, 8192}, {32, 1024}};
  const int qh = 32, kvh = 8, d = 128, bt = 16;
  std::printf("\n== paged decode attention, one layer: %d q heads, %d kv heads, head_dim %d, %d-token blocks ==\n", qh, kvh, d, bt);
  std::printf("%-10s %-8s %10s %12s %10s %12s %8s\n", "seqs x ctx", "kv", "KV MiB", "attn us", "attn GB/s", "D2D GB/s", "ratio");
  for (const Cfg& c : cfgs) {
    for (DType kv_t : {DType::kFp16, DType::kFp8E4M3}) {
      const int64_t eb = DTypeSize(kv_t), row = int64_t(kvh) * d;
      const int bps = c.ctx / bt;
      const int64_t nb = int64_t(c.seqs) * bps;
      const int64_t kv_bytes = 2 * nb * bt * row * eb;
      DeviceBuffer k(nb * bt * row * eb), v(nb * bt * row * eb), q(size_t(c.seqs) * qh * d * 2),
          out(size_t(c.seqs) * qh * d * 2), sc(nb * kvh * 2 * 4), copy_dst(kv_bytes / 2);
      CK(cudaMemset(k.get(), 0x11, k.size()));
      CK(cudaMemset(v.get(), 0x11, v.size()));
      CK(cudaMemset(q.get(), 0x11, q.size()));
      CK(cudaMemset(sc.get(), 0, sc.size()));
      std::vector<int32_t> table(nb), lens(c.seqs, c.ctx);
      std::iota(table.begin(), table.end(), 0);
      std::shuffle(table.begin(), table.end(), std::mt19937(3));
      DeviceBuffer t_d(table.data(), table.size() * 4), l_d(lens.data(), lens.size() * 4);
      PagedAttentionParams p;
      p.num_seqs = c.seqs;
      p.num_q_heads = qh;
      p.num_kv_heads = kvh;
      p.head_dim = d;
      p.block_tokens = bt;
      p.q_dtype = DType::kFp16;
      p.kv_dtype = kv_t;
      p.out_dtype = DType::kFp16;
      p.sm_scale = 1.0f / std::sqrt(float(d));
      p.q = q.get();
      p.kv.k = k.get();
      p.kv.v = v.get();
      p.kv.head_stride = d;
      p.kv.token_stride = row;
      p.kv.block_stride = bt * row;
      p.num_cache_blocks = nb;
      p.k_scales = sc.as<float>();
      p.v_scales = sc.as<float>() + kvh;
      p.scale_block_stride = 2 * kvh;
      p.block_table = t_d.as<int32_t>();
      p.max_blocks_per_seq = bps;
      p.context_lens = l_d.as<int32_t>();
      p.max_context_len = c.ctx;
      p.out = out.get();
      const size_t wsb = PagedAttentionGpuWorkspaceBytes(p);
      DeviceBuffer ws(wsb);
      const double t = TimeMs(s, 20, [&] { Must(PagedAttentionGpu(p, ws.get(), wsb, s)); });
      // The same bytes copied D2D (K then V region of one buffer): read + write counted.
      const double tc = TimeMs(s, 20, [&] {
        CK(cudaMemcpyAsync(copy_dst.get(), k.get(), kv_bytes / 2, cudaMemcpyDeviceToDevice, s));
        CK(cudaMemcpyAsync(copy_dst.get(), v.get(), kv_bytes / 2, cudaMemcpyDeviceToDevice, s));
      });
      const double attn_gbs = GBs(kv_bytes, t), copy_gbs = GBs(2.0 * kv_bytes, tc);
      std::printf("%4d x %-5d %-8s %10.1f %12.1f %10.1f %12.1f %7.0f%%\n", c.seqs, c.ctx, DTypeName(kv_t),
                  kv_bytes / 1048576.0, t * 1e3, attn_gbs, copy_gbs, 100 * attn_gbs / copy_gbs);
    }
  }
}

}  // namespace
}  // namespace kvt

int main(int argc, char** argv) {
  const std::string why = kvt::testing::NoGpuReason();
  if (!why.empty()) {
    std::printf("kvt_gpu_bench: skipped: %s\n", why.c_str());
    return 77;
  }
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  cudaDeviceProp prop{};
  int dev = 0, mem_khz = 0, bus_bits = 0;
  CK(cudaGetDevice(&dev));
  CK(cudaGetDeviceProperties(&prop, dev));
  cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, dev);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, dev);
  const double peak = 2.0 * mem_khz * 1e3 * bus_bits / 8 / 1e9;  // double data rate
  std::printf("device: %s, %d SMs, %.1f GiB, nominal memory bandwidth %.0f GB/s (%d-bit bus, %d MHz)\n",
              prop.name, prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0, peak, bus_bits,
              mem_khz / 1000);
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  kvt::Transfers(s, quick ? 64 : 256);
  kvt::GatherScatter(s, quick ? 64 : 256);
  kvt::Attention(s, quick);
  cudaStreamDestroy(s);
  return 0;
}
