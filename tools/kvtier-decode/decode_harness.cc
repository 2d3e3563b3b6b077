#include "tools/kvtier-decode/decode_harness.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <random>
#include <vector>

#include "base/units.h"
#include "io/aligned_buffer.h"
#include "kernels/float_convert.h"
#include "kernels/gpu_kernels.h"
#include "kernels/paged_attention.h"
#include "src/store.h"

namespace kvt {
namespace {

double NowMs() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

Status Validate(const DecodeConfig& c) {
  if (c.layers <= 0 || c.kv_heads <= 0 || c.q_heads <= 0 || c.head_dim <= 0 ||
      c.block_tokens <= 0 || c.seqs <= 0 || c.steps <= 0) {
    return Status::InvalidArgument("layers, kv_heads, q_heads, head_dim, block_tokens, seqs and "
                                   "steps must be positive");
  }
  if (c.q_heads % c.kv_heads != 0) {
    return Status::InvalidArgument("q_heads must be a multiple of kv_heads");
  }
  if (c.context_tokens < c.block_tokens) {
    return Status::InvalidArgument("context_tokens must hold at least one block");
  }
  if (!(c.nvme_fraction >= 0 && c.nvme_fraction <= 1)) {
    return Status::InvalidArgument("nvme_fraction must be in [0, 1]");
  }
  if (c.dtype != DType::kFp16 && c.dtype != DType::kBf16) {
    return Status::InvalidArgument("dtype must be fp16 or bf16");
  }
  return Status::Ok();
}

// Everything one run owns: the store, the original payloads, the attention operands.
class Harness {
 public:
  Harness(const DecodeConfig& c, std::ostream* log) : c_(c), log_(log) {}
  ~Harness() {
    for (DeviceRegion* r : {&d_q_, &d_lens_, &d_table_, &d_out_, &d_ws_}) r->Reset();
    store_.reset();  // after the regions: it owns their device
    if (!tmp_dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(tmp_dir_, ec);
    }
  }

  Status Run(DecodeResult* r);

 private:
  Status Setup();
  Status Reset();  // back to: NVMe part on NVMe only, the rest in host, nothing in HBM
  StatusOr<std::unique_ptr<Ticket>> Prefetch() { return store_->Prefetch(ns_, keys_, Tier::kHbm); }
  // Points the block table at the ticket's HBM slots (uploads it on a GPU).
  Status BindSlots(const Ticket& t);
  Status Compute(int32_t layer);
  Status Finish() { return gpu_ ? dev_->Synchronize(nullptr) : Status::Ok(); }
  Status Check(double* max_err);
  PagedAttentionParams Params(int32_t layer, const void* pool, int64_t slot_bytes,
                              int64_t pool_blocks, const int32_t* table, const int32_t* lens,
                              const void* q, void* out) const;
  void Log(const std::string& s) {
    if (log_ != nullptr) *log_ << s << std::endl;
  }

