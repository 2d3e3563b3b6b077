// kvtier-hbm-bench: block transfers through the store's own paths, each next to one plain copy of
// the same bytes from page-locked host memory measured in the same run.
//   H2D  prefetch to HBM from the host tier (per layer of every block, on the copy stream)
//   D2H  HBM tier reads back to host, one block at a time
// On a build without CUDA or a machine without a GPU the device is emulated (memcpy) and the
// figures say so. Usage: kvtier-hbm-bench [--blocks N] (default 256 blocks of 2 MiB).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "src/store.h"
#include "base/byte_pattern.h"
#include "tiers/host/pinned_buffer.h"

namespace kvt {
namespace {

double NowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void Must(const Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "kvtier-hbm-bench: %s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

double Best(int reps, const std::function<void()>& fn) {
  fn();  // warm-up
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const double t0 = NowMs();
    fn();
    best = std::min(best, NowMs() - t0);
  }
  return best;
}

int Main(int blocks) {
  char tmpl[] = "/tmp/kvtier-hbm-bench-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return 1;
  const std::string dir = tmpl;
  // Llama-3-8B KV geometry: 32 layers x {K,V} x 16 tokens x 8 heads x 128 x fp16 = 2 MiB.
  NamespaceDesc d;
  d.model = "hbm-bench";
  d.kv_dtype = "fp16";
  d.layers = 32;
  d.kv_heads = 8;
  d.head_dim = 128;
  d.block_tokens = 16;
  const uint64_t bb = 2ull << 20, total = bb * blocks;
  Options o;
  Must(o.Set("dir", dir), "options");
  Must(o.Set("host_bytes", std::to_string(total + (64ull << 20))), "options");
  Must(o.Set("host_mlock", "false"), "options");
  Must(o.Set("hbm_bytes", std::to_string(total + bb)), "options");
  auto opened = Store::Open(o);
  Must(opened.status(), "open");
  std::unique_ptr<Store> s = std::move(opened).value();
  auto ns_or = s->OpenNamespace(d);
  Must(ns_or.status(), "namespace");
  const uint64_t ns = *ns_or;
  std::vector<Hash128> keys;
  for (int i = 0; i < blocks; ++i) {
    keys.push_back(Hash128{uint64_t(i) + 1, 77});
    auto data = PatternBytes(i, bb);
    Must(s->Put(ns, keys.back(), i ? keys[i - 1] : Hash128{}, nullptr, data.data(), bb), "put");
  }
  DeviceMemory* dev = s->hbm()->device();
  std::printf("device: %s\n", dev->description().c_str());
  std::printf("%d blocks x 2 MiB (32 layers x 64 KiB), host tier memory %s\n", blocks,
              nlohmann::json::parse(s->StatsJson())["tiers"]["host"]["memory"]
                  .get<std::string>()
                  .c_str());

  const double h2d = Best(3, [&] {
    s->hbm()->DropNamespace(ns);
    auto t = s->Prefetch(ns, keys, Tier::kHbm);
    Must(t.status(), "prefetch");
    Must((*t)->Wait(-1), "prefetch wait");
  });
  // Into pageable memory (a plain std::vector), as a caller that registered nothing gets it: the
  // driver stages such a copy through its own pinned buffer.
  std::vector<uint8_t> out(bb);
  const double d2h = Best(3, [&] {
    for (const Hash128& k : keys) Must(s->hbm()->Read(ns, k, out.data(), bb, nullptr), "read");
  });

  // The same bytes in one copy each way, page-locked host memory <-> one device region.
  auto pinned = PinnedBuffer::Allocate(total, /*try_lock=*/true);
  Must(pinned.status(), "pinned buffer");
  std::memset(pinned->data(), 1, total);
  // Into page-locked memory (an engine's registered host pool): straight DMA.
  const double d2h_pinned = Best(3, [&] {
    for (size_t i = 0; i < keys.size(); ++i) {
      Must(s->hbm()->Read(ns, keys[i], pinned->data() + i * bb, bb, nullptr), "read");
    }
  });
  auto region = DeviceRegion::Allocate(dev, total);
  Must(region.status(), "device region");
  auto one_copy = [&](bool to_device) {
    GpuStream st = dev->copy_stream();
    Must(to_device ? dev->CopyAsync(region->data(), pinned->data(), total, st)
                   : dev->CopyAsync(pinned->data(), region->data(), total, st),
         "copy");
    Must(dev->Synchronize(st), "sync");
  };
  const double plain_h2d = Best(3, [&] { one_copy(true); });
  const double plain_d2h = Best(3, [&] { one_copy(false); });
  auto gbs = [&](double ms) { return total / (ms * 1e-3) / 1e9; };
  std::printf("H2D  prefetch host tier -> HBM, layer by layer %7.2f GB/s | plain copy %7.2f GB/s "
              "(%.0f%%)\n",
              gbs(h2d), gbs(plain_h2d), 100 * plain_h2d / h2d);
  std::printf("D2H  HBM tier read, block by block, pageable    %7.2f GB/s | plain copy %7.2f GB/s "
              "(%.0f%%)\n",
              gbs(d2h), gbs(plain_d2h), 100 * plain_d2h / d2h);
  std::printf("D2H  HBM tier read, block by block, page-locked %7.2f GB/s | plain copy %7.2f GB/s "
              "(%.0f%%)\n",
              gbs(d2h_pinned), gbs(plain_d2h), 100 * plain_d2h / d2h_pinned);
  region->Reset();  // device memory before the device (the store owns it)
  s.reset();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}

}  // namespace
}  // namespace kvt

int main(int argc, char** argv) {
  int blocks = 256;
  if (argc == 3 && std::strcmp(argv[1], "--blocks") == 0) blocks = std::atoi(argv[2]);
  if (blocks <= 0 || (argc != 1 && argc != 3)) {
    std::fprintf(stderr, "usage: kvtier-hbm-bench [--blocks N]\n");
    return 2;
  }
  return kvt::Main(blocks);
}
