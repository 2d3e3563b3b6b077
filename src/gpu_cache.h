// GpuCache: an engine's own paged KV cache registered with the store (kvt_gpu_register), and the
// two paths between it and the store:
//   Save  engine blocks -> gather kernel -> contiguous layer-major payloads -> Store::Put (host
//         tier, then NVMe as the write policy says). Synchronous: when it returns, the engine may
//         reuse the blocks.
//   Load  stored blocks -> engine blocks, enqueued on the caller's stream layer by layer; after
//         layer l's copies it records the caller's layer_events[l], so the engine's compute stream
//         waits for layer l only. Blocks resident in the HBM tier are scattered from their pool
//         slots (device to device); the rest are copied from their pinned host-tier slots (read
//         from NVMe into the host tier first, synchronously). Pins are dropped when the stream
//         has run the copies.
//
// A cache registered with host_memory = true describes host memory: both paths then run on the
// CPU reference kernels (streams and events are ignored; Load is complete when it returns). This
// is how CI exercises the paths, and it serves CPU-only engines. A device cache needs the store's
// device to be a real GPU: without one, Register returns Unavailable saying why.
//
// Thread safety: Save and Load may be called from several threads at once; the destructor must
// not race them (it waits for loads still running on their streams).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "base/status.h"
#include "kernels/kv_layout.h"
#include "src/store.h"
#include "tiers/hbm/device_memory.h"

namespace kvt {

class GpuCache {
 public:
  struct Desc {
    uint32_t layers = 0;              // must equal the namespace's
    void* const* k_layers = nullptr;  // [layers] K (MLA: latent) of block 0, per layer
    void* const* v_layers = nullptr;  // [layers] V of block 0; null for MLA
    int64_t num_blocks = 0;           // valid engine block ids: [0, num_blocks)
    int64_t block_stride = 0, token_stride = 0, head_stride = 0;  // elements; all 0: NHD pages
    bool host_memory = false;         // the pointers are host memory: CPU reference path
  };

  // InvalidArgument names the bad field; Unavailable: a device cache without a GPU.
  static StatusOr<std::unique_ptr<GpuCache>> Register(Store* store, uint64_t ns, const Desc& d);
  ~GpuCache();
  GpuCache(const GpuCache&) = delete;
  GpuCache& operator=(const GpuCache&) = delete;

  // Stores engine block block_ids[i] under keys[i], with parent parents[i] (parents null: the
  // previous key, the namespace root for i = 0) and tokens[i * block_tokens ..] (tokens may be
  // null). Every id is checked before anything moves. The first Put failure is returned (blocks
  // before it are stored).
  Status Save(std::span<const int32_t> block_ids, std::span<const Hash128> keys,
              const Hash128* parents, const int32_t* tokens, GpuStream stream);
  // Copies stored keys[i] into engine block block_ids[i]. NotFound when any key is not stored
  // (nothing is copied). layer_events: null, or [layers] cudaEvent_t (entries may be null).
  Status Load(std::span<const Hash128> keys, std::span<const int32_t> block_ids, GpuStream stream,
              void* const* layer_events);

  const BlockLayout& geometry() const { return layout_.geo; }
  bool host_memory() const { return dev_->emulated(); }

 private:
  struct LoadJob;
  GpuCache() = default;
  Status CheckIds(const char* fn, std::span<const int32_t> ids) const;
  Status LoadOnHost(std::span<const Hash128> keys, std::span<const int32_t> block_ids);
  Status LoadOnDevice(std::span<const Hash128> keys, std::span<const int32_t> block_ids,
                      GpuStream stream, void* const* layer_events);
  // Device scratch reused across loads (a completion callback may not free device memory).
  StatusOr<DeviceRegion> TakeScratch(size_t bytes);
  void ReturnScratch(DeviceRegion r);

  Store* store_ = nullptr;
  uint64_t ns_ = 0;
  std::unique_ptr<DeviceMemory> own_device_;  // host-memory caches: an emulated device
  DeviceMemory* dev_ = nullptr;
  std::vector<void*> k_, v_;     // the caller's pointer arrays, copied
  DeviceRegion k_dev_, v_dev_;   // the same arrays in device memory (kernels read them there)
  PagedKvLayout layout_;         // pointer arrays readable by whoever runs the copies
  std::mutex mu_;
  std::condition_variable cv_;
  int loads_in_flight_ = 0;              // GUARDED_BY(mu_)
  std::vector<DeviceRegion> scratch_;    // GUARDED_BY(mu_)
};

}  // namespace kvt