  const DecodeConfig c_;
  std::ostream* log_;
  std::string tmp_dir_;
  std::unique_ptr<Store> store_;
  uint64_t ns_ = 0;
  BlockLayout geo_;
  int32_t blocks_per_seq_ = 0;
  size_t nvme_per_seq_ = 0;
  std::vector<Hash128> keys_;       // seq-major
  std::vector<uint8_t> payloads_;   // [blocks][block_bytes], what was stored
  std::vector<uint16_t> q_;         // [seqs][q_heads][head_dim]
  std::vector<int32_t> lens_, table_;
  std::vector<float> out_;          // [layers][seqs][q_heads][head_dim] (copied back on a GPU)
  // GPU operands (device memory) when the HBM tier is on a GPU.
  bool gpu_ = false;
  DeviceMemory* dev_ = nullptr;
  DeviceRegion d_q_, d_lens_, d_table_, d_out_, d_ws_;
  size_t ws_bytes_ = 0;
};

Status Harness::Setup() {
  geo_ = BlockLayout{c_.layers, c_.kv_heads, c_.head_dim, c_.block_tokens, c_.dtype, false};
  blocks_per_seq_ = c_.context_tokens / c_.block_tokens;
  nvme_per_seq_ = static_cast<size_t>(std::floor(blocks_per_seq_ * c_.nvme_fraction));
  const uint64_t bb = static_cast<uint64_t>(geo_.block_bytes());
  const uint64_t n = uint64_t(c_.seqs) * blocks_per_seq_;
  const uint64_t total = n * bb;

  std::string dir = c_.dir;
  if (dir.empty()) {
    char tmpl[] = "/tmp/kvtier-decode-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return Status::FromErrno(errno, "mkdtemp");
    dir = tmp_dir_ = tmpl;
  }
  // Budgets with room to spare: the measurement is about transfers, not eviction.
  const uint64_t slab = std::max<uint64_t>(16ull << 20, AlignUp(bb, 4096));
  Options o;
  KVT_RETURN_IF_ERROR(o.Set("dir", dir));
  KVT_RETURN_IF_ERROR(o.Set("host_slab_bytes", std::to_string(slab)));
  KVT_RETURN_IF_ERROR(o.Set("host_bytes", std::to_string(AlignUp(2 * total + 2 * slab, slab))));
  KVT_RETURN_IF_ERROR(o.Set("host_mlock", "false"));
  KVT_RETURN_IF_ERROR(o.Set("hbm_bytes", std::to_string((n + 1) * AlignUp(bb, 256))));
  KVT_RETURN_IF_ERROR(o.Set("nvme_segment_bytes", std::to_string(8ull << 20)));
  KVT_RETURN_IF_ERROR(
      o.Set("nvme_bytes", std::to_string(AlignUp(2 * total + (64ull << 20), 8ull << 20))));
  KVT_ASSIGN_OR_RETURN(store_, Store::Open(o));
  NamespaceDesc d;
  d.model = "kvtier-decode-harness";
  d.kv_dtype = DTypeName(c_.dtype);
  d.layers = c_.layers;
  d.kv_heads = c_.kv_heads;
  d.head_dim = c_.head_dim;
  d.block_tokens = c_.block_tokens;
  KVT_ASSIGN_OR_RETURN(ns_, store_->OpenNamespace(d));
  dev_ = store_->hbm()->device();
  gpu_ = !dev_->emulated();

  // KV values ~ N(0, 1) rounded to the dtype; queries likewise.
  std::mt19937_64 rng(12345);
  std::normal_distribution<float> normal(0.f, 1.f);
  const bool f16 = c_.dtype == DType::kFp16;
  auto half = [&](float f) { return f16 ? F32ToF16Bits(f) : F32ToBf16Bits(f); };
  payloads_.resize(total);
  uint16_t* p = reinterpret_cast<uint16_t*>(payloads_.data());
  for (uint64_t i = 0; i < total / 2; ++i) p[i] = half(normal(rng));
  q_.resize(size_t(c_.seqs) * c_.q_heads * c_.head_dim);
  for (auto& v : q_) v = half(normal(rng));

  for (int32_t s = 0; s < c_.seqs; ++s) {
    std::vector<int32_t> toks(size_t(blocks_per_seq_) * c_.block_tokens);
    for (size_t i = 0; i < toks.size(); ++i) toks[i] = s * 1000003 + static_cast<int32_t>(i);
    std::vector<Hash128> k;
    KVT_RETURN_IF_ERROR(store_->HashTokens(ns_, toks, &k));
    for (size_t j = 0; j < k.size(); ++j) {
      const uint64_t idx = keys_.size();
      KVT_RETURN_IF_ERROR(store_->Put(ns_, k[j], j ? k[j - 1] : Hash128{}, &toks[j * c_.block_tokens],
                                      payloads_.data() + idx * bb, bb));
      keys_.push_back(k[j]);
    }
  }
  KVT_RETURN_IF_ERROR(store_->Flush());  // write-back: every block is now on NVMe as well
  lens_.assign(c_.seqs, blocks_per_seq_ * c_.block_tokens);
  table_.assign(n, 0);
  out_.assign(size_t(c_.layers) * c_.seqs * c_.q_heads * c_.head_dim, 0.f);
  if (gpu_) {
    PagedAttentionParams p0 = Params(0, nullptr, 0, 0, nullptr, nullptr, nullptr, nullptr);
    ws_bytes_ = PagedAttentionGpuWorkspaceBytes(p0);
    KVT_ASSIGN_OR_RETURN(d_q_, DeviceRegion::Allocate(dev_, q_.size() * 2));
    KVT_ASSIGN_OR_RETURN(d_lens_, DeviceRegion::Allocate(dev_, lens_.size() * 4));
    KVT_ASSIGN_OR_RETURN(d_table_, DeviceRegion::Allocate(dev_, table_.size() * 4));
    KVT_ASSIGN_OR_RETURN(d_out_, DeviceRegion::Allocate(dev_, out_.size() * 4));
    if (ws_bytes_ > 0) {
      KVT_ASSIGN_OR_RETURN(d_ws_, DeviceRegion::Allocate(dev_, ws_bytes_));
    }
    KVT_RETURN_IF_ERROR(dev_->CopyAsync(d_q_.data(), q_.data(), q_.size() * 2, nullptr));
    KVT_RETURN_IF_ERROR(dev_->CopyAsync(d_lens_.data(), lens_.data(), lens_.size() * 4, nullptr));
    KVT_RETURN_IF_ERROR(dev_->Synchronize(nullptr));
  }
  return Status::Ok();
}

Status Harness::Reset() {
  (void)store_->hbm()->DropNamespace(ns_);
  for (int32_t s = 0; s < c_.seqs; ++s) {
    for (int32_t j = 0; j < blocks_per_seq_; ++j) {
      const Hash128& k = keys_[size_t(s) * blocks_per_seq_ + j];
      if (size_t(j) < nvme_per_seq_) {
        (void)store_->host()->Remove(ns_, k);  // promoted by the last step: drop it again
      } else if (!store_->host()->Lookup(ns_, k, nullptr, false)) {
        return Status::Internal("decode harness: a host-resident block left the host tier");
      }
    }
  }
  return Status::Ok();
}

PagedAttentionParams Harness::Params(int32_t layer, const void* pool, int64_t slot_bytes,
                                     int64_t pool_blocks, const int32_t* table,
                                     const int32_t* lens, const void* q, void* out) const {
  PagedAttentionParams p;
  p.num_seqs = c_.seqs;
  p.num_q_heads = c_.q_heads;
  p.num_kv_heads = c_.kv_heads;
  p.head_dim = c_.head_dim;
  p.block_tokens = c_.block_tokens;
  p.q_dtype = p.kv_dtype = c_.dtype;
  p.out_dtype = DType::kFp32;
  p.sm_scale = 1.0f / std::sqrt(static_cast<float>(c_.head_dim));
  p.q = q;
  if (pool != nullptr) p.kv = PoolLayerView(geo_, const_cast<void*>(pool), slot_bytes, layer);
  p.num_cache_blocks = pool_blocks;
  p.block_table = table;
  p.max_blocks_per_seq = blocks_per_seq_;
  p.context_lens = lens;
  p.max_context_len = blocks_per_seq_ * c_.block_tokens;
  p.out = out;
  return p;
}

Status Harness::BindSlots(const Ticket& t) {
  std::vector<int64_t> slots = t.Slots();
  if (slots.size() != table_.size()) return Status::Internal("ticket without HBM slots");
  for (size_t i = 0; i < slots.size(); ++i) table_[i] = static_cast<int32_t>(slots[i]);
  if (gpu_) return dev_->CopyAsync(d_table_.data(), table_.data(), table_.size() * 4, nullptr);
  return Status::Ok();
}

Status Harness::Compute(int32_t layer) {
  HbmTier* hbm = store_->hbm();
  const int64_t slot = static_cast<int64_t>(hbm->slot_bytes());
  const int64_t pool_blocks = static_cast<int64_t>(hbm->capacity_bytes()) / slot;
  const size_t out_per_layer = out_.size() / c_.layers;
  if (!gpu_) {
    return PagedAttentionRef(Params(layer, hbm->base(), slot, pool_blocks, table_.data(),
                                    lens_.data(), q_.data(), out_.data() + layer * out_per_layer));
  }
  float* out = reinterpret_cast<float*>(d_out_.data()) + layer * out_per_layer;
  return PagedAttentionGpu(
      Params(layer, hbm->base(), slot, pool_blocks, reinterpret_cast<int32_t*>(d_table_.data()),
             reinterpret_cast<int32_t*>(d_lens_.data()), d_q_.data(), out),
      d_ws_.data(), ws_bytes_, nullptr);
}

Status Harness::Check(double* max_err) {
  if (gpu_) {
    KVT_RETURN_IF_ERROR(dev_->CopyAsync(out_.data(), d_out_.data(), out_.size() * 4, nullptr));
    KVT_RETURN_IF_ERROR(dev_->Synchronize(nullptr));
  }
  // The reference reads the original payloads, laid out contiguously: block i is slot i.
  const int64_t bb = geo_.block_bytes();
  std::vector<int32_t> identity(table_.size());
  for (size_t i = 0; i < identity.size(); ++i) identity[i] = static_cast<int32_t>(i);
  std::vector<float> ref(out_.size() / c_.layers);
  double worst = 0;
  for (int32_t l = 0; l < c_.layers; ++l) {
    KVT_RETURN_IF_ERROR(PagedAttentionRef(Params(l, payloads_.data(), bb,
                                                 static_cast<int64_t>(identity.size()),
                                                 identity.data(), lens_.data(), q_.data(),
                                                 ref.data())));
    for (size_t i = 0; i < ref.size(); ++i) {
      const double d = std::fabs(double(out_[l * ref.size() + i]) - ref[i]);
      worst = std::max(worst, d);
      // Bitwise on the CPU; the GPU kernel's stated tolerance otherwise (paged_attention.h).
      const double tol = gpu_ ? 1e-3 * (1 + std::fabs(ref[i])) : 0.0;
      if (d > tol) {
        return Status::Internal("decode harness: layer " + std::to_string(l) + " output " +
                                std::to_string(i) + " differs from the reference by " +
                                std::to_string(d));
      }
    }
  }
  *max_err = worst;
  return Status::Ok();
}

Status Harness::Run(DecodeResult* r) {
  KVT_RETURN_IF_ERROR(Setup());
  r->device = dev_->description();
  r->emulated = !gpu_;
  r->blocks = keys_.size();
  r->nvme_blocks = nvme_per_seq_ * c_.seqs;
  r->block_bytes = static_cast<uint64_t>(geo_.block_bytes());
  Log("device: " + r->device);
  Log("KV per step: " + std::to_string(r->blocks) + " blocks of " + FormatBytes(r->block_bytes) +
      " (" + FormatBytes(r->blocks * r->block_bytes) + "), " + std::to_string(r->nvme_blocks) +
      " starting on NVMe, the rest in host");
  std::vector<double> compute, transfer, serialized, overlapped;
  for (int step = 0; step <= c_.steps; ++step) {  // step 0: warm-up, not timed
    KVT_RETURN_IF_ERROR(Reset());
    double t0 = NowMs();
    {
      KVT_ASSIGN_OR_RETURN(auto t, Prefetch());
      KVT_RETURN_IF_ERROR(t->Wait(-1));
    }
    const double tr = NowMs() - t0;

    KVT_RETURN_IF_ERROR(Reset());
    t0 = NowMs();
    {
      KVT_ASSIGN_OR_RETURN(auto t, Prefetch());
      KVT_RETURN_IF_ERROR(t->Wait(-1));
      KVT_RETURN_IF_ERROR(BindSlots(*t));
      for (int32_t l = 0; l < c_.layers; ++l) KVT_RETURN_IF_ERROR(Compute(l));
      KVT_RETURN_IF_ERROR(Finish());
    }
    const double se = NowMs() - t0;

    KVT_RETURN_IF_ERROR(Reset());
    t0 = NowMs();
    KVT_ASSIGN_OR_RETURN(auto t, Prefetch());
    for (int32_t l = 0; l < c_.layers; ++l) {
      // On a GPU the compute stream waits for layer l's copy event (the host thread only waits
      // for the copies to be enqueued); emulated, the layer is resident when this returns.
      void* ev = nullptr;
      KVT_RETURN_IF_ERROR(t->WaitLayerEvent(static_cast<uint32_t>(l), -1, &ev));
      if (ev != nullptr) KVT_RETURN_IF_ERROR(dev_->StreamWaitEvent(nullptr, ev));
      if (l == 0) KVT_RETURN_IF_ERROR(BindSlots(*t));
      KVT_RETURN_IF_ERROR(Compute(l));
    }
    KVT_RETURN_IF_ERROR(Finish());
    const double ov = NowMs() - t0;
    if (step == 0 || step == c_.steps) KVT_RETURN_IF_ERROR(Check(&r->max_abs_err));

    // Compute alone over the blocks the overlapped step left resident (and pinned by t).
    t0 = NowMs();
    for (int32_t l = 0; l < c_.layers; ++l) KVT_RETURN_IF_ERROR(Compute(l));
    KVT_RETURN_IF_ERROR(Finish());
    const double co = NowMs() - t0;
    if (step == 0) continue;
    compute.push_back(co);
    transfer.push_back(tr);
    serialized.push_back(se);
    overlapped.push_back(ov);
    char line[200];
    std::snprintf(line, sizeof line,
                  "step %d: compute %.2f ms, transfer %.2f ms, serialized %.2f ms, overlapped "
                  "%.2f ms",
                  step, co, tr, se, ov);
    Log(line);
  }
  r->compute_ms = Median(compute);
  r->transfer_ms = Median(transfer);
  r->serialized_ms = Median(serialized);
  r->overlapped_ms = Median(overlapped);
  return Status::Ok();
}

}  // namespace

Status RunDecodeHarness(const DecodeConfig& c, DecodeResult* out, std::ostream* log) {
  KVT_RETURN_IF_ERROR(Validate(c));
  Harness h(c, log);
  return h.Run(out);
}

}  // namespace kvt
