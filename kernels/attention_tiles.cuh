// Warp-level pieces of the attention kernels (forward, backward, decode): one warp's 16-row
// strips of tensor-core products over tiles in shared memory, and the online softmax over a
// strip of scores. Layouts are common.cuh's (mma.m16n8k16 fragments; a lane holds rows g and
// g + 8, g = lane / 4, and columns 2t, 2t + 1 of each 8-column n-tile, t = lane % 4). Tiles are
// row-major in shared memory with leading dimension ld (elements, rows 16-byte aligned).
// Internal to kernels/.
#pragma once

#include <cmath>

#include "common.cuh"

namespace grpo::kernels::detail {

// The shared-memory address this lane gives ldmatrix_x4 so that it returns the A fragment of the
// 16 x 16 block at (row0, col0) of a row-major tile: lanes 8j..8j+7 address rows 0-7 (j even) or
// 8-15 (j odd) at columns 0-7 (j < 2) or 8-15.
template <class T>
__device__ __forceinline__ const T* a_rows(const T* tile, int ld, int row0, int col0, int lane) {
  const int j = lane / 8;
  return tile + (row0 + (j % 2) * 8 + lane % 8) * ld + col0 + (j / 2) * 8;
}

// The address for ldmatrix_x4 to return the B fragments of two n-tiles when B^T is stored:
// B (k x n) = rows n0..n0+15 of a row-major tile read at columns k0..k0+15. Registers 0-1 are
// n-tile n0, 2-3 n-tile n0 + 8.
template <class T>
__device__ __forceinline__ const T* bt_rows(const T* tile, int ld, int n0, int k0, int lane) {
  const int j = lane / 8;
  return tile + (n0 + (j / 2) * 8 + lane % 8) * ld + k0 + (j % 2) * 8;
}

// The address for ldmatrix_x4_trans to return the B fragments of two n-tiles when B itself is
// stored: B (k x n) = rows k0..k0+15 of a row-major tile at columns n0..n0+15.
template <class T>
__device__ __forceinline__ const T* b_rows(const T* tile, int ld, int k0, int n0, int lane) {
  const int j = lane / 8;
  return tile + (k0 + (j % 2) * 8 + lane % 8) * ld + n0 + (j / 2) * 8;
}

// A fragments of a 16 x D strip (rows row0..row0+15 of a row-major tile), one per 16 columns.
template <class T, int D>
__device__ __forceinline__ void load_a_strip(uint32_t (&a)[D / 16][4], const T* tile, int ld,
                                             int row0, int lane) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) ldmatrix_x4(a[kk], a_rows(tile, ld, row0, kk * 16, lane));
}

// acc (16 x N) += A B^T over one 16-column block kk of the D columns: A's fragment for that block,
// B the first N rows of a row-major (N x D) tile.
template <class T, int N>
__device__ __forceinline__ void mma_abt_block(float (&acc)[N / 8][4], const uint32_t (&a)[4],
                                              const T* tile, int ld, int kk, int lane) {
#pragma unroll
  for (int np = 0; np < N / 16; ++np) {
    uint32_t b[4];
    ldmatrix_x4(b, bt_rows(tile, ld, np * 16, kk * 16, lane));
    mma_16816<T>(acc[2 * np], a, b[0], b[1]);
    mma_16816<T>(acc[2 * np + 1], a, b[2], b[3]);
  }
}

// acc (16 x N) += A B^T, A given as fragments (16 x D), B the first N rows of a row-major
// (N x D) tile: scores of a strip of queries against N keys.
template <class T, int D, int N>
__device__ __forceinline__ void mma_abt(float (&acc)[N / 8][4], const uint32_t (&a)[D / 16][4],
                                        const T* tile, int ld, int lane) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) mma_abt_block<T, N>(acc, a[kk], tile, ld, kk, lane);
}

