// Training attention backward (FlashAttention-2 order): a preprocess kernel computes
// delta = rowsum(dO * O); the main kernel takes one 64-key tile of one KV head per block, walks
// every query head of its group and every query tile that sees those keys, recomputes
// P = exp(scale * QK^T - lse), and accumulates dK, dV in registers (WMMA fragments) while dQ
// goes to an fp32 buffer through atomics; a last kernel converts dQ to the input dtype.
#include <mma.h>

#include <cmath>

#include "common.cuh"
#include "grpo/kernels/attention.h"

namespace grpo::kernels {
namespace {

using namespace nvcuda;
using detail::align_up;

constexpr int kBM = 64, kBN = 64, kWarps = 8, kThreads = kWarps * 32;

template <class T, int D>
struct BwdSmem {
  static constexpr int kLdT = D + 8;
  static constexpr int kLdS = kBN + 4;
  static constexpr int kLdP = kBN + 8;
  static constexpr int kLdAcc = D + 4;
  static constexpr size_t k = 0;
  static constexpr size_t v = align_up(k + sizeof(T) * kBN * kLdT, 128);
  static constexpr size_t q = align_up(v + sizeof(T) * kBN * kLdT, 128);
  static constexpr size_t dout = align_up(q + sizeof(T) * kBM * kLdT, 128);
  // S and dP (fp32), later reused as the fp32 staging area of dQ, dK and dV tiles.
  static constexpr size_t s = align_up(dout + sizeof(T) * kBM * kLdT, 128);
  static constexpr size_t dp = align_up(s + sizeof(float) * kBM * kLdS, 128);
  static constexpr size_t p = align_up(dp + sizeof(float) * kBM * kLdS, 128);
  static constexpr size_t ds = align_up(p + sizeof(T) * kBM * kLdP, 128);
  static constexpr size_t stats = align_up(ds + sizeof(T) * kBM * kLdP, 128);
  static constexpr size_t bytes = stats + sizeof(float) * 2 * kBM;
  static_assert(sizeof(float) * kBM * kLdAcc <= p - s, "staging area must fit in S and dP");
};

struct SeqBounds {
  int64_t q_row0, k_row0;
  int len_q, len_k;
};

__device__ __forceinline__ SeqBounds seq_bounds(const AttentionFwdParams& p, int b) {
  SeqBounds s;
  s.q_row0 = p.q_layout.cu_seqlens ? p.q_layout.cu_seqlens[b] : 0;
  s.len_q = p.q_layout.cu_seqlens ? p.q_layout.cu_seqlens[b + 1] - p.q_layout.cu_seqlens[b]
                                  : p.q_layout.seqlen;
  s.k_row0 = p.k_layout.cu_seqlens ? p.k_layout.cu_seqlens[b] : 0;
  s.len_k = p.k_layout.cu_seqlens ? p.k_layout.cu_seqlens[b + 1] - p.k_layout.cu_seqlens[b]
                                  : p.k_layout.seqlen;
  return s;
}

__device__ __forceinline__ int64_t lse_index(const AttentionFwdParams& p, const SeqBounds& sb,
                                             int b, int h, int i) {
  return (p.q_layout.cu_seqlens ? sb.q_row0 : b * p.lse_batch_stride) + h * p.lse_head_stride + i;
}

// Row index into dq_accum: packed row, or b * Lq + i.
__device__ __forceinline__ int64_t dq_row(const AttentionFwdParams& p, const SeqBounds& sb, int b,
                                          int i) {
  return p.q_layout.cu_seqlens ? sb.q_row0 + i : static_cast<int64_t>(b) * p.q_layout.seqlen + i;
}

// delta[b, h, i] = sum_d dO * O, one warp per (row, head).
template <class T, int D>
__global__ void attention_bwd_preprocess(const AttentionBwdParams p) {
  const AttentionFwdParams& f = p.fwd;
  const int b = blockIdx.y, h = blockIdx.z;
  const SeqBounds sb = seq_bounds(f, b);
  const int i = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
  if (i >= sb.len_q) return;
  const T* o = static_cast<const T*>(f.o) + (f.q_layout.cu_seqlens ? 0 : b * f.o_batch_stride) +
               (sb.q_row0 + i) * f.o_row_stride + h * f.o_head_stride;
  const T* dout = static_cast<const T*>(p.dout) +
                  (f.q_layout.cu_seqlens ? 0 : b * p.do_batch_stride) +
                  (sb.q_row0 + i) * p.do_row_stride + h * p.do_head_stride;
  float acc = 0.f;
  for (int d = lane; d < D; d += 32) acc += detail::to_float(o[d]) * detail::to_float(dout[d]);
  acc = detail::warp_sum(acc);
  if (lane == 0) p.delta[lse_index(f, sb, b, h, i)] = acc;
}

template <class T, int D>
__global__ void __launch_bounds__(kThreads) attention_bwd_kernel(const AttentionBwdParams p) {
  using L = BwdSmem<T, D>;
  const AttentionFwdParams& f = p.fwd;
  GRPO_DYNAMIC_SMEM(unsigned char, smem);
  T* sK = reinterpret_cast<T*>(smem + L::k);
  T* sV = reinterpret_cast<T*>(smem + L::v);
  T* sQ = reinterpret_cast<T*>(smem + L::q);
  T* sdO = reinterpret_cast<T*>(smem + L::dout);
  float* sS = reinterpret_cast<float*>(smem + L::s);
  float* sdP = reinterpret_cast<float*>(smem + L::dp);
  float* sAcc = sS;  // staging, used only when S and dP are dead
  T* sP = reinterpret_cast<T*>(smem + L::p);
  T* sdS = reinterpret_cast<T*>(smem + L::ds);
  float* sLse = reinterpret_cast<float*>(smem + L::stats);
  float* sDelta = sLse + kBM;

  const int n0 = blockIdx.x * kBN, b = blockIdx.y, hk = blockIdx.z;
  const SeqBounds sb = seq_bounds(f, b);
  if (n0 >= sb.len_k) return;
  const int tid = threadIdx.x, warp = tid / 32;
  const int group = f.heads_q / f.heads_kv;
  const int offset = sb.len_k - sb.len_q;
  const int key_start = f.key_start ? f.key_start[b] : 0;
  const int key_end = f.key_end ? min(f.key_end[b], sb.len_k) : sb.len_k;
  const float scale_log2 = f.scale * detail::kLog2e;

  const T* k = static_cast<const T*>(f.k) + (f.k_layout.cu_seqlens ? 0 : b * f.k_batch_stride) +
               (sb.k_row0 + n0) * f.k_row_stride + hk * f.k_head_stride;
  const T* v = static_cast<const T*>(f.v) + (f.k_layout.cu_seqlens ? 0 : b * f.v_batch_stride) +
               (sb.k_row0 + n0) * f.v_row_stride + hk * f.v_head_stride;
  detail::load_tile<T, D>(sK, L::kLdT, k, f.k_row_stride, kBN, sb.len_k - n0, tid, kThreads);
  detail::load_tile<T, D>(sV, L::kLdT, v, f.v_row_stride, kBN, sb.len_k - n0, tid, kThreads);

  // This warp's share of dK and dV: key strip ks (16 rows), head-dim half dh.
  constexpr int kDT = D / 32;  // 16-wide d tiles per warp
  const int ks = warp % 4, dh = warp / 4;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> dk_acc[kDT], dv_acc[kDT];
#pragma unroll
  for (int t = 0; t < kDT; ++t) {
    wmma::fill_fragment(dk_acc[t], 0.f);
    wmma::fill_fragment(dv_acc[t], 0.f);
  }

  // Queries that can see key n0 or later: offset + i >= n0. A tile wholly outside
  // [key_start, key_end) is seen by no query: its dK, dV are zeros.
  const int m_first = max(0, n0 - offset) / kBM * kBM;
  const bool tile_seen = n0 < key_end && n0 + kBN > key_start;
  for (int hq = hk * group; tile_seen && hq < (hk + 1) * group; ++hq) {
    const T* q = static_cast<const T*>(f.q) + (f.q_layout.cu_seqlens ? 0 : b * f.q_batch_stride) +
                 sb.q_row0 * f.q_row_stride + hq * f.q_head_stride;
    const T* dout = static_cast<const T*>(p.dout) +
                    (f.q_layout.cu_seqlens ? 0 : b * p.do_batch_stride) +
                    sb.q_row0 * p.do_row_stride + hq * p.do_head_stride;
    for (int m0 = m_first; m0 < sb.len_q; m0 += kBM) {
      __syncthreads();  // previous tile's readers are done
      detail::load_tile<T, D>(sQ, L::kLdT, q + m0 * f.q_row_stride, f.q_row_stride, kBM,
                              sb.len_q - m0, tid, kThreads);
      detail::load_tile<T, D>(sdO, L::kLdT, dout + m0 * p.do_row_stride, p.do_row_stride, kBM,
                              sb.len_q - m0, tid, kThreads);
      for (int r = tid; r < kBM; r += kThreads) {
        const int i = m0 + r;
        const bool ok = i < sb.len_q;
        sLse[r] = ok ? f.lse[lse_index(f, sb, b, hq, i)] * detail::kLog2e : INFINITY;
        sDelta[r] = ok ? p.delta[lse_index(f, sb, b, hq, i)] : 0.f;
      }
      __syncthreads();

      // S = Q K^T and dP = dO V^T: 16 tiles of 16x16 each, two per warp.
#pragma unroll
      for (int t2 = 0; t2 < 2; ++t2) {
        const int tile = warp * 2 + t2, qs = tile / 4, kt = tile % 4;
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> s_acc, dp_acc;
        wmma::fill_fragment(s_acc, 0.f);
        wmma::fill_fragment(dp_acc, 0.f);
#pragma unroll
        for (int kk = 0; kk < D / 16; ++kk) {
          wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
          wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> bt;
          wmma::load_matrix_sync(a, sQ + qs * 16 * L::kLdT + kk * 16, L::kLdT);
          wmma::load_matrix_sync(bt, sK + kt * 16 * L::kLdT + kk * 16, L::kLdT);
          wmma::mma_sync(s_acc, a, bt, s_acc);
          wmma::load_matrix_sync(a, sdO + qs * 16 * L::kLdT + kk * 16, L::kLdT);
          wmma::load_matrix_sync(bt, sV + kt * 16 * L::kLdT + kk * 16, L::kLdT);
          wmma::mma_sync(dp_acc, a, bt, dp_acc);
        }
        wmma::store_matrix_sync(sS + qs * 16 * L::kLdS + kt * 16, s_acc, L::kLdS,
                                wmma::mem_row_major);
        wmma::store_matrix_sync(sdP + qs * 16 * L::kLdS + kt * 16, dp_acc, L::kLdS,
                                wmma::mem_row_major);
      }
      __syncthreads();

      // P = exp(scale * S - lse) under the mask; dS = P * (dP - delta).
      for (int idx = tid; idx < kBM * kBN; idx += kThreads) {
        const int r = idx / kBN, c = idx % kBN, i = m0 + r, j = n0 + c;
        const bool ok = i < sb.len_q && j < key_end && j >= key_start && j <= offset + i;
        const float pr = ok ? exp2f(sS[r * L::kLdS + c] * scale_log2 - sLse[r]) : 0.f;
        const float dsv = pr * (sdP[r * L::kLdS + c] - sDelta[r]);
        sP[r * L::kLdP + c] = detail::from_float<T>(pr);
        sdS[r * L::kLdP + c] = detail::from_float<T>(dsv);
      }
      __syncthreads();

      // dV += P^T dO, dK += dS^T Q (this warp's key strip and d half).
#pragma unroll
      for (int t = 0; t < kDT; ++t) {
        const int dt = dh * kDT + t;
#pragma unroll
        for (int kk = 0; kk < kBM / 16; ++kk) {
          wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::col_major> at;
          wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> bm;
          wmma::load_matrix_sync(at, sP + kk * 16 * L::kLdP + ks * 16, L::kLdP);
          wmma::load_matrix_sync(bm, sdO + kk * 16 * L::kLdT + dt * 16, L::kLdT);
          wmma::mma_sync(dv_acc[t], at, bm, dv_acc[t]);
          wmma::load_matrix_sync(at, sdS + kk * 16 * L::kLdP + ks * 16, L::kLdP);
          wmma::load_matrix_sync(bm, sQ + kk * 16 * L::kLdT + dt * 16, L::kLdT);
          wmma::mma_sync(dk_acc[t], at, bm, dk_acc[t]);
        }
      }

      // dQ tile = dS K (query strip qs, d half), staged in fp32 then added to dq_accum.
      const int qs = warp % 4;
#pragma unroll
      for (int t = 0; t < kDT; ++t) {
        const int dt = dh * kDT + t;
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> dq_acc;
        wmma::fill_fragment(dq_acc, 0.f);
#pragma unroll
        for (int kk = 0; kk < kBN / 16; ++kk) {
          wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
          wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> bm;
          wmma::load_matrix_sync(a, sdS + qs * 16 * L::kLdP + kk * 16, L::kLdP);
          wmma::load_matrix_sync(bm, sK + kk * 16 * L::kLdT + dt * 16, L::kLdT);
          wmma::mma_sync(dq_acc, a, bm, dq_acc);
        }
        wmma::store_matrix_sync(sAcc + qs * 16 * L::kLdAcc + dt * 16, dq_acc, L::kLdAcc,
                                wmma::mem_row_major);
      }
      __syncthreads();
      const int rows = min(kBM, sb.len_q - m0);
      for (int idx = tid; idx < rows * D; idx += kThreads) {
        const int r = idx / D, c = idx % D;
        float* dst = p.dq_accum + (dq_row(f, sb, b, m0 + r) * f.heads_q + hq) * D + c;
        atomicAdd(dst, sAcc[r * L::kLdAcc + c] * f.scale);
      }
    }
  }

  // Write dK (times scale) and dV through the staging area.
  const int rows = min(kBN, sb.len_k - n0);
#pragma unroll
  for (int which = 0; which < 2; ++which) {
    __syncthreads();
#pragma unroll
    for (int t = 0; t < kDT; ++t) {
      const int dt = dh * kDT + t;
      wmma::store_matrix_sync(sAcc + ks * 16 * L::kLdAcc + dt * 16,
                              which == 0 ? dk_acc[t] : dv_acc[t], L::kLdAcc, wmma::mem_row_major);
    }
    __syncthreads();
    T* dst = static_cast<T*>(which == 0 ? p.dk : p.dv);
    const int64_t bs = which == 0 ? p.dk_batch_stride : p.dv_batch_stride;
    const int64_t rs = which == 0 ? p.dk_row_stride : p.dv_row_stride;
    const int64_t hs = which == 0 ? p.dk_head_stride : p.dv_head_stride;
    dst += (f.k_layout.cu_seqlens ? 0 : b * bs) + (sb.k_row0 + n0) * rs + hk * hs;
    const float mult = which == 0 ? f.scale : 1.f;
    for (int idx = tid; idx < rows * D; idx += kThreads) {
      const int r = idx / D, c = idx % D;
      dst[r * rs + c] = detail::from_float<T>(sAcc[r * L::kLdAcc + c] * mult);
    }
  }
}

// dq[row, h, :] = dq_accum[row, h, :] in the input dtype.
template <class T, int D>
__global__ void attention_bwd_convert_dq(const AttentionBwdParams p) {
  const AttentionFwdParams& f = p.fwd;
  const int64_t n = p.dq_accum_rows * f.heads_q * D;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int c = static_cast<int>(idx % D);
    const int h = static_cast<int>(idx / D % f.heads_q);
    const int64_t row = idx / D / f.heads_q;
    int64_t off;
    if (f.q_layout.cu_seqlens) {
      off = row * p.dq_row_stride;
    } else {
      off = row / f.q_layout.seqlen * p.dq_batch_stride + row % f.q_layout.seqlen * p.dq_row_stride;
    }
    static_cast<T*>(p.dq)[off + h * p.dq_head_stride + c] = detail::from_float<T>(p.dq_accum[idx]);
  }
}

template <class T, int D>
cudaError_t launch_bwd(const AttentionBwdParams& p, cudaStream_t stream) {
  const AttentionFwdParams& f = p.fwd;
  const int max_q = f.q_layout.seqlen, max_k = f.k_layout.seqlen;
  cudaError_t err =
      cudaMemsetAsync(p.dq_accum, 0, sizeof(float) * p.dq_accum_rows * f.heads_q * D, stream);
  if (err != cudaSuccess) return err;
  constexpr int kRowsPerBlock = 4;
  const dim3 pre_grid(detail::ceil_div(max_q, kRowsPerBlock), f.batch, f.heads_q);
  GRPO_LAUNCH(pre_grid, 32 * kRowsPerBlock, 0, stream, attention_bwd_preprocess<T, D>)(p);
  if ((err = cudaGetLastError()) != cudaSuccess) return err;
  // No keys at all (max_k == 0): no dK/dV rows, dQ stays zero; a grid of 0 blocks is an error.
  if (max_k > 0) {
    const size_t smem = BwdSmem<T, D>::bytes;
    err = cudaFuncSetAttribute(attention_bwd_kernel<T, D>,
                               cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return err;
    const dim3 grid(detail::ceil_div(max_k, kBN), f.batch, f.heads_kv);
    GRPO_LAUNCH(grid, kThreads, smem, stream, attention_bwd_kernel<T, D>)(p);
    if ((err = cudaGetLastError()) != cudaSuccess) return err;
  }
  const int64_t n = p.dq_accum_rows * f.heads_q * D;
  const int blocks = static_cast<int>(std::min<int64_t>((n + 255) / 256, 65536));
  GRPO_LAUNCH(blocks, 256, 0, stream, attention_bwd_convert_dq<T, D>)(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t attention_backward(const AttentionBwdParams& p, cudaStream_t stream) {
  const AttentionFwdParams& f = p.fwd;
  if (f.batch == 0 || f.q_layout.seqlen == 0 || p.dq_accum_rows == 0) return cudaSuccess;
  if (f.batch < 0 || f.heads_kv <= 0 || f.heads_q % f.heads_kv != 0) return cudaErrorInvalidValue;
  return GRPO_DISPATCH_DTYPE_HEADDIM(f.dtype, f.head_dim,
                                     [&] { return launch_bwd<T, kD>(p, stream); });
}

}  // namespace grpo::kernels
