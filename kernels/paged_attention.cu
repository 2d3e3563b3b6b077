// Launch planning and dispatch for paged decode attention (device code: paged_attention.cuh).
#include <cmath>

#include "kernels/cuda_launchers.h"
#include "kernels/paged_attention.cuh"

namespace kvt::cuda {
namespace {

// Split-K plan: enough blocks to fill the GPU (about 4 per SM), but partitions of at least
// kMinPartitionTokens so the partial outputs stay small next to the K/V bytes they summarize.
constexpr int kMinPartitionTokens = 256;
constexpr int kTargetBlocksPerSm = 4;

struct AttnPlan {
  int heads_per_block = 1;
  int head_tiles = 1;
  int num_splits = 1;
  int partition_tokens = 1;
  size_t workspace_bytes = 0;
};

AttnPlan Plan(const PagedAttentionParams& p, int sm_count) {
  AttnPlan pl;
  const int group = p.num_q_heads / p.num_kv_heads;
  pl.heads_per_block = group < kAttnMaxHeadsPerBlock ? group : kAttnMaxHeadsPerBlock;
  pl.head_tiles = (group + pl.heads_per_block - 1) / pl.heads_per_block;
  const int tile = AttnTileTokens(p.head_dim, DTypeSize(p.kv_dtype));
  const int max_ctx = p.max_context_len;
  int splits = 1;
  if (max_ctx > 0 && p.num_seqs > 0) {
    const int64_t base_blocks = static_cast<int64_t>(p.num_seqs) * p.num_kv_heads * pl.head_tiles;
    const int64_t target = static_cast<int64_t>(kTargetBlocksPerSm) * (sm_count > 0 ? sm_count : 1);
    int64_t want = (target + base_blocks - 1) / base_blocks;
    const int64_t cap = (max_ctx + kMinPartitionTokens - 1) / kMinPartitionTokens;
    if (want > cap) want = cap;
    splits = want < 1 ? 1 : static_cast<int>(want);
  }
  int part = max_ctx > 0 ? (max_ctx + splits - 1) / splits : tile;
  part = (part + tile - 1) / tile * tile;
  pl.partition_tokens = part;
  pl.num_splits = max_ctx > 0 ? (max_ctx + part - 1) / part : 1;
  if (pl.num_splits > 1) {
    const size_t rows = static_cast<size_t>(p.num_seqs) * p.num_q_heads * pl.num_splits;
    pl.workspace_bytes = rows * p.head_dim * sizeof(float) + rows * sizeof(float);
  }
  return pl;
}

int SmCount() {
  int dev = 0, n = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 1;
  if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) return 1;
  return n;
}

bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <int HEAD_DIM, typename QT, typename KVT>
cudaError_t Launch(const AttnArgs& a, int num_seqs, int num_kv_heads, cudaStream_t stream) {
  using C = AttnCfg<HEAD_DIM, KVT>;
  const int smem = C::SmemBytes(a.heads_per_block);
  auto* kernel = &PagedDecodeAttentionKernel<HEAD_DIM, QT, KVT>;
  if (smem > 48 * 1024) {
    // Opt-in above the 48 KiB default (head_dim 256 with 16 heads per block needs ~54 KiB).
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (e != cudaSuccess) return e;
  }
  const dim3 grid(a.num_splits, num_kv_heads * a.head_tiles, num_seqs);
  kernel<<<grid, kAttnThreads, smem, stream>>>(a);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess || a.num_splits == 1) return e;
  const dim3 mgrid(a.num_q_heads, num_seqs);
  MergeAttentionSplitsKernel<HEAD_DIM><<<mgrid, 128, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

bool AttentionHeadDimSupported(int32_t head_dim) {
  return head_dim == 64 || head_dim == 80 || head_dim == 96 || head_dim == 128 || head_dim == 256;
}

size_t PagedAttentionWorkspaceBytes(const PagedAttentionParams& p, int sm_count) {
  if (p.num_kv_heads <= 0 || p.num_q_heads <= 0 || p.head_dim <= 0) return 0;
  return Plan(p, sm_count).workspace_bytes;
}

cudaError_t LaunchPagedAttention(const PagedAttentionParams& p, void* workspace,
                                 size_t workspace_bytes, cudaStream_t stream) {
  if (p.num_seqs == 0) return cudaSuccess;
  if (!AttentionHeadDimSupported(p.head_dim) || p.num_seqs > 65535) return cudaErrorInvalidValue;
  const int64_t eb = DTypeSize(p.kv_dtype);
  if (!Aligned16(p.kv.k) || !Aligned16(p.kv.v) || (p.kv.block_stride * eb) % 16 != 0 ||
      (p.kv.token_stride * eb) % 16 != 0 || (p.kv.head_stride * eb) % 16 != 0) {
    return cudaErrorInvalidValue;  // rows must be 16-byte aligned for the vector loads
  }
  const AttnPlan pl = Plan(p, SmCount());
  if (pl.workspace_bytes > workspace_bytes || (pl.workspace_bytes > 0 && !Aligned16(workspace))) {
    return cudaErrorInvalidValue;
  }
  AttnArgs a{};
  a.q = p.q;
  a.k = p.kv.k;
  a.v = p.kv.v;
  a.block_stride = p.kv.block_stride;
  a.token_stride = p.kv.token_stride;
  a.head_stride = p.kv.head_stride;
  a.k_scales = p.k_scales;
  a.v_scales = p.v_scales;
  a.scale_stride = p.scale_stride();
  a.block_table = p.block_table;
  a.max_blocks_per_seq = p.max_blocks_per_seq;
  a.context_lens = p.context_lens;
  a.num_cache_blocks = p.num_cache_blocks;
  a.num_q_heads = p.num_q_heads;
  a.group = p.num_q_heads / p.num_kv_heads;
  a.heads_per_block = pl.heads_per_block;
  a.head_tiles = pl.head_tiles;
  a.block_tokens = p.block_tokens;
  a.partition_tokens = pl.partition_tokens;
  a.num_splits = pl.num_splits;
  a.scale_log2 = p.sm_scale * 1.4426950408889634f;  // log2(e): the kernels use exp2
  a.out = p.out;
  a.out_dtype = p.out_dtype;
  if (pl.num_splits > 1) {
    a.part_out = static_cast<float*>(workspace);
    const size_t rows = static_cast<size_t>(p.num_seqs) * p.num_q_heads * pl.num_splits;
    a.part_lse = a.part_out + rows * p.head_dim;
  }
  KVT_DISPATCH_Q_KV(p.q_dtype, p.kv_dtype, QT, KVT, {
    KVT_DISPATCH_HEAD_DIM(p.head_dim, HEAD_DIM, {
      return Launch<HEAD_DIM, QT, KVT>(a, p.num_seqs, p.num_kv_heads, stream);
    })
  })
}

}  // namespace kvt::cuda
