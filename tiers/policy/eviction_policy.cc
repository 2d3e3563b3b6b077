#include "tiers/policy/eviction_policy.h"

#include "tiers/policy/chain_lru_policy.h"
#include "tiers/policy/lru_policy.h"
#include "tiers/policy/s3fifo_policy.h"

namespace kvt {

StatusOr<std::unique_ptr<EvictionPolicy>> MakeEvictionPolicy(std::string_view name) {
  if (name == "lru") return std::unique_ptr<EvictionPolicy>(new LruPolicy());
  if (name == "s3fifo") return std::unique_ptr<EvictionPolicy>(new S3FifoPolicy());
  if (name == "chain_lru") return std::unique_ptr<EvictionPolicy>(new ChainLruPolicy());
  return Status::InvalidArgument("eviction policy '" + std::string(name) +
                                 "' is not one of lru, s3fifo, chain_lru");
}

}  // namespace kvt
