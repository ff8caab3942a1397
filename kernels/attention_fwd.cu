// Training attention forward: one block per (64-query tile, sequence, query head), online
// softmax over 64-key tiles, tensor-core products through WMMA (16x16x16, fp32 accumulate).
// Each of the 4 warps owns 16 query rows of S, P, O and the row statistics, so within a key tile
// warps only synchronise with themselves; the K/V tile loads are shared by the block.
#include <mma.h>

#include <cmath>

#include "common.cuh"
#include "grpo/kernels/attention.h"

namespace grpo::kernels {
namespace {

using namespace nvcuda;
using detail::align_up;

constexpr int kBM = 64, kBN = 64, kWarps = 4, kThreads = kWarps * 32;

template <class T, int D>
struct FwdSmem {
  static constexpr int kLdT = D + 8;    // q, k, v rows (16-bit), padded against bank conflicts
  static constexpr int kLdS = kBN + 4;  // scores (fp32)
  static constexpr int kLdP = kBN + 8;  // probabilities (16-bit)
  static constexpr int kLdO = D + 4;    // output accumulator (fp32)
  static constexpr size_t q = 0;
  static constexpr size_t k = align_up(q + sizeof(T) * kBM * kLdT, 128);
  static constexpr size_t v = align_up(k + sizeof(T) * kBN * kLdT, 128);
  static constexpr size_t s = align_up(v + sizeof(T) * kBN * kLdT, 128);
  static constexpr size_t p = align_up(s + sizeof(float) * kBM * kLdS, 128);
  static constexpr size_t o = align_up(p + sizeof(T) * kBM * kLdP, 128);
  static constexpr size_t stats = align_up(o + sizeof(float) * kBM * kLdO, 128);
  static constexpr size_t bytes = stats + sizeof(float) * 3 * kBM;  // m, l, alpha
};

struct SeqBounds {
  int64_t q_row0, k_row0;  // first row of the sequence (packed) or 0 (padded)
  int len_q, len_k;
};

__device__ __forceinline__ SeqBounds seq_bounds(const AttentionFwdParams& p, int b) {
  SeqBounds s;
  if (p.q_layout.cu_seqlens) {
    s.q_row0 = p.q_layout.cu_seqlens[b];
    s.len_q = p.q_layout.cu_seqlens[b + 1] - p.q_layout.cu_seqlens[b];
  } else {
    s.q_row0 = 0;
    s.len_q = p.q_layout.seqlen;
  }
  if (p.k_layout.cu_seqlens) {
    s.k_row0 = p.k_layout.cu_seqlens[b];
    s.len_k = p.k_layout.cu_seqlens[b + 1] - p.k_layout.cu_seqlens[b];
  } else {
    s.k_row0 = 0;
    s.len_k = p.k_layout.seqlen;
  }
  return s;
}

template <class T, int D>
__global__ void __launch_bounds__(kThreads) attention_fwd_kernel(const AttentionFwdParams p) {
  using L = FwdSmem<T, D>;
  GRPO_DYNAMIC_SMEM(unsigned char, smem);
  T* sQ = reinterpret_cast<T*>(smem + L::q);
  T* sK = reinterpret_cast<T*>(smem + L::k);
  T* sV = reinterpret_cast<T*>(smem + L::v);
  float* sS = reinterpret_cast<float*>(smem + L::s);
  T* sP = reinterpret_cast<T*>(smem + L::p);
  float* sO = reinterpret_cast<float*>(smem + L::o);
  float* sM = reinterpret_cast<float*>(smem + L::stats);
  float* sL = sM + kBM;
  float* sAlpha = sL + kBM;

  const int m0 = blockIdx.x * kBM, b = blockIdx.y, h = blockIdx.z;
  const int hk = h / (p.heads_q / p.heads_kv);
  const SeqBounds sb = seq_bounds(p, b);
  if (m0 >= sb.len_q) return;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;

  const T* q = static_cast<const T*>(p.q) + (p.q_layout.cu_seqlens ? 0 : b * p.q_batch_stride) +
               (sb.q_row0 + m0) * p.q_row_stride + h * p.q_head_stride;
  const T* k = static_cast<const T*>(p.k) + (p.k_layout.cu_seqlens ? 0 : b * p.k_batch_stride) +
               sb.k_row0 * p.k_row_stride + hk * p.k_head_stride;
  const T* v = static_cast<const T*>(p.v) + (p.k_layout.cu_seqlens ? 0 : b * p.v_batch_stride) +
               sb.k_row0 * p.v_row_stride + hk * p.v_head_stride;

  detail::load_tile<T, D>(sQ, L::kLdT, q, p.q_row_stride, kBM, sb.len_q - m0, tid, kThreads);
  for (int i = tid; i < kBM * L::kLdO; i += kThreads) sO[i] = 0.f;
  for (int i = tid; i < kBM; i += kThreads) {
    sM[i] = -INFINITY;
    sL[i] = 0.f;
  }

  const int offset = sb.len_k - sb.len_q;  // bottom-right causal alignment
  const int key_start = p.key_start ? p.key_start[b] : 0;
  const int key_end = p.key_end ? min(p.key_end[b], sb.len_k) : sb.len_k;
  const int n_end = min(key_end, offset + m0 + kBM);  // one past the last key any row sees
  const int n_begin = max(key_start, 0) / kBN * kBN;
  const float scale_log2 = p.scale * detail::kLog2e;
  const int r0 = warp * 16;  // this warp's rows

  for (int n0 = n_begin; n0 < n_end; n0 += kBN) {
    __syncthreads();  // everyone is done with the previous K/V tile (and sQ/sO are initialised)
    detail::load_tile<T, D>(sK, L::kLdT, k + n0 * p.k_row_stride, p.k_row_stride, kBN,
                            sb.len_k - n0, tid, kThreads);
    detail::load_tile<T, D>(sV, L::kLdT, v + n0 * p.v_row_stride, p.v_row_stride, kBN,
                            sb.len_k - n0, tid, kThreads);
    __syncthreads();

    // S (16 x 64 strip) = Q K^T
#pragma unroll
    for (int nt = 0; nt < kBN / 16; ++nt) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> bt;
        wmma::load_matrix_sync(a, sQ + r0 * L::kLdT + kk * 16, L::kLdT);
        wmma::load_matrix_sync(bt, sK + nt * 16 * L::kLdT + kk * 16, L::kLdT);
        wmma::mma_sync(acc, a, bt, acc);
      }
      wmma::store_matrix_sync(sS + r0 * L::kLdS + nt * 16, acc, L::kLdS, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax over this tile, row by row (two columns per lane).
    for (int r = r0; r < r0 + 16; ++r) {
      const int i = m0 + r;
      float s[2];
      float mx = -INFINITY;
#pragma unroll
      for (int c2 = 0; c2 < 2; ++c2) {
        const int c = lane + 32 * c2, j = n0 + c;
        const bool ok = i < sb.len_q && j < key_end && j >= key_start && j <= offset + i;
        s[c2] = ok ? sS[r * L::kLdS + c] * scale_log2 : -INFINITY;
        mx = fmaxf(mx, s[c2]);
      }
      mx = detail::warp_max(mx);
      const float m_old = sM[r];
      const float m_new = fmaxf(m_old, mx);
      const float m_use = m_new == -INFINITY ? 0.f : m_new;  // no key yet: keep p = 0
      float sum = 0.f;
#pragma unroll
      for (int c2 = 0; c2 < 2; ++c2) {
        const float pr = exp2f(s[c2] - m_use);
        sum += pr;
        sP[r * L::kLdP + lane + 32 * c2] = detail::from_float<T>(pr);
      }
      sum = detail::warp_sum(sum);
      if (lane == 0) {
        const float alpha = exp2f(m_old - m_use);  // m_old = -inf: 0 (sL and sO are 0 anyway)
        sL[r] = sL[r] * alpha + sum;
        sM[r] = m_new;
        sAlpha[r] = alpha;
      }
    }
    __syncwarp();
    for (int idx = lane; idx < 16 * D; idx += 32) {
      const int r = r0 + idx / D, c = idx % D;
      sO[r * L::kLdO + c] *= sAlpha[r];
    }
    __syncwarp();

    // O (16 x D strip) += P V
#pragma unroll
    for (int dt = 0; dt < D / 16; ++dt) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, sO + r0 * L::kLdO + dt * 16, L::kLdO, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kBN / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> bv;
        wmma::load_matrix_sync(a, sP + r0 * L::kLdP + kk * 16, L::kLdP);
        wmma::load_matrix_sync(bv, sV + kk * 16 * L::kLdT + dt * 16, L::kLdT);
        wmma::mma_sync(acc, a, bv, acc);
      }
      wmma::store_matrix_sync(sO + r0 * L::kLdO + dt * 16, acc, L::kLdO, wmma::mem_row_major);
    }
    __syncwarp();
  }
  __syncthreads();

