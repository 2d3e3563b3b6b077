// The Store's HBM-tier half: opening the tier and the prefetch pipeline, demotion HBM -> host,
// the device for the kvt_gpu_* paths, and the HBM part of the stats. Kept apart from store.cc so
// the core movement host <-> NVMe reads on its own.
#include <nlohmann/json.hpp>

#include "base/counter.h"
#include "base/log.h"
#include "io/aligned_buffer.h"
#include "src/store.h"

namespace kvt {
Status Store::StartHbmAndPrefetch() {
  if (opts_.hbm_bytes > 0) {
    device_ = OpenDeviceMemory(/*force_emulated=*/false);
    if (device_->emulated()) {
      KVT_LOG(kInfo, "HBM tier " + device_->description() + ": same behaviour, host speed");
    }
    HbmTierOptions ho;
    ho.budget_bytes = opts_.hbm_bytes;
    ho.policy = opts_.host_policy;  // one policy option for the memory tiers
    KVT_ASSIGN_OR_RETURN(hbm_, HbmTier::Create(ho, device_.get()));
    Store* self = this;
    hbm_->SetEvictSink(
        [self](const BlockMeta& m, const uint8_t* data) {
          self->DemoteFromHbm(m, data);
          self->NoteGone(m.ns, m.key);  // an event only when the host tier did not take it
        });
  }
  PrefetchPipeline::Tiers t;
  t.host = host_.get();
  t.nvme = nvme_.get();
  t.hbm = hbm_.get();
  prefetch_ = std::make_unique<PrefetchPipeline>(t);
  return Status::Ok();
}

DeviceMemory* Store::Device() {
  std::call_once(device_once_, [this] {
    if (!device_) device_ = OpenDeviceMemory(/*force_emulated=*/false);
  });
  return device_.get();
}

void Store::DemoteFromHbm(const BlockMeta& meta, const uint8_t* device_data) {
  BlockMeta there;
  if (host_->Lookup(meta.ns, meta.key, &there, /*touch=*/false) && there.parent == meta.parent &&
      there.checksum == meta.checksum) {
    Add(counters_.hbm_demotions_skipped);  // usually so: blocks reach HBM from the host tier
    return;
  }
  const uint8_t* src = device_data;
  thread_local AlignedBuffer staging;
  if (!hbm_->device()->emulated()) {
    // Device bytes: copy them out first (the slot stays pinned until we return).
    if (staging.size() < meta.payload_bytes) {
      auto b = AlignedBuffer::Allocate(AlignUp(meta.payload_bytes, AlignedBuffer::kPage), false);
      if (!b.ok()) {
        Add(counters_.hbm_demotion_failures);
        return;
      }
      staging = std::move(b).value();
    }
    DeviceMemory* dev = hbm_->device();
    Status st = dev->CopyAsync(staging.data(), device_data, meta.payload_bytes,
                               dev->copy_stream());
    if (st.ok()) {
      auto ev = dev->Record(dev->copy_stream());
      st = ev.ok() ? (*ev)->Wait() : ev.status();
    }
    if (!st.ok()) {
      KVT_LOG(kWarn, "HBM demotion copy failed: " + st.ToString());
      Add(counters_.hbm_demotion_failures);
      return;
    }
    src = staging.data();
  }
  // On eviction a failed demotion only loses a cached block (counted), as host -> NVMe does.
  Status st = host_->Put(meta, src, /*checksum_known=*/true);
  Add(st.ok() ? counters_.hbm_demotions : counters_.hbm_demotion_failures);
}

void Store::HbmStatsJson(nlohmann::json* root) const {
  auto& j = *root;
  auto get = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  j["store"]["hbm_demotions"] = get(counters_.hbm_demotions);
  j["store"]["hbm_demotions_skipped"] = get(counters_.hbm_demotions_skipped);
  j["store"]["hbm_demotion_failures"] = get(counters_.hbm_demotion_failures);
  if (hbm_) hbm_->StatsJson(&j["tiers"]["hbm"]);
  prefetch_->StatsJson(&j["prefetch"]);
}

}  // namespace kvt
