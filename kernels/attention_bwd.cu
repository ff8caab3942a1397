// Training attention backward (FlashAttention-2 order): a preprocess kernel computes
// delta = rowsum(dO * O); the main kernel takes one 64-key tile of one KV head per block (4 warps,
// 16 keys each), walks every query head of its group and every query tile that sees those keys,
// recomputes P^T = exp(scale * K Q^T - lse) and dS^T = P^T * (V dO^T - delta) in registers
// (mma.sync m16n8k16, fp32 accumulation), accumulates dV += P^T dO and dK += dS^T Q in registers,
// and adds dQ = dS K (from dS^T staged in shared memory) into an fp32 buffer with atomics; a last
// kernel converts dQ to the input dtype.
#include <cmath>

#include "attention_tiles.cuh"
#include "common.cuh"
#include "grpo/kernels/attention.h"

namespace grpo::kernels {
namespace {

using detail::async_tile;
using detail::ldmatrix_x4_trans;
using detail::pack2;

constexpr int kBM = 64, kBN = 64, kWarps = 4, kThreads = kWarps * 32;
static_assert(kBM == kBN && kBM == 16 * kWarps, "square tiles, 16 rows per warp");

// K, V, Q, dO tiles (64 x D, rows padded by 16 bytes against bank conflicts), dS^T (64 keys x 64
// queries, padded likewise), and the query tile's lse and delta.
template <class T, int D>
struct BwdSmem {
  static constexpr int kLd = D + 8;
  static constexpr int kLdS = kBM + 8;
  static constexpr size_t tile = sizeof(T) * kBN * kLd;
  static constexpr size_t k = 0, v = tile, q = 2 * tile, dout = 3 * tile, ds = 4 * tile;
  static constexpr size_t stats = ds + sizeof(T) * kBN * kLdS;
  static constexpr size_t bytes = stats + sizeof(float) * 2 * kBM;
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
  constexpr int kLd = L::kLd, kLdS = L::kLdS;
  const AttentionFwdParams& f = p.fwd;
  GRPO_DYNAMIC_SMEM(unsigned char, smem);
  T* sK = reinterpret_cast<T*>(smem + L::k);
  T* sV = reinterpret_cast<T*>(smem + L::v);
  T* sQ = reinterpret_cast<T*>(smem + L::q);
  T* sdO = reinterpret_cast<T*>(smem + L::dout);
  T* sdS = reinterpret_cast<T*>(smem + L::ds);  // dS^T: row = key, column = query
  float* sLse = reinterpret_cast<float*>(smem + L::stats);
  float* sDelta = sLse + kBM;

  const int n0 = blockIdx.x * kBN, b = blockIdx.y, hk = blockIdx.z;
  const SeqBounds sb = seq_bounds(f, b);
  if (n0 >= sb.len_k) return;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  const int r0 = warp * 16;  // this warp's keys (rows of the key tile) and, for dQ, queries
  const int group = f.heads_q / f.heads_kv;
  const int offset = sb.len_k - sb.len_q;
  const int key_start = f.key_start ? f.key_start[b] : 0;
  const int key_end = f.key_end ? min(f.key_end[b], sb.len_k) : sb.len_k;
  const float scale_log2 = f.scale * detail::kLog2e;

  const T* k = static_cast<const T*>(f.k) + (f.k_layout.cu_seqlens ? 0 : b * f.k_batch_stride) +
               (sb.k_row0 + n0) * f.k_row_stride + hk * f.k_head_stride;
  const T* v = static_cast<const T*>(f.v) + (f.k_layout.cu_seqlens ? 0 : b * f.v_batch_stride) +
               (sb.k_row0 + n0) * f.v_row_stride + hk * f.v_head_stride;
  async_tile<T, D>(sK, kLd, k, f.k_row_stride, kBN, sb.len_k - n0, tid, kThreads);
  async_tile<T, D>(sV, kLd, v, f.v_row_stride, kBN, sb.len_k - n0, tid, kThreads);
  detail::cp_async_commit();

  float dk[D / 8][4] = {}, dv[D / 8][4] = {};  // this warp's 16 keys x D

