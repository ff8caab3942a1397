// Training attention forward, FlashAttention-2 style: one block of 4 warps per (64-query tile,
// sequence, query head); each warp owns 16 query rows and keeps its scores, probabilities, output
// accumulator and row statistics in registers (mma.sync m16n8k16 with fp32 accumulation, operands
// from shared memory through ldmatrix). K and V tiles of 64 keys are double-buffered in shared
// memory and loaded with cp.async, so the next tile's load runs under this tile's products.
#include <cmath>

#include "attention_tiles.cuh"
#include "common.cuh"
#include "grpo/kernels/attention.h"

namespace grpo::kernels {
namespace {

using detail::async_tile;
using detail::cp_async_commit;
using detail::cp_async_wait;
using detail::pack2;

constexpr int kBM = 64, kBN = 64, kWarps = 4, kThreads = kWarps * 32;
static_assert(kBM == kBN && kBM == 16 * kWarps, "square tiles, 16 rows per warp");

// Q, then two K and two V buffers, each a 64 x D tile whose rows are padded by 16 bytes so that
// the 8 rows one ldmatrix reads fall on distinct banks.
template <class T, int D>
struct FwdSmem {
  static constexpr int kLd = D + 8;
  static constexpr size_t tile = sizeof(T) * kBN * kLd;
  static constexpr size_t q = 0, k = tile, v = 3 * tile, bytes = 5 * tile;
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
  constexpr int kLd = L::kLd;
  GRPO_DYNAMIC_SMEM(unsigned char, smem);
  T* sQ = reinterpret_cast<T*>(smem + L::q);
  T* sK = reinterpret_cast<T*>(smem + L::k);  // buffers at sK and sK + kBN * kLd
  T* sV = reinterpret_cast<T*>(smem + L::v);

  // Last query tiles first: under the causal mask they see the most keys, so the grid's tail
  // is made of the cheap ones.
  const int m0 = static_cast<int>(gridDim.x - 1 - blockIdx.x) * kBM;
  const int b = blockIdx.y, h = blockIdx.z;
  const int hk = h / (p.heads_q / p.heads_kv);
  const SeqBounds sb = seq_bounds(p, b);
  if (m0 >= sb.len_q) return;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;  // fragment row group and column pair
  const int r0 = warp * 16;              // this warp's rows of the tile

  const T* q = static_cast<const T*>(p.q) + (p.q_layout.cu_seqlens ? 0 : b * p.q_batch_stride) +
               (sb.q_row0 + m0) * p.q_row_stride + h * p.q_head_stride;
  const T* k = static_cast<const T*>(p.k) + (p.k_layout.cu_seqlens ? 0 : b * p.k_batch_stride) +
               sb.k_row0 * p.k_row_stride + hk * p.k_head_stride;
  const T* v = static_cast<const T*>(p.v) + (p.k_layout.cu_seqlens ? 0 : b * p.v_batch_stride) +
               sb.k_row0 * p.v_row_stride + hk * p.v_head_stride;

  const int offset = sb.len_k - sb.len_q;  // bottom-right causal alignment
  const int key_start = p.key_start ? p.key_start[b] : 0;
  const int key_end = p.key_end ? min(p.key_end[b], sb.len_k) : sb.len_k;
  const int n_end = min(key_end, offset + m0 + kBM);  // one past the last key any row sees
  const int n_begin = max(key_start, 0) / kBN * kBN;
  const int n_tiles = n_end > n_begin ? detail::ceil_div(n_end - n_begin, kBN) : 0;
  const float scale_log2 = p.scale * detail::kLog2e;

  // Groups in flight, in order: {Q, K0}, {V0}, then {K(i+1)} and {V(i+1)} issued in tile i.
  if (n_tiles > 0) {
    async_tile<T, D>(sQ, kLd, q, p.q_row_stride, kBM, sb.len_q - m0, tid, kThreads);
    async_tile<T, D>(sK, kLd, k + n_begin * p.k_row_stride, p.k_row_stride, kBN, sb.len_k - n_begin,
                     tid, kThreads);
    cp_async_commit();
    async_tile<T, D>(sV, kLd, v + n_begin * p.v_row_stride, p.v_row_stride, kBN, sb.len_k - n_begin,
                     tid, kThreads);
    cp_async_commit();
  }

  float o[D / 8][4] = {};                     // this warp's 16 x D output, n-tiles of 8 columns
  float row_max[2] = {-INFINITY, -INFINITY};  // rows g and g + 8, log2 domain
  float row_sum[2] = {0.f, 0.f};              // this lane's share of the row sums
  uint32_t qa[D / 16][4];                     // Q as A fragments, loaded with the first tile

