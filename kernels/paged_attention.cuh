// Paged decode attention, device code.
//
// One thread block per (context partition, kv head x head tile, sequence). The block streams its
// partition of K and V through shared memory in tiles of kTile tokens (~16 KiB of K+V per tile),
// double-buffered with 16-byte cp.async loads, so HBM traffic is one read of each K/V byte per
// (sequence, kv head): all the query heads of a GQA group (up to 16 per block) are served from the
// same tile. Softmax is online (running max / sum per query head, in the log2 domain). When the
// batch is too small to fill the GPU, the context is split into partitions (split-K) and a second
// kernel merges the partial results by their log-sum-exp.
//
// Per tile:   row info (block table lookup) -> cp.async K,V -> scores (lane groups of kLanes
//             threads, one 16-byte chunk each, shuffle-reduced) -> softmax update (a warp per head)
//             -> P.V accumulate (a thread per (head, 16-byte chunk), token slices when idle).
#pragma once

#include <cstdint>

#include "kernels/cuda_common.cuh"
#include "kernels/host_device.h"

namespace kvt::cuda {

constexpr int kAttnThreads = 128;
constexpr int kAttnMaxHeadsPerBlock = 16;

// Tokens per tile: K+V of a tile is about 16 KiB (two stages: 32 KiB), between 16 and 64 tokens.
KVT_HD constexpr int AttnTileTokens(int head_dim, int kv_bytes) {
  int t = 16384 / (2 * head_dim * kv_bytes);
  int p = 1;
  while (p * 2 <= t) p <<= 1;
  return p < 16 ? 16 : (p > 64 ? 64 : p);
}

// What the kernels read; built on the host from PagedAttentionParams plus the launch plan.
struct AttnArgs {
  const void* q;               // [num_seqs][num_q_heads][HEAD_DIM] QT
  const void* k;               // K of cache block 0; rows of HEAD_DIM KVT, 16-byte aligned
  const void* v;               // V of cache block 0; same strides
  int64_t block_stride;        // elements
  int64_t token_stride;        // elements
  int64_t head_stride;         // elements
  const float* k_scales;       // fp8: [num_cache_blocks][scale_stride] (first num_kv_heads used)
  const float* v_scales;       // fp8: same
  int64_t scale_stride;        // floats
  const int32_t* block_table;  // [num_seqs][max_blocks_per_seq]
  int32_t max_blocks_per_seq;
  const int32_t* context_lens;  // [num_seqs]
  int64_t num_cache_blocks;
  int32_t num_q_heads;
  int32_t group;               // query heads per kv head
  int32_t heads_per_block;     // min(group, kAttnMaxHeadsPerBlock)
  int32_t head_tiles;          // ceil(group / heads_per_block)
  int32_t block_tokens;
  int32_t partition_tokens;    // tokens per split (a multiple of the tile)
  int32_t num_splits;
  float scale_log2;            // sm_scale * log2(e)
  void* out;                   // [num_seqs][num_q_heads][HEAD_DIM] out_dtype
  DType out_dtype;
  float* part_out;             // [num_seqs][num_q_heads][num_splits][HEAD_DIM] (splits > 1)
  float* part_lse;             // [num_seqs][num_q_heads][num_splits], log2 domain
};

template <int HEAD_DIM, typename KVT>
struct AttnCfg {
  static constexpr int kVec = 16 / static_cast<int>(sizeof(KVT));  // elements per 16-byte chunk
  static constexpr int kChunks = HEAD_DIM / kVec;                    // chunks per row
  static constexpr int kLanes = Pow2Ceil(kChunks);                   // lanes per token (scores)
  static constexpr int kGroups = kAttnThreads / kLanes;              // tokens scored in parallel
  static constexpr int kTile = AttnTileTokens(HEAD_DIM, sizeof(KVT));
  static constexpr int kMaxPairs = (kAttnMaxHeadsPerBlock * kChunks + kAttnThreads - 1) / kAttnThreads;
  static constexpr int kKvBytes = 2 * 2 * kTile * HEAD_DIM * static_cast<int>(sizeof(KVT));
  static constexpr bool kFp8 = sizeof(KVT) == 1;
  static_assert(HEAD_DIM % kVec == 0 && kChunks <= 32, "row must be whole 16-byte chunks, <= 512 B");
  static_assert(kTile % kGroups == 0, "every warp must run the same number of score iterations");
  static_assert(kTile <= kAttnThreads, "row info uses one thread per tile token");
  static_assert(kAttnThreads * kVec * 4 <= kKvBytes, "slice reduction reuses the K/V buffers");

