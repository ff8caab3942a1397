// Decode attention: one query token per sequence against its KV cache. A block takes one KV head
// of one sequence and one split of the keys; the group's query heads (up to 16, zero-padded to
// 16) are the rows of tensor-core products (mma.sync m16n8k16, fp32 accumulation), so every K/V
// element loaded serves the whole group. Each of the 4 warps walks its own 32-key chunks of the
// split (chunk w, w + 4, ...) with its own online softmax, loading K and V with cp.async into its
// own shared-memory slots (the K chunk's scores are computed while V lands); the warps' partial
// results merge in shared memory, and splits write fp32 partial outputs with their log-sum-exp,
// merged by a combine kernel.
#include <algorithm>
#include <cmath>

#include "attention_tiles.cuh"
#include "common.cuh"
#include "grpo/kernels/attention.h"

namespace grpo::kernels {
namespace {

constexpr int kWarps = 4, kThreads = kWarps * 32;
constexpr int kChunk = 32;  // keys per warp step
constexpr int kRows = 16;   // query heads per block, padded
static_assert(kDecodeMaxGroup <= kRows, "a group must fit the 16 rows of an mma tile");

// Q (16 x D); per warp a K and a V chunk (32 x D); rows padded by 16 bytes against bank
// conflicts. After the key loop the K/V area holds the warps' partial results for the merge.
template <class T, int D>
struct DecodeSmem {
  static constexpr int kLd = D + 8;
  static constexpr size_t q = 0;
  static constexpr size_t chunk = sizeof(T) * kChunk * kLd;
  static constexpr size_t kv = sizeof(T) * kRows * kLd;  // warp w: K at kv + 2w chunk, V after
  static constexpr size_t bytes = kv + 2 * kWarps * chunk;
  // Merge: o (warps, 16, D) fp32, then m and l (warps, 16).
  static constexpr size_t merge_o = kv;
  static constexpr size_t merge_ml = merge_o + sizeof(float) * kWarps * kRows * D;
  static_assert(merge_ml + sizeof(float) * 2 * kWarps * kRows <= bytes, "merge area");
};

template <class T, int D>
__global__ void __launch_bounds__(kThreads) decode_split_kernel(const DecodeParams p) {
  using L = DecodeSmem<T, D>;
  constexpr int kLd = L::kLd;
  GRPO_DYNAMIC_SMEM(unsigned char, smem);
  T* sQ = reinterpret_cast<T*>(smem + L::q);

  const int split = blockIdx.x, b = blockIdx.y, hk = blockIdx.z;
  const int group = p.heads_q / p.heads_kv;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  int len = p.seqlens_k ? p.seqlens_k[b] : p.seqlen_k;
  if (p.key_end) len = min(len, p.key_end[b]);
  const int key_start = p.key_start ? max(p.key_start[b], 0) : 0;
  const int split_size = detail::ceil_div(len, p.num_splits);
  const int s0 = max(split * split_size, key_start), s1 = min(len, (split + 1) * split_size);
  const float scale_log2 = p.scale * detail::kLog2e;

  constexpr int kPerRow = D / 8;
  for (int idx = tid; idx < kRows * kPerRow; idx += kThreads) {
    const int r = idx / kPerRow, c = (idx % kPerRow) * 8;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < group) {
      const T* q =
          static_cast<const T*>(p.q) + b * p.q_batch_stride + (hk * group + r) * p.q_head_stride;
      val = *reinterpret_cast<const uint4*>(q + c);
    }
    *reinterpret_cast<uint4*>(sQ + r * kLd + c) = val;
  }
  const T* k = static_cast<const T*>(p.k) + b * p.k_batch_stride + hk * p.k_head_stride;
  const T* v = static_cast<const T*>(p.v) + b * p.v_batch_stride + hk * p.v_head_stride;
  T* sK = reinterpret_cast<T*>(smem + L::kv + 2 * warp * L::chunk);
  T* sV = reinterpret_cast<T*>(smem + L::kv + (2 * warp + 1) * L::chunk);
  __syncthreads();

  uint32_t qa[D / 16][4];
  detail::load_a_strip<T, D>(qa, sQ, kLd, 0, lane);
  float o[D / 8][4] = {};
  float row_max[2] = {-INFINITY, -INFINITY};  // heads g and g + 8, log2 domain
  float row_sum[2] = {0.f, 0.f};              // this lane's share

  for (int c0 = s0 + warp * kChunk; c0 < s1; c0 += kWarps * kChunk) {
    const int valid = s1 - c0;
    __syncwarp();  // every lane is done reading the previous chunk
    detail::async_tile<T, D>(sK, kLd, k + c0 * p.k_row_stride, p.k_row_stride, kChunk, valid, lane,
                             32);
    detail::cp_async_commit();
    detail::async_tile<T, D>(sV, kLd, v + c0 * p.v_row_stride, p.v_row_stride, kChunk, valid, lane,
                             32);
    detail::cp_async_commit();
    detail::cp_async_wait<1>();
    __syncwarp();  // the K chunk is in

    float s[kChunk / 8][4] = {};
    detail::mma_abt<T, D, kChunk>(s, qa, sK, kLd, lane);
#pragma unroll
    for (int nt = 0; nt < kChunk / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        s[nt][e] = nt * 8 + 2 * t + (e & 1) < valid ? s[nt][e] * scale_log2 : -INFINITY;
      }
    }
    detail::online_softmax<D, kChunk>(s, row_max, row_sum, o);

