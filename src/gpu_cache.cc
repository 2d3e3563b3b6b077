#include "src/gpu_cache.h"

#include <cstring>

#include "io/aligned_buffer.h"
#include "kernels/gpu_kernels.h"
#include "kernels/paged_copy.h"
#include "kernels/validate.h"
#include "src/mover.h"
#include "src/prefetch.h"

namespace kvt {

// What one device load holds until its stream has run: the pins on its sources, the id arrays it
// uploaded, its device scratch.
struct GpuCache::LoadJob {
  std::vector<PinnedBlock> host;
  std::vector<HbmBlock> hbm;
  std::vector<int32_t> ids;  // [host ids][hbm ids][hbm slots]
  DeviceRegion scratch;
};

StatusOr<std::unique_ptr<GpuCache>> GpuCache::Register(Store* store, uint64_t ns, const Desc& d) {
  KVT_ASSIGN_OR_RETURN(NamespaceRef info, store->Namespace(ns));
  const BlockLayout geo = LayoutOf(info->geometry);
  if (d.layers != static_cast<uint32_t>(geo.layers)) {
    return Status::InvalidArgument("kvt_gpu_register: layers " + std::to_string(d.layers) +
                                   " differs from the namespace's " + std::to_string(geo.layers));
  }
  if (d.k_layers == nullptr || (!geo.mla && d.v_layers == nullptr)) {
    return Status::InvalidArgument(std::string("kvt_gpu_register: ") +
                                   (d.k_layers == nullptr ? "k_layers" : "v_layers") + " is NULL");
  }
  for (uint32_t l = 0; l < d.layers; ++l) {
    if (d.k_layers[l] == nullptr || (!geo.mla && d.v_layers[l] == nullptr)) {
      return Status::InvalidArgument("kvt_gpu_register: layer " + std::to_string(l) +
                                     " has a NULL K or V pointer");
    }
  }
  if (d.num_blocks <= 0 || d.num_blocks > INT32_MAX) {
    return Status::InvalidArgument("kvt_gpu_register: num_blocks " + std::to_string(d.num_blocks) +
                                   " is not in [1, 2^31)");
  }
  std::unique_ptr<GpuCache> c(new GpuCache());
  c->store_ = store;
  c->ns_ = ns;
  if (d.host_memory) {
    c->own_device_ = OpenEmulatedDeviceMemory("engine cache registered as host memory");
    c->dev_ = c->own_device_.get();
  } else {
    c->dev_ = store->Device();
    if (c->dev_->emulated()) {
      return Status::Unavailable("kvt_gpu_register: no GPU for a device KV cache: the store's "
                                 "device is " + c->dev_->description() +
                                 "; register host memory with KVT_GPU_HOST_MEMORY for the CPU path");
    }
  }
  c->k_.assign(d.k_layers, d.k_layers + d.layers);
  if (!geo.mla) c->v_.assign(d.v_layers, d.v_layers + d.layers);
  PagedKvLayout& p = c->layout_;
  p = PagedKvLayout::Nhd(geo, c->k_.data(), geo.mla ? nullptr : c->v_.data(), d.num_blocks);
  if (d.block_stride != 0 || d.token_stride != 0 || d.head_stride != 0) {
    p.block_stride = d.block_stride;
    p.token_stride = d.token_stride;
    p.head_stride = d.head_stride;
  }
  KVT_RETURN_IF_ERROR(ValidatePagedKvLayout(p).WithContext("kvt_gpu_register"));
  if (!c->dev_->emulated()) {
    // The kernels read the per-layer pointer arrays on the device.
    const size_t bytes = sizeof(void*) * d.layers;
    KVT_ASSIGN_OR_RETURN(c->k_dev_, DeviceRegion::Allocate(c->dev_, bytes));
    KVT_RETURN_IF_ERROR(c->dev_->CopyAsync(c->k_dev_.data(), c->k_.data(), bytes, nullptr));
    p.k_layers = reinterpret_cast<void* const*>(c->k_dev_.data());
    if (!geo.mla) {
      KVT_ASSIGN_OR_RETURN(c->v_dev_, DeviceRegion::Allocate(c->dev_, bytes));
      KVT_RETURN_IF_ERROR(c->dev_->CopyAsync(c->v_dev_.data(), c->v_.data(), bytes, nullptr));
      p.v_layers = reinterpret_cast<void* const*>(c->v_dev_.data());
    }
    KVT_RETURN_IF_ERROR(c->dev_->Synchronize(nullptr));
  }
  return c;
}

GpuCache::~GpuCache() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return loads_in_flight_ == 0; });
}

Status GpuCache::CheckIds(const char* fn, std::span<const int32_t> ids) const {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= layout_.num_blocks) {
      return Status::InvalidArgument(std::string(fn) + ": block_ids[" + std::to_string(i) +
                                     "] = " + std::to_string(ids[i]) + " is outside [0, " +
                                     std::to_string(layout_.num_blocks) + ")");
    }
  }
  return Status::Ok();
}