  // Dynamic shared memory for a block serving `heads` query heads.
  static constexpr int SmemBytes(int heads) {
    return kKvBytes + heads * HEAD_DIM * 4 + heads * kTile * 4 + 2 * kTile * 8 + 2 * 2 * kTile * 4 +
           3 * kAttnMaxHeadsPerBlock * 4;
  }
};

// grid: x = context partition (split), y = kv head * head_tiles + head tile, z = sequence.
// block: kAttnThreads threads. Dynamic smem: AttnCfg::SmemBytes(heads_per_block).
template <int HEAD_DIM, typename QT, typename KVT>
__global__ void __launch_bounds__(kAttnThreads, 4) PagedDecodeAttentionKernel(const AttnArgs a) {
  using C = AttnCfg<HEAD_DIM, KVT>;
  constexpr int kTile = C::kTile, kVec = C::kVec, kChunks = C::kChunks, kLanes = C::kLanes;
  const int tid = threadIdx.x;
  const int split = blockIdx.x;
  const int kvh = blockIdx.y / a.head_tiles;
  const int htile = blockIdx.y % a.head_tiles;
  const int seq = blockIdx.z;
  const int hq0 = kvh * a.group + htile * a.heads_per_block;  // first query head served here
  const int heads = min(a.heads_per_block, a.group - htile * a.heads_per_block);
  const int ctx = a.context_lens[seq];
  const int t_begin = split * a.partition_tokens;
  const int t_end = min(ctx, t_begin + a.partition_tokens);

  if (t_begin >= t_end) {
    // Empty partition. Unsplit, it is an empty context and its output is zero; split, the merge
    // kernel counts only non-empty partitions.
    if (a.num_splits == 1) {
      for (int i = tid; i < heads * HEAD_DIM; i += kAttnThreads) {
        StoreOut(a.out, (static_cast<int64_t>(seq) * a.num_q_heads + hq0) * HEAD_DIM + i,
                 a.out_dtype, 0.0f);
      }
    }
    return;
  }

  extern __shared__ __align__(16) uint8_t smem[];
  KVT* kv_s = reinterpret_cast<KVT*>(smem);                         // [2 stages][K,V][kTile][HEAD_DIM]
  float* q_s = reinterpret_cast<float*>(smem + C::kKvBytes);        // [heads][HEAD_DIM], pre-scaled
  float* p_s = q_s + a.heads_per_block * HEAD_DIM;                  // [heads][kTile] scores, then P
  int64_t* off_s = reinterpret_cast<int64_t*>(p_s + a.heads_per_block * kTile);  // [2][kTile]
  float* ks_s = reinterpret_cast<float*>(off_s + 2 * kTile);        // [2][kTile] K scale per token
  float* vs_s = ks_s + 2 * kTile;                                   // [2][kTile] V scale per token
  float* m_s = vs_s + 2 * kTile;                                    // [kMaxHeads] running max
  float* l_s = m_s + kAttnMaxHeadsPerBlock;                         // [kMaxHeads] running sum
  float* alpha_s = l_s + kAttnMaxHeadsPerBlock;                     // [kMaxHeads] rescale of tile

  const QT* q = static_cast<const QT*>(a.q) + (static_cast<int64_t>(seq) * a.num_q_heads + hq0) * HEAD_DIM;
  for (int i = tid; i < heads * HEAD_DIM; i += kAttnThreads) q_s[i] = ToF32(q[i]) * a.scale_log2;
  if (tid < heads) {
    m_s[tid] = -INFINITY;
    l_s[tid] = 0.0f;
  }

  const int32_t* table = a.block_table + static_cast<int64_t>(seq) * a.max_blocks_per_seq;
  const int num_tiles = (t_end - t_begin + kTile - 1) / kTile;
  const KVT* kg = static_cast<const KVT*>(a.k);
  const KVT* vg = static_cast<const KVT*>(a.v);

  // Row offset (or -1: masked) and scales of each token of tile `tile`, into stage `st`.
  auto row_info = [&](int tile, int st) {
    if (tid < kTile) {
      const int tok = t_begin + tile * kTile + tid;
      int64_t off = -1;
      float ks = 1.0f, vs = 1.0f;
      if (tok < t_end) {
        const int32_t blk = table[tok / a.block_tokens];
        if (blk >= 0 && blk < a.num_cache_blocks) {  // a bad id masks the token instead of faulting
          off = blk * a.block_stride + static_cast<int64_t>(tok % a.block_tokens) * a.token_stride +
                static_cast<int64_t>(kvh) * a.head_stride;
          if constexpr (C::kFp8) {
            ks = a.k_scales[blk * a.scale_stride + kvh];
            vs = a.v_scales[blk * a.scale_stride + kvh];
          }
        }
      }
      off_s[st * kTile + tid] = off;
      ks_s[st * kTile + tid] = ks;
      vs_s[st * kTile + tid] = vs;
    }
  };
  auto issue_loads = [&](int st) {
    KVT* kd = kv_s + (st * 2) * kTile * HEAD_DIM;
    KVT* vd = kd + kTile * HEAD_DIM;
    for (int ci = tid; ci < kTile * kChunks; ci += kAttnThreads) {
      const int t = ci / kChunks, c = ci % kChunks;
      const int64_t off = off_s[st * kTile + t];
      const bool ok = off >= 0;
      const int64_t src = (ok ? off : 0) + c * kVec;
      CpAsync16(kd + t * HEAD_DIM + c * kVec, kg + src, ok);
      CpAsync16(vd + t * HEAD_DIM + c * kVec, vg + src, ok);
    }
    CpAsyncCommit();
  };

  // P.V work split: P = heads x chunks pairs; spare threads take token slices of the same pairs.
  const int pairs = heads * kChunks;
  const int ns = pairs >= kAttnThreads ? 1 : kAttnThreads / pairs;
  const int pid0 = ns > 1 ? tid % pairs : tid;
  const int slice = ns > 1 ? tid / pairs : 0;
  const bool active = slice < ns;
  const int my_pairs = ns > 1 ? 1 : C::kMaxPairs;
  float acc[C::kMaxPairs][kVec];
#pragma unroll
  for (int k = 0; k < C::kMaxPairs; ++k) {
#pragma unroll
    for (int j = 0; j < kVec; ++j) acc[k][j] = 0.0f;
  }

  row_info(0, 0);
  __syncthreads();
  issue_loads(0);
  for (int it = 0; it < num_tiles; ++it) {
    const int st = it & 1;
    // Prefetch tile it+1 into the other stage; its previous user (tile it-1) finished at the last
    // barrier of the previous iteration.
    if (it + 1 < num_tiles) row_info(it + 1, st ^ 1);
    __syncthreads();
    if (it + 1 < num_tiles) {
      issue_loads(st ^ 1);
    } else {
      CpAsyncCommit();  // empty group: keeps "wait_group 1" meaning "tile it has landed"
    }
    CpAsyncWait<1>();
    __syncthreads();  // NOTE: makes every thread's cp.async of tile `it` visible to all

    const KVT* kt = kv_s + (st * 2) * kTile * HEAD_DIM;
    const KVT* vt = kt + kTile * HEAD_DIM;

    // Scores: lane group `grp` takes tokens grp, grp + kGroups, ...; lane c holds chunk c.
    {
      const int grp = tid / kLanes, lane = tid % kLanes;
      for (int t = grp; t < kTile; t += C::kGroups) {
        float kf[kVec];
        if (lane < kChunks) {
          ChunkToF32<KVT>(*reinterpret_cast<const uint4*>(kt + t * HEAD_DIM + lane * kVec), kf);
        } else {
#pragma unroll
          for (int j = 0; j < kVec; ++j) kf[j] = 0.0f;
        }
        const bool valid = off_s[st * kTile + t] >= 0;
        const float ks = ks_s[st * kTile + t];
        for (int h = 0; h < heads; ++h) {
          float s = 0.0f;
          if (lane < kChunks) {
            const float* qh = q_s + h * HEAD_DIM + lane * kVec;
#pragma unroll
            for (int j = 0; j < kVec; ++j) s += qh[j] * kf[j];
          }
#pragma unroll
          for (int o = kLanes / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
          if (lane == 0) p_s[h * kTile + t] = valid ? s * ks : -INFINITY;
        }
      }
    }
    __syncthreads();

    // Online softmax update, one warp per query head.
    {
      const int warp = tid / 32, lane = tid % 32;
      for (int h = warp; h < heads; h += kAttnThreads / 32) {
        float* ph = p_s + h * kTile;
        float mx = -INFINITY;
        for (int t = lane; t < kTile; t += 32) mx = fmaxf(mx, ph[t]);
        mx = WarpMax(mx);
        const float m_old = m_s[h];
        const float m_new = fmaxf(m_old, mx);
        float sum = 0.0f;
        for (int t = lane; t < kTile; t += 32) {
          const float e = m_new == -INFINITY ? 0.0f : exp2f(ph[t] - m_new);
          sum += e;
          ph[t] = e * vs_s[st * kTile + t];  // fp8: the V scale folds into the weight
        }
        sum = WarpSum(sum);
        if (lane == 0) {
          const float alpha = m_new == -INFINITY ? 1.0f : exp2f(m_old - m_new);
          alpha_s[h] = alpha;
          l_s[h] = l_s[h] * alpha + sum;
          m_s[h] = m_new;
        }
      }
    }
    __syncthreads();

    // P.V: thread owns (head, chunk) pairs; acc rescaled by this tile's alpha first.
    if (active) {
#pragma unroll
      for (int k = 0; k < C::kMaxPairs; ++k) {
        const int pid = pid0 + k * kAttnThreads;
        if (k < my_pairs && pid < pairs) {
          const int h = pid / kChunks, c = pid % kChunks;
          const float alpha = alpha_s[h];
#pragma unroll
          for (int j = 0; j < kVec; ++j) acc[k][j] *= alpha;
          const float* ph = p_s + h * kTile;
          for (int t = slice; t < kTile; t += ns) {
            const float w = ph[t];
            float vf[kVec];
            ChunkToF32<KVT>(*reinterpret_cast<const uint4*>(vt + t * HEAD_DIM + c * kVec), vf);
#pragma unroll
            for (int j = 0; j < kVec; ++j) acc[k][j] += w * vf[j];
          }
        }
      }
    }
    __syncthreads();  // stage st and its row info are reused two tiles later
  }
  CpAsyncWait<0>();

  // Merge token slices (reusing the K/V buffers; all cp.async done, last barrier passed).
  if (ns > 1) {
    float* red = reinterpret_cast<float*>(smem);  // [ns][pairs][kVec]
    if (active) {
#pragma unroll
      for (int j = 0; j < kVec; ++j) red[(slice * pairs + pid0) * kVec + j] = acc[0][j];
    }
    __syncthreads();
    if (tid < pairs) {
#pragma unroll
      for (int j = 0; j < kVec; ++j) {
        float s = 0.0f;
        for (int r = 0; r < ns; ++r) s += red[(r * pairs + tid) * kVec + j];
        acc[0][j] = s;
      }
    }
  }

  // Write: normalized output (unsplit) or the partition's normalized output and log2-sum-exp.
  const bool writer = ns > 1 ? tid < pairs : true;
  if (writer) {
#pragma unroll
    for (int k = 0; k < C::kMaxPairs; ++k) {
      const int pid = (ns > 1 ? tid : pid0) + k * kAttnThreads;
      if (k < my_pairs && pid < pairs) {
        const int h = pid / kChunks, c = pid % kChunks;
        const float l = l_s[h];
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        const int64_t row = static_cast<int64_t>(seq) * a.num_q_heads + hq0 + h;
        if (a.num_splits == 1) {
#pragma unroll
          for (int j = 0; j < kVec; ++j) StoreOut(a.out, row * HEAD_DIM + c * kVec + j, a.out_dtype, acc[k][j] * inv);
        } else {
          float* po = a.part_out + (row * a.num_splits + split) * HEAD_DIM + c * kVec;
#pragma unroll
          for (int j = 0; j < kVec; j += 4) {
            *reinterpret_cast<float4*>(po + j) =
                make_float4(acc[k][j] * inv, acc[k][j + 1] * inv, acc[k][j + 2] * inv, acc[k][j + 3] * inv);
          }
        }
      }
    }
  }
  if (a.num_splits > 1 && tid < heads) {
    const float l = l_s[tid];
    const int64_t row = static_cast<int64_t>(seq) * a.num_q_heads + hq0 + tid;
    a.part_lse[row * a.num_splits + split] = l > 0.0f ? m_s[tid] + log2f(l) : -INFINITY;
  }
}

// Merges split partitions: out = sum_i w_i o_i / sum_i w_i with w_i = 2^(lse_i - max lse).
// grid: x = query head, y = sequence. block: 128 threads striding over HEAD_DIM.
template <int HEAD_DIM>
__global__ void __launch_bounds__(128) MergeAttentionSplitsKernel(const AttnArgs a) {
  const int hq = blockIdx.x, seq = blockIdx.y;
  const int ctx = a.context_lens[seq];
  const int n = min(a.num_splits, (ctx + a.partition_tokens - 1) / a.partition_tokens);
  const int64_t row = static_cast<int64_t>(seq) * a.num_q_heads + hq;
  const float* lse = a.part_lse + row * a.num_splits;
  float mx = -INFINITY;
  for (int i = 0; i < n; ++i) mx = fmaxf(mx, lse[i]);
  for (int d = threadIdx.x; d < HEAD_DIM; d += blockDim.x) {
    float num = 0.0f, den = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float w = lse[i] == -INFINITY ? 0.0f : exp2f(lse[i] - mx);
      num += w * a.part_out[(row * a.num_splits + i) * HEAD_DIM + d];
      den += w;
    }
    StoreOut(a.out, row * HEAD_DIM + d, a.out_dtype, den > 0.0f ? num / den : 0.0f);
  }
}

}  // namespace kvt::cuda