    detail::cp_async_wait<0>();
    __syncwarp();  // the V chunk is in
    uint32_t pa[kChunk / 16][4];
    detail::to_a_fragments<T, kChunk>(pa, s);
    detail::mma_ab<T, D, kChunk>(o, pa, sV, kLd, lane);
  }

  // Merge the warps: each leaves its rows' max, sum and unnormalised output.
  detail::reduce_row_sums(row_sum);
  __syncthreads();  // every warp is done with its chunks: the K/V area becomes the merge area
  float* mo = reinterpret_cast<float*>(smem + L::merge_o);
  float* mm = reinterpret_cast<float*>(smem + L::merge_ml);
  float* ml = mm + kWarps * kRows;
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int r = g + 8 * hr;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      float* dst = mo + (warp * kRows + r) * D + dt * 8 + 2 * t;
      dst[0] = o[dt][2 * hr];
      dst[1] = o[dt][2 * hr + 1];
    }
    if (t == 0) {
      mm[warp * kRows + r] = row_max[hr];
      ml[warp * kRows + r] = row_sum[hr];
    }
  }
  __syncthreads();
  const int64_t base = (static_cast<int64_t>(split) * p.batch + b) * p.heads_q + hk * group;
  for (int idx = tid; idx < group * D; idx += kThreads) {
    const int r = idx / D, d = idx % D;
    float m = -INFINITY;
    for (int w = 0; w < kWarps; ++w) m = fmaxf(m, mm[w * kRows + r]);
    float l = 0.f, acc = 0.f;
    if (m > -INFINITY) {
      for (int w = 0; w < kWarps; ++w) {
        const float scale = exp2f(mm[w * kRows + r] - m);  // a warp without keys: 0
        l += ml[w * kRows + r] * scale;
        acc += mo[(w * kRows + r) * D + d] * scale;
      }
    }
    p.o_accum[(base + r) * D + d] = l > 0.f ? acc / l : 0.f;
    if (d == 0) p.lse_accum[base + r] = l > 0.f ? (m + log2f(l)) * detail::kLn2 : -INFINITY;
  }
}

template <class T, int D>
__global__ void decode_combine_kernel(const DecodeParams p) {
  const int b = blockIdx.x / p.heads_q, h = blockIdx.x % p.heads_q, d = threadIdx.x;
  const int64_t stride = static_cast<int64_t>(p.batch) * p.heads_q;
  const int64_t bh = static_cast<int64_t>(b) * p.heads_q + h;
  float mx = -INFINITY;
  for (int s = 0; s < p.num_splits; ++s) mx = fmaxf(mx, p.lse_accum[s * stride + bh]);
  float out = 0.f;
  if (mx > -INFINITY) {
    float wsum = 0.f;
    for (int s = 0; s < p.num_splits; ++s) {
      const float w = expf(p.lse_accum[s * stride + bh] - mx);
      wsum += w;
      out += w * p.o_accum[(s * stride + bh) * D + d];
    }
    out /= wsum;
  }
  static_cast<T*>(p.o)[b * p.o_batch_stride + h * p.o_head_stride + d] = detail::from_float<T>(out);
}

template <class T, int D>
cudaError_t launch_decode(const DecodeParams& p, cudaStream_t stream) {
  const size_t smem = DecodeSmem<T, D>::bytes;
  cudaError_t err =
      cudaFuncSetAttribute(decode_split_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(smem));
  if (err != cudaSuccess) return err;
  const dim3 grid(p.num_splits, p.batch, p.heads_kv);
  GRPO_LAUNCH(grid, kThreads, smem, stream, decode_split_kernel<T, D>)(p);
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  GRPO_LAUNCH(p.batch * p.heads_q, D, 0, stream, decode_combine_kernel<T, D>)(p);
  return cudaGetLastError();
}

}  // namespace

int decode_num_splits(int batch, int heads_kv, int max_seqlen_k, int num_sms) {
  // About 8 blocks per SM in all: 2-5 of these blocks fit an SM at once (their shared memory),
  // so the grid runs in several waves and a last, partly filled one costs little. With 2 per SM
  // (before), 64 sequences x 8 KV heads over 4096 keys took one split: 512 blocks, 1.3 waves of
  // 396 on an H200, 71% of its memory bandwidth.
  const int blocks = std::max(1, batch * heads_kv);
  const int want = detail::ceil_div(8 * std::max(num_sms, 1), blocks);
  const int most = std::max(1, max_seqlen_k / 256);
  return std::max(1, std::min({want, most, 64}));
}

cudaError_t decode_attention(const DecodeParams& p, cudaStream_t stream) {
  if (p.batch == 0) return cudaSuccess;
  if (p.batch < 0 || p.heads_kv <= 0 || p.heads_q % p.heads_kv != 0 ||
      p.heads_q / p.heads_kv > kDecodeMaxGroup || p.num_splits < 1) {
    return cudaErrorInvalidValue;
  }
  return GRPO_DISPATCH_DTYPE_HEADDIM(p.dtype, p.head_dim,
                                     [&] { return launch_decode<T, kD>(p, stream); });
}

}  // namespace grpo::kernels
