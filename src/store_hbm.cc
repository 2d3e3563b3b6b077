// The Store's HBM-tier half: opening the tier, the mover and the prefetch pipeline, the device for
// the kvt_gpu_* paths, and the HBM part of the stats (demotion HBM -> host is the mover's).
#include <nlohmann/json.hpp>

#include "base/log.h"
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
  }
  Mover::Tiers t;
  t.host = host_.get();
  t.hbm = hbm_.get();
  t.nvme = nvme_.get();
  t.remote = remote_adapter_.get();
  mover_ = std::make_unique<Mover>(opts_, t, std::move(admission_));
  prefetch_ = std::make_unique<PrefetchPipeline>(mover_.get());
  return Status::Ok();
}

DeviceMemory* Store::Device() {
  std::call_once(device_once_, [this] {
    if (!device_) device_ = OpenDeviceMemory(/*force_emulated=*/false);
  });
  return device_.get();
}

void Store::HbmStatsJson(nlohmann::json* root) const {
  auto& j = *root;
  if (hbm_) hbm_->StatsJson(&j["tiers"]["hbm"]);
  prefetch_->StatsJson(&j["prefetch"]);
}

}  // namespace kvt
