// Shared device helpers for kernels/*.cu: element types, conversions, warp reductions and the
// dtype x head-dim dispatch. Internal to kernels/ (not installed with the public headers).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "grpo/kernels/attention.h"

// Kernel launches and dynamic shared memory go through these two macros so that tests/emu can
// run the kernels on the CPU (its cuda_runtime.h defines them for the emulator).
#ifndef GRPO_KERNELS_EMULATED
#define GRPO_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#define GRPO_DYNAMIC_SMEM(type, name) extern __shared__ __align__(128) type name[]
#endif

namespace grpo::kernels::detail {

template <class T>
__device__ __forceinline__ float to_float(T x);
template <>
__device__ __forceinline__ float to_float<__half>(__half x) {
  return __half2float(x);
}
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 x) {
  return __bfloat162float(x);
}

template <class T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

__device__ __forceinline__ float warp_max(float x) {
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__host__ __device__ constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }
__host__ __device__ constexpr size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

// Copies a (rows, D) tile of 16-bit elements from global rows (row stride in elements, D
// contiguous, 16-byte aligned) into shared memory with leading dimension ld, zero-filling rows at
// or past `valid_rows`. All threads of the block take part.
template <class T, int D>
__device__ __forceinline__ void load_tile(T* smem, int ld, const T* gmem, int64_t row_stride,
                                          int rows, int valid_rows, int tid, int nthreads) {
  constexpr int kVec = 8;  // 16 bytes of 16-bit elements
  constexpr int kVecPerRow = D / kVec;
  for (int idx = tid; idx < rows * kVecPerRow; idx += nthreads) {
    const int r = idx / kVecPerRow, c = (idx % kVecPerRow) * kVec;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < valid_rows) val = *reinterpret_cast<const uint4*>(gmem + r * row_stride + c);
    *reinterpret_cast<uint4*>(smem + r * ld + c) = val;
  }
}

}  // namespace grpo::kernels::detail

// Calls BODY with `T` bound to the element type and `kD` to the head dim; returns
// cudaErrorInvalidValue for anything not compiled.
#define GRPO_DISPATCH_DTYPE_HEADDIM(dtype, head_dim, ...) \
  [&]() -> cudaError_t {                                  \
    if ((dtype) == ::grpo::kernels::DType::bfloat16) {    \
      using T = __nv_bfloat16;                            \
      if ((head_dim) == 64) {                             \
        constexpr int kD = 64;                            \
        return __VA_ARGS__();                             \
      }                                                   \
      if ((head_dim) == 128) {                            \
        constexpr int kD = 128;                           \
        return __VA_ARGS__();                             \
      }                                                   \
    } else {                                              \
      using T = __half;                                   \
      if ((head_dim) == 64) {                             \
        constexpr int kD = 64;                            \
        return __VA_ARGS__();                             \
      }                                                   \
      if ((head_dim) == 128) {                            \
        constexpr int kD = 128;                           \
        return __VA_ARGS__();                             \
      }                                                   \
    }                                                     \
    return cudaErrorInvalidValue;                         \
  }()