// Like mma_abt with A read from shared memory one 16-column block at a time (rows row0..row0+15
// of `a_tile`), which holds fewer registers.
template <class T, int D, int N>
__device__ __forceinline__ void mma_abt_smem(float (&acc)[N / 8][4], const T* a_tile, int row0,
                                             const T* tile, int ld, int lane) {
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    uint32_t a[4];
    ldmatrix_x4(a, a_rows(a_tile, ld, row0, kk * 16, lane));
    mma_abt_block<T, N>(acc, a, tile, ld, kk, lane);
  }
}

// A strip of accumulators (16 x N, fp32) rounded to T as the A fragments of the next product:
// the accumulators of two adjacent n-tiles are the A fragment of one 16-column block.
template <class T, int N>
__device__ __forceinline__ void to_a_fragments(uint32_t (&a)[N / 16][4],
                                               const float (&s)[N / 8][4]) {
#pragma unroll
  for (int kc = 0; kc < N / 16; ++kc) {
    a[kc][0] = pack2<T>(s[2 * kc][0], s[2 * kc][1]);
    a[kc][1] = pack2<T>(s[2 * kc][2], s[2 * kc][3]);
    a[kc][2] = pack2<T>(s[2 * kc + 1][0], s[2 * kc + 1][1]);
    a[kc][3] = pack2<T>(s[2 * kc + 1][2], s[2 * kc + 1][3]);
  }
}

// acc (16 x D) += A B, A given as fragments (16 x N), B the first N rows of a row-major (N x D)
// tile: probabilities times values, or dS^T Q, P^T dO in the backward.
template <class T, int D, int N>
__device__ __forceinline__ void mma_ab(float (&acc)[D / 8][4], const uint32_t (&a)[N / 16][4],
                                       const T* tile, int ld, int lane) {
#pragma unroll
  for (int kc = 0; kc < N / 16; ++kc) {
#pragma unroll
    for (int dp = 0; dp < D / 16; ++dp) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, b_rows(tile, ld, kc * 16, dp * 16, lane));
      mma_16816<T>(acc[2 * dp], a[kc], b[0], b[1]);
      mma_16816<T>(acc[2 * dp + 1], a[kc], b[2], b[3]);
    }
  }
}

// One step of the online softmax over a strip of N scores per row, already scaled to the log2
// domain and masked (-inf): the row maximum and this lane's share of the row sum are updated,
// the scores become probabilities, and the output strip o is rescaled. The 4 lanes of a row
// group hold a row's scores between them. A row with no score yet keeps probabilities 0.
template <int D, int N>
__device__ __forceinline__ void online_softmax(float (&s)[N / 8][4], float (&row_max)[2],
                                               float (&row_sum)[2], float (&o)[D / 8][4]) {
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    float mx = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < N / 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * hr], s[nt][2 * hr + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_new = fmaxf(row_max[hr], mx);
    const float m_use = m_new == -INFINITY ? 0.f : m_new;  // no key yet: keep p = 0
    const float alpha = exp2f(row_max[hr] - m_use);        // old max -inf: 0 (all sums are 0)
    row_max[hr] = m_new;
    float sum = 0.f;
#pragma unroll
    for (int nt = 0; nt < N / 8; ++nt) {
#pragma unroll
      for (int c = 0; c < 2; ++c) {
        const float pr = exp2f(s[nt][2 * hr + c] - m_use);
        s[nt][2 * hr + c] = pr;
        sum += pr;
      }
    }
    row_sum[hr] = row_sum[hr] * alpha + sum;
#pragma unroll
    for (int dt = 0; dt < D / 8; ++dt) {
      o[dt][2 * hr] *= alpha;
      o[dt][2 * hr + 1] *= alpha;
    }
  }
}

// The row sums of a strip from the lanes' shares (every lane of the row group gets them).
__device__ __forceinline__ void reduce_row_sums(float (&row_sum)[2]) {
#pragma unroll
  for (int hr = 0; hr < 2; ++hr) {
    row_sum[hr] += __shfl_xor_sync(0xffffffffu, row_sum[hr], 1);
    row_sum[hr] += __shfl_xor_sync(0xffffffffu, row_sum[hr], 2);
  }
}

}  // namespace grpo::kernels::detail