  // Queries that can see key n0 or later: offset + i >= n0. A tile wholly outside
  // [key_start, key_end) is seen by no query: its dK, dV are zeros.
  const int m_first = max(0, n0 - offset) / kBM * kBM;
  const bool tile_seen = n0 < key_end && n0 + kBN > key_start;
  const int key0 = n0 + r0 + g;  // this lane's keys: key0 and key0 + 8
  for (int hq = hk * group; tile_seen && hq < (hk + 1) * group; ++hq) {
    const T* q = static_cast<const T*>(f.q) + (f.q_layout.cu_seqlens ? 0 : b * f.q_batch_stride) +
                 sb.q_row0 * f.q_row_stride + hq * f.q_head_stride;
    const T* dout = static_cast<const T*>(p.dout) +
                    (f.q_layout.cu_seqlens ? 0 : b * p.do_batch_stride) +
                    sb.q_row0 * p.do_row_stride + hq * p.do_head_stride;
    for (int m0 = m_first; m0 < sb.len_q; m0 += kBM) {
      // No barrier needed before these writes: the previous tile's last reads of sQ, sdO and the
      // stats came before its dS^T barrier, and its reads of sdS (dQ) end before every warp
      // reaches the barrier below, after which sdS is written again.
      async_tile<T, D>(sQ, kLd, q + m0 * f.q_row_stride, f.q_row_stride, kBM, sb.len_q - m0, tid,
                       kThreads);
      async_tile<T, D>(sdO, kLd, dout + m0 * p.do_row_stride, p.do_row_stride, kBM, sb.len_q - m0,
                       tid, kThreads);
      detail::cp_async_commit();
      for (int r = tid; r < kBM; r += kThreads) {
        const int i = m0 + r;
        const bool ok = i < sb.len_q;
        sLse[r] = ok ? f.lse[lse_index(f, sb, b, hq, i)] * detail::kLog2e : INFINITY;
        sDelta[r] = ok ? p.delta[lse_index(f, sb, b, hq, i)] : 0.f;
      }
      detail::cp_async_wait<0>();
      __syncthreads();

      // S^T = K Q^T for this warp's 16 keys against the 64 queries, then P^T = exp(scale * S^T -
      // lse) under the mask (0 elsewhere; a query past the sequence has lse +inf), kept rounded
      // to T as the A fragments of dV += P^T dO.
      uint32_t pt[kBM / 16][4], dst[kBM / 16][4];
      {
        float acc[kBM / 8][4] = {};
        detail::mma_abt_smem<T, D, kBM>(acc, sK, r0, sQ, kLd, lane);
#pragma unroll
        for (int nt = 0; nt < kBM / 8; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int c = nt * 8 + 2 * t + (e & 1), i = m0 + c, j = key0 + (e >= 2 ? 8 : 0);
            const bool ok = j >= key_start && j < key_end && j <= offset + i;
            acc[nt][e] = ok ? exp2f(acc[nt][e] * scale_log2 - sLse[c]) : 0.f;
          }
        }
        detail::to_a_fragments<T, kBM>(pt, acc);
      }
      // dP^T = V dO^T, then dS^T = P^T * (dP^T - delta) with P^T as rounded above (as a
      // T-precision softmax backward has it), also staged in shared memory for dQ. Score n-tile
      // nt's rows g and g + 8 are A fragment nt / 2's registers 2 (nt % 2) and 2 (nt % 2) + 1.
      {
        float acc[kBM / 8][4] = {};
        detail::mma_abt_smem<T, D, kBM>(acc, sV, r0, sdO, kLd, lane);
#pragma unroll
        for (int nt = 0; nt < kBM / 8; ++nt) {
#pragma unroll
          for (int hr = 0; hr < 2; ++hr) {
            float p0, p1;
            detail::unpack2<T>(pt[nt / 2][2 * (nt % 2) + hr], p0, p1);
            const int c = nt * 8 + 2 * t;
            acc[nt][2 * hr] = p0 * (acc[nt][2 * hr] - sDelta[c]);
            acc[nt][2 * hr + 1] = p1 * (acc[nt][2 * hr + 1] - sDelta[c + 1]);
          }
        }
        detail::to_a_fragments<T, kBM>(dst, acc);
#pragma unroll
        for (int nt = 0; nt < kBM / 8; ++nt) {
#pragma unroll
          for (int hr = 0; hr < 2; ++hr) {
            *reinterpret_cast<uint32_t*>(sdS + (r0 + g + 8 * hr) * kLdS + nt * 8 + 2 * t) =
                dst[nt / 2][2 * (nt % 2) + hr];
          }
        }
      }

      // dV += P^T dO and dK += dS^T Q.
      detail::mma_ab<T, D, kBM>(dv, pt, sdO, kLd, lane);
      detail::mma_ab<T, D, kBM>(dk, dst, sQ, kLd, lane);
      __syncthreads();  // all of dS^T is in shared memory

      // dQ (this warp's 16 queries x D) = dS K, 64 columns at a time: the A fragments come from
      // dS^T read transposed (its rows are keys), K rows are B.
      const int rows = min(kBM, sb.len_q - m0);
      uint32_t dsa[kBN / 16][4];
#pragma unroll
      for (int kc = 0; kc < kBN / 16; ++kc) {
        ldmatrix_x4_trans(dsa[kc], detail::bt_rows(sdS, kLdS, kc * 16, r0, lane));
      }
#pragma unroll
      for (int dc = 0; dc < D / 64; ++dc) {
        float dq[8][4] = {};
        detail::mma_ab<T, 64, kBN>(dq, dsa, sK + dc * 64, kLd, lane);
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          const int r = r0 + g + 8 * hr;
          if (r >= rows) continue;
          float* dst = p.dq_accum + (dq_row(f, sb, b, m0 + r) * f.heads_q + hq) * D + dc * 64;
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) {
            atomicAdd(dst + nt * 8 + 2 * t, dq[nt][2 * hr] * f.scale);
            atomicAdd(dst + nt * 8 + 2 * t + 1, dq[nt][2 * hr + 1] * f.scale);
          }
        }
      }
    }
  }
  detail::cp_async_wait<0>();  // the K/V copies, when no query tile waited for them

  // dK (times scale) and dV from registers, two elements per store.
  const int rows = min(kBN, sb.len_k - n0);
  T* dk_out = static_cast<T*>(p.dk) + (f.k_layout.cu_seqlens ? 0 : b * p.dk_batch_stride) +
              (sb.k_row0 + n0) * p.dk_row_stride + hk * p.dk_head_stride;
  T* dv_out = static_cast<T*>(p.dv) + (f.k_layout.cu_seqlens ? 0 : b * p.dv_batch_stride) +
              (sb.k_row0 + n0) * p.dv_row_stride + hk * p.dv_head_stride;
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    const int r = r0 + g + 8 * hr;
    if (r >= rows) continue;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      const int c = dt * 8 + 2 * t;
      *reinterpret_cast<uint32_t*>(dk_out + r * p.dk_row_stride + c) =
          pack2<T>(dk[dt][2 * hr] * f.scale, dk[dt][2 * hr + 1] * f.scale);
      *reinterpret_cast<uint32_t*>(dv_out + r * p.dv_row_stride + c) =
          pack2<T>(dv[dt][2 * hr], dv[dt][2 * hr + 1]);
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
