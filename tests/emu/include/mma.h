// Emulated WMMA (tests/emu): nvcuda::wmma fragments hold their whole tile in every lane (row-major,
// element (r, c) at x[r * cols + c]); products accumulate in fp32. A store writes only the lane's
// share of the tile (owner() below, the way a GPU splits an accumulator over the warp),
// so a lane reading what another lane stored needs the __syncwarp a GPU needs; a load reads what
// is in memory when the lane runs, so a missing __syncwarp before it shows up too.
#pragma once

#include <type_traits>

#include "grpo_emu/half.h"
#include "grpo_emu/runtime.h"

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

using grpo_emu::from_float;
using grpo_emu::to_float;

// The lane holding accumulator element (r, c) in the sm_80 tensor-core layout: lane / 4 picks
// the row (and row + 8), lane % 4 a pair of adjacent columns (and the pair 8 further on).
inline int owner(int r, int c) { return (r % 8) * 4 + (c % 8) / 2; }

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
  static constexpr int num_elements = rows * cols;
  using element_type = T;
  T x[num_elements];
};

template <class Use, int M, int N, int K, class T, class Layout, class V>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, V v) {
  const T value = from_float<T>(to_float(v));  // exact for 16-bit and float values
  for (auto& e : f.x) e = value;
}

template <class Use, int M, int N, int K, class T, class Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const T* p, unsigned ldm) {
  static_assert(!std::is_same_v<Layout, void>, "matrix fragments need a layout");
  using F = fragment<Use, M, N, K, T, Layout>;
  for (int r = 0; r < F::rows; ++r) {
    for (int c = 0; c < F::cols; ++c) {
      f.x[r * F::cols + c] = std::is_same_v<Layout, row_major> ? p[r * ldm + c] : p[c * ldm + r];
    }
  }
}

template <int M, int N, int K, class T>
void load_matrix_sync(fragment<accumulator, M, N, K, T>& f, const T* p, unsigned ldm,
                      layout_t layout) {
  for (int r = 0; r < M; ++r) {
    for (int c = 0; c < N; ++c) {
      f.x[r * N + c] = layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r];
    }
  }
}

template <int M, int N, int K, class T>
void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm,
                       layout_t layout) {
  const int lane = grpo_emu::lane_id();
  for (int r = 0; r < M; ++r) {
    for (int c = 0; c < N; ++c) {
      if (owner(r, c) != lane) continue;
      (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[r * N + c];
    }
  }
}

template <int M, int N, int K, class TA, class LA, class LB, class TC>
void mma_sync(fragment<accumulator, M, N, K, TC>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
              const fragment<matrix_b, M, N, K, TA, LB>& b,
              const fragment<accumulator, M, N, K, TC>& c) {
  float out[M * N];
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j) {
      float acc = to_float(c.x[i * N + j]);
      for (int k = 0; k < K; ++k) {
        acc += to_float(a.x[i * K + k]) * to_float(b.x[k * N + j]);
      }
      out[i * N + j] = acc;
    }
  }
  for (int i = 0; i < M * N; ++i) d.x[i] = from_float<TC>(out[i]);
}

}  // namespace nvcuda::wmma