  for (int it = 0; it < n_tiles; ++it) {
    const int n0 = n_begin + it * kBN;
    const bool more = it + 1 < n_tiles;
    const T* tK = sK + (it & 1) * kBN * kLd;
    const T* tV = sV + (it & 1) * kBN * kLd;
    cp_async_wait<1>();  // this thread's K(it) (and Q) copies landed
    __syncthreads();     // everyone's have; everyone is done with tile it - 1's buffers
    if (more) {
      const int n1 = n0 + kBN;
      async_tile<T, D>(sK + ((it + 1) & 1) * kBN * kLd, kLd, k + n1 * p.k_row_stride,
                       p.k_row_stride, kBN, sb.len_k - n1, tid, kThreads);
      cp_async_commit();
    }
    if (it == 0) detail::load_a_strip<T, D>(qa, sQ, kLd, r0, lane);

    // S (16 x 64) = Q K^T.
    float s[kBN / 8][4] = {};
    detail::mma_abt<T, D, kBN>(s, qa, tK, kLd, lane);

    // Scale into the log2 domain and mask, unless every key of the tile is visible to every row
    // of this warp. Rows past the sequence need no mask: their Q rows are 0 and nothing of them
    // is written.
    const int i0 = m0 + r0 + g;  // this lane's rows: i0 and i0 + 8
    const bool unmasked =
        n0 >= key_start && n0 + kBN <= key_end && n0 + kBN - 1 <= offset + m0 + r0;
#pragma unroll
    for (int nt = 0; nt < kBN / 8; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[nt][e] * scale_log2;
        if (!unmasked) {
          const int i = i0 + (e >= 2 ? 8 : 0), j = n0 + nt * 8 + 2 * t + (e & 1);
          if (j < key_start || j >= key_end || j > offset + i) x = -INFINITY;
        }
        s[nt][e] = x;
      }
    }

    detail::online_softmax<D, kBN>(s, row_max, row_sum, o);

    if (more) {
      cp_async_wait<1>();  // V(it) landed; K(it + 1) may still be in flight
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    if (more) {
      const int n1 = n0 + kBN;
      async_tile<T, D>(sV + ((it + 1) & 1) * kBN * kLd, kLd, v + n1 * p.v_row_stride,
                       p.v_row_stride, kBN, sb.len_k - n1, tid, kThreads);
      cp_async_commit();
    }

    // O (16 x D) += P V.
    uint32_t pa[kBN / 16][4];
    detail::to_a_fragments<T, kBN>(pa, s);
    detail::mma_ab<T, D, kBN>(o, pa, tV, kLd, lane);
  }

  // Epilogue: O / l staged through this warp's rows of sQ (only this warp reads them, and every
  // copy into sQ landed before the first tile's barrier), then written 16 bytes at a time;
  // lse = ln(sum exp(scale * s)) (+inf for a row that saw no key).
  detail::reduce_row_sums(row_sum);
  const float inv[2] = {row_sum[0] > 0.f ? 1.f / row_sum[0] : 0.f,
                        row_sum[1] > 0.f ? 1.f / row_sum[1] : 0.f};
  __syncwarp();  // every lane's ldmatrix of sQ is done
#pragma unroll
  for (int dt = 0; dt < D / 8; ++dt) {
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      *reinterpret_cast<uint32_t*>(sQ + (r0 + g + 8 * hr) * kLd + dt * 8 + 2 * t) =
          pack2<T>(o[dt][2 * hr] * inv[hr], o[dt][2 * hr + 1] * inv[hr]);
    }
  }
  __syncwarp();
  T* out = static_cast<T*>(p.o) + (p.q_layout.cu_seqlens ? 0 : b * p.o_batch_stride) +
           (sb.q_row0 + m0) * p.o_row_stride + h * p.o_head_stride;
  const int rows = min(kBM, sb.len_q - m0);
  constexpr int kPerRow = D / 8;
  for (int idx = lane; idx < 16 * kPerRow; idx += 32) {
    const int r = r0 + idx / kPerRow, c = (idx % kPerRow) * 8;
    if (r < rows) {
      *reinterpret_cast<uint4*>(out + r * p.o_row_stride + c) =
          *reinterpret_cast<const uint4*>(sQ + r * kLd + c);
    }
  }
  float* lse = p.lse + (p.q_layout.cu_seqlens ? sb.q_row0 : b * p.lse_batch_stride) +
               h * p.lse_head_stride + m0;
  if (t == 0) {
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      const int r = r0 + g + 8 * hr;
      if (r < rows) {
        lse[r] = row_sum[hr] > 0.f ? (row_max[hr] + log2f(row_sum[hr])) * detail::kLn2 : INFINITY;
      }
    }
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