Status GpuCache::Save(std::span<const int32_t> block_ids, std::span<const Hash128> keys,
                      const Hash128* parents, const int32_t* tokens, GpuStream stream) {
  KVT_RETURN_IF_ERROR(CheckIds("kvt_gpu_save", block_ids));
  const size_t n = keys.size();
  const int64_t bb = layout_.geo.block_bytes();
  const PayloadSlots staging_view{nullptr, bb, nullptr};
  std::vector<uint8_t> payloads(n * bb);
  if (dev_->emulated()) {
    PayloadSlots dst = staging_view;
    dst.base = payloads.data();
    KVT_RETURN_IF_ERROR(GatherBlocksRef(layout_, block_ids.data(), static_cast<int64_t>(n), dst,
                                        LayerRange::All(layout_.geo)));
  } else {
    // Device scratch: [block ids][payload staging].
    const size_t ids_bytes = AlignUp(n * sizeof(int32_t), 256);
    KVT_ASSIGN_OR_RETURN(DeviceRegion scratch, TakeScratch(ids_bytes + n * bb));
    uint8_t* stage = scratch.data() + ids_bytes;
    Status st = dev_->CopyAsync(scratch.data(), block_ids.data(), n * sizeof(int32_t), stream);
    PayloadSlots dst = staging_view;
    dst.base = stage;
    if (st.ok()) {
      st = GatherBlocksGpu(layout_, reinterpret_cast<const int32_t*>(scratch.data()),
                           static_cast<int64_t>(n), dst, LayerRange::All(layout_.geo), stream);
    }
    if (st.ok()) st = dev_->CopyAsync(payloads.data(), stage, n * bb, stream);
    // Wait even after a failed launch: the scratch is reused once this returns.
    Status sync = dev_->Synchronize(stream);
    ReturnScratch(std::move(scratch));
    KVT_RETURN_IF_ERROR(st);
    KVT_RETURN_IF_ERROR(sync);
  }
  const uint32_t bt = static_cast<uint32_t>(layout_.geo.block_tokens);
  for (size_t i = 0; i < n; ++i) {
    const Hash128 parent = parents != nullptr ? parents[i] : (i == 0 ? Hash128{} : keys[i - 1]);
    KVT_RETURN_IF_ERROR(store_
                            ->Put(ns_, keys[i], parent, tokens != nullptr ? tokens + i * bt : nullptr,
                                  payloads.data() + i * bb, bb)
                            .WithContext("kvt_gpu_save: block " + std::to_string(i)));
  }
  return Status::Ok();
}

Status GpuCache::Load(std::span<const Hash128> keys, std::span<const int32_t> block_ids,
                      GpuStream stream, void* const* layer_events) {
  KVT_RETURN_IF_ERROR(CheckIds("kvt_gpu_load", block_ids));
  if (dev_->emulated()) return LoadOnHost(keys, block_ids);
  return LoadOnDevice(keys, block_ids, stream, layer_events);
}

Status GpuCache::LoadOnHost(std::span<const Hash128> keys, std::span<const int32_t> block_ids) {
  // Every block through Store::GetBatch (HBM, host, NVMe in one batch, remote; verified), then
  // the CPU scatter.
  const int64_t bb = layout_.geo.block_bytes();
  std::vector<uint8_t> staging(keys.size() * bb);
  std::vector<BatchEntry> v(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    v[i].key = keys[i];
    v[i].buf = staging.data() + i * bb;
    v[i].bytes = static_cast<size_t>(bb);
  }
  KVT_RETURN_IF_ERROR(store_->GetBatch(ns_, v));
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!v[i].status.ok()) return v[i].status.WithContext("kvt_gpu_load: key " + std::to_string(i));
  }
  const PayloadSlots src{staging.data(), bb, nullptr};
  for (int32_t l = 0; l < layout_.geo.layers; ++l) {  // the device path's order
    KVT_RETURN_IF_ERROR(ScatterBlocksRef(src, layout_, block_ids.data(),
                                         static_cast<int64_t>(keys.size()), LayerRange::One(l)));
  }
  return Status::Ok();
}

StatusOr<DeviceRegion> GpuCache::TakeScratch(size_t bytes) {
  {
    std::lock_guard<std::mutex> l(mu_);
    for (size_t i = 0; i < scratch_.size(); ++i) {
      if (scratch_[i].size() >= bytes) {
        DeviceRegion r = std::move(scratch_[i]);
        scratch_.erase(scratch_.begin() + static_cast<ptrdiff_t>(i));
        return r;
      }
    }
  }
  return DeviceRegion::Allocate(dev_, bytes);
}

void GpuCache::ReturnScratch(DeviceRegion r) {
  std::lock_guard<std::mutex> l(mu_);
  scratch_.push_back(std::move(r));
}