  // Epilogue: O / l, and lse = ln(sum exp(scale * s)) (+inf for a row that saw no key).
  T* o = static_cast<T*>(p.o) + (p.q_layout.cu_seqlens ? 0 : b * p.o_batch_stride) +
         (sb.q_row0 + m0) * p.o_row_stride + h * p.o_head_stride;
  const int rows = min(kBM, sb.len_q - m0);
  for (int idx = tid; idx < rows * D; idx += kThreads) {
    const int r = idx / D, c = idx % D;
    const float l = sL[r];
    o[r * p.o_row_stride + c] = detail::from_float<T>(l > 0.f ? sO[r * L::kLdO + c] / l : 0.f);
  }
  float* lse = p.lse + (p.q_layout.cu_seqlens ? sb.q_row0 : b * p.lse_batch_stride) +
               h * p.lse_head_stride + m0;
  for (int r = tid; r < rows; r += kThreads) {
    const float l = sL[r];
    lse[r] = l > 0.f ? (sM[r] + log2f(l)) * detail::kLn2 : INFINITY;
  }
}

template <class T, int D>
cudaError_t launch_fwd(const AttentionFwdParams& p, cudaStream_t stream) {
  const size_t smem = FwdSmem<T, D>::bytes;
  cudaError_t err =
      cudaFuncSetAttribute(attention_fwd_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(smem));
  if (err != cudaSuccess) return err;
  const int max_q = p.q_layout.seqlen;
  const dim3 grid(detail::ceil_div(max_q, kBM), p.batch, p.heads_q);
  GRPO_LAUNCH(grid, kThreads, smem, stream, attention_fwd_kernel<T, D>)(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t attention_forward(const AttentionFwdParams& p, cudaStream_t stream) {
  if (p.batch <= 0 || p.heads_kv <= 0 || p.heads_q % p.heads_kv != 0 || p.q_layout.seqlen <= 0) {
    return p.batch == 0 || p.q_layout.seqlen == 0 ? cudaSuccess : cudaErrorInvalidValue;
  }
  return GRPO_DISPATCH_DTYPE_HEADDIM(p.dtype, p.head_dim,
                                     [&] { return launch_fwd<T, kD>(p, stream); });
}

}  // namespace grpo::kernels
