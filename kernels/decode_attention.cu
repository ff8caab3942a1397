// Decode attention: one query token per sequence against its KV cache. A block takes one KV head
// of one sequence (all query heads of its group share each K/V load) and one split of the keys;
// each thread scores one key per 128-key chunk, then threads over the head dim accumulate P V.
// Splits write fp32 partial outputs with their log-sum-exp, merged by a combine kernel.
#include <algorithm>
#include <cmath>

#include "common.cuh"
#include "grpo/kernels/attention.h"

namespace grpo::kernels {
namespace {

constexpr int kThreads = 128;  // also the keys per chunk
constexpr int kMaxG = kDecodeMaxGroup;

template <class T, int D>
__global__ void __launch_bounds__(kThreads) decode_split_kernel(const DecodeParams p) {
  __shared__ float sq[kMaxG][D];
  __shared__ float sScore[kMaxG][kThreads];
  __shared__ float sM[kMaxG], sL[kMaxG], sAlpha[kMaxG];

  const int split = blockIdx.x, b = blockIdx.y, hk = blockIdx.z;
  const int group = p.heads_q / p.heads_kv;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  int len = p.seqlens_k ? p.seqlens_k[b] : p.seqlen_k;
  if (p.key_end) len = min(len, p.key_end[b]);
  const int key_start = p.key_start ? max(p.key_start[b], 0) : 0;
  const int split_size = detail::ceil_div(len, p.num_splits);
  const int s0 = max(split * split_size, key_start), s1 = min(len, (split + 1) * split_size);
  const float scale_log2 = p.scale * detail::kLog2e;

  for (int idx = tid; idx < group * D; idx += kThreads) {
    const int g = idx / D, d = idx % D;
    const T* q =
        static_cast<const T*>(p.q) + b * p.q_batch_stride + (hk * group + g) * p.q_head_stride;
    sq[g][d] = detail::to_float(q[d]) * scale_log2;
  }
  for (int g = tid; g < group; g += kThreads) {
    sM[g] = -INFINITY;
    sL[g] = 0.f;
  }
  const T* k = static_cast<const T*>(p.k) + b * p.k_batch_stride + hk * p.k_head_stride;
  const T* v = static_cast<const T*>(p.v) + b * p.v_batch_stride + hk * p.v_head_stride;

  // Thread roles in P V: head-dim element d, heads g = g0, g0 + kHeadSets, ...
  constexpr int kHeadSets = kThreads / D;
  const int d = tid % D, g0 = tid / D;
  float acc[kMaxG / kHeadSets];
#pragma unroll
  for (int i = 0; i < kMaxG / kHeadSets; ++i) acc[i] = 0.f;
  __syncthreads();

  for (int c0 = s0; c0 < s1; c0 += kThreads) {
    const int j = c0 + tid;
    if (j < s1) {
      float dots[kMaxG];
#pragma unroll
      for (int g = 0; g < kMaxG; ++g) dots[g] = 0.f;
      const T* krow = k + j * p.k_row_stride;
#pragma unroll 4
      for (int e = 0; e < D; e += 8) {
        const uint4 raw = *reinterpret_cast<const uint4*>(krow + e);
        const T* kv = reinterpret_cast<const T*>(&raw);
#pragma unroll
        for (int u = 0; u < 8; ++u) {
          const float kf = detail::to_float(kv[u]);
#pragma unroll
          for (int g = 0; g < kMaxG; ++g) {
            if (g < group) dots[g] += sq[g][e + u] * kf;
          }
        }
      }
#pragma unroll
      for (int g = 0; g < kMaxG; ++g) {
        if (g < group) sScore[g][tid] = dots[g];
      }
    } else {
      for (int g = 0; g < group; ++g) sScore[g][tid] = -INFINITY;
    }
    __syncthreads();
    // Online softmax per head: warp w takes heads w, w + 4, ...
    for (int g = warp; g < group; g += kThreads / 32) {
      float mx = -INFINITY;
      for (int c = lane; c < kThreads; c += 32) mx = fmaxf(mx, sScore[g][c]);
      mx = detail::warp_max(mx);
      const float m_new = fmaxf(sM[g], mx);  // finite: the chunk has at least one key
      float sum = 0.f;
      for (int c = lane; c < kThreads; c += 32) {
        const float pr = exp2f(sScore[g][c] - m_new);
        sScore[g][c] = pr;
        sum += pr;
      }
      sum = detail::warp_sum(sum);
      if (lane == 0) {
        const float alpha = exp2f(sM[g] - m_new);
        sL[g] = sL[g] * alpha + sum;
        sM[g] = m_new;
        sAlpha[g] = alpha;
      }
    }
    __syncthreads();
    if (d < D) {
      for (int gi = 0, g = g0; g < group; ++gi, g += kHeadSets) acc[gi] *= sAlpha[g];
      const int n = min(kThreads, s1 - c0);
      for (int c = 0; c < n; ++c) {
        const float vf = detail::to_float(v[(c0 + c) * p.v_row_stride + d]);
        for (int gi = 0, g = g0; g < group; ++gi, g += kHeadSets) acc[gi] += sScore[g][c] * vf;
      }
    }
    __syncthreads();
  }

  const int64_t base = (static_cast<int64_t>(split) * p.batch + b) * p.heads_q + hk * group;
  for (int gi = 0, g = g0; g < group; ++gi, g += kHeadSets) {
    const float l = sL[g];
    p.o_accum[(base + g) * D + d] = l > 0.f ? acc[gi] / l : 0.f;
  }
  for (int g = tid; g < group; g += kThreads) {
    const float l = sL[g];
    p.lse_accum[base + g] = l > 0.f ? (sM[g] + log2f(l)) * detail::kLn2 : -INFINITY;
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
  const dim3 grid(p.num_splits, p.batch, p.heads_kv);
  GRPO_LAUNCH(grid, kThreads, 0, stream, decode_split_kernel<T, D>)(p);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  GRPO_LAUNCH(p.batch * p.heads_q, D, 0, stream, decode_combine_kernel<T, D>)(p);
  return cudaGetLastError();
}

}  // namespace

int decode_num_splits(int batch, int heads_kv, int max_seqlen_k, int num_sms) {
  const int blocks = std::max(1, batch * heads_kv);
  const int want = detail::ceil_div(2 * std::max(num_sms, 1), blocks);
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