Status GpuCache::LoadOnDevice(std::span<const Hash128> keys, std::span<const int32_t> block_ids,
                              GpuStream stream, void* const* layer_events) {
  auto job = std::make_unique<LoadJob>();
  Mover* mover = store_->mover();
  HbmTier* hbm = mover->hbm();
  std::vector<int32_t> host_ids, hbm_ids, hbm_slots;
  // HBM blocks are read in place (pinned); every other block is pinned in the host tier through
  // the mover (NVMe reads in one batch, the remote owner asked too), as a prefetch would.
  std::vector<Hash128> fetch;
  std::vector<size_t> fetch_pos;
  for (size_t i = 0; i < keys.size(); ++i) {
    HbmBlock hb;
    if (hbm != nullptr && hbm->Pin(ns_, keys[i], &hb)) {
      job->hbm.push_back(hb);
      hbm_ids.push_back(block_ids[i]);
      hbm_slots.push_back(static_cast<int32_t>(hb.slot));
      continue;
    }
    fetch.push_back(keys[i]);
    fetch_pos.push_back(i);
  }
  std::vector<SlotPin> pins(fetch.size());
  std::vector<FetchResult> got(fetch.size());
  FetchOptions fo;
  fo.skip_hbm = true;
  fo.block_bytes = static_cast<uint64_t>(layout_.geo.block_bytes());
  mover->FetchToHost(ns_, fetch, pins, got, fo);
  Status st;
  for (size_t k = 0; k < fetch.size(); ++k) {
    if (got[k].status.ok()) {
      job->host.push_back(pins[k]);
      host_ids.push_back(block_ids[fetch_pos[k]]);
    } else if (st.ok()) {
      st = got[k].status.WithContext("kvt_gpu_load: key " + std::to_string(fetch_pos[k]));
    }
  }
  auto release = [mover, hbm](LoadJob& j) {
    for (const PinnedBlock& b : j.host) mover->host()->Unpin(b);
    for (const HbmBlock& b : j.hbm) hbm->Unpin(b);
  };
  if (!st.ok()) {
    release(*job);
    return st;
  }
  const int64_t bb = layout_.geo.block_bytes(), lb = layout_.geo.layer_bytes();
  const size_t nh = host_ids.size(), nd = hbm_ids.size();
  job->ids = host_ids;
  job->ids.insert(job->ids.end(), hbm_ids.begin(), hbm_ids.end());
  job->ids.insert(job->ids.end(), hbm_slots.begin(), hbm_slots.end());
  const size_t ids_bytes = AlignUp(job->ids.size() * sizeof(int32_t), 256);
  auto scratch = TakeScratch(ids_bytes + nh * bb);
  if (!scratch.ok()) {
    release(*job);
    return scratch.status();
  }
  job->scratch = std::move(scratch).value();
  uint8_t* base = job->scratch.data();
  const int32_t* d_host_ids = reinterpret_cast<const int32_t*>(base);
  const int32_t* d_hbm_ids = d_host_ids + nh;
  const int32_t* d_slots = d_hbm_ids + nd;
  uint8_t* stage = base + ids_bytes;
  // Everything below is enqueued on the caller's stream; the first failure stops enqueuing, and
  // the job is still released only after the stream has run what was enqueued.
  st = dev_->CopyAsync(base, job->ids.data(), job->ids.size() * sizeof(int32_t), stream);
  std::vector<DeviceCopy> ops(nh);
  for (int32_t l = 0; l < layout_.geo.layers && st.ok(); ++l) {
    for (size_t j = 0; j < nh; ++j) {
      ops[j] = {stage + j * bb + l * lb, job->host[j].data + l * lb, static_cast<size_t>(lb)};
    }
    if (st.ok() && nh > 0) st = dev_->CopyBatchAsync(ops.data(), nh, stream);
    if (st.ok() && nh > 0) {
      st = ScatterBlocksGpu(PayloadSlots{stage, bb, nullptr}, layout_, d_host_ids,
                            static_cast<int64_t>(nh), LayerRange::One(l), stream);
    }
    if (st.ok() && nd > 0) {
      st = ScatterBlocksGpu(PayloadSlots{hbm->base(), static_cast<int64_t>(hbm->slot_bytes()),
                                         d_slots},
                            layout_, d_hbm_ids, static_cast<int64_t>(nd), LayerRange::One(l),
                            stream);
    }
    if (st.ok() && layer_events != nullptr && layer_events[l] != nullptr) {
      st = dev_->RecordExternal(layer_events[l], stream);
    }
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    ++loads_in_flight_;
  }
  LoadJob* raw = job.release();
  Status done = dev_->OnComplete(stream, [this, raw, release] {
    std::unique_ptr<LoadJob> j(raw);
    release(*j);
    ReturnScratch(std::move(j->scratch));
    std::lock_guard<std::mutex> l(mu_);
    --loads_in_flight_;
    cv_.notify_all();
  });
  return st.ok() ? done : st;
}

}  // namespace kvt
