// Shared device helpers for kernels/*.cu: element types, conversions, warp reductions and the
// dtype x head-dim dispatch. Internal to kernels/ (not installed with the public headers).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "grpo/kernels/attention.h"
#if defined(GRPO_KERNELS_EMULATED)
#include "grpo_emu/ptx.h"
#endif

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

// ---- Warp-level tensor-core primitives (sm_80+) ------------------------------------------------
// Fragment layouts are PTX's for mma.m16n8k16 with 16-bit inputs (g = lane / 4, t = lane % 4):
// A (16x16, row-major) a[0]: (g, 2t..2t+1), a[1]: (g+8, 2t..), a[2]: (g, 2t+8..), a[3]: (g+8,
// 2t+8..); B (16x8, k x n) b[0]: (k 2t..2t+1, n g), b[1]: (k 2t+8.., n g); C/D (16x8 fp32) c[0..1]:
// (g, 2t..2t+1), c[2..3]: (g+8, 2t..). Each 32-bit register holds two 16-bit elements, the lower
// index in the low half. The emulator (tests/emu) implements the same operations from those tables.

// Two floats rounded to T and packed as one 32-bit fragment register (lo in the low half).
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  return static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(lo))) |
         static_cast<uint32_t>(__bfloat16_as_ushort(__float2bfloat16_rn(hi))) << 16;
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  return static_cast<uint32_t>(__half_as_ushort(__float2half_rn(lo))) |
         static_cast<uint32_t>(__half_as_ushort(__float2half_rn(hi))) << 16;
}

// The two 16-bit elements of a fragment register as floats.
template <class T>
__device__ __forceinline__ void unpack2(uint32_t w, float& lo, float& hi);
template <>
__device__ __forceinline__ void unpack2<__nv_bfloat16>(uint32_t w, float& lo, float& hi) {
  lo = __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(w & 0xffffu)));
  hi = __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(w >> 16)));
}
template <>
__device__ __forceinline__ void unpack2<__half>(uint32_t w, float& lo, float& hi) {
  lo = __half2float(__ushort_as_half(static_cast<unsigned short>(w & 0xffffu)));
  hi = __half2float(__ushort_as_half(static_cast<unsigned short>(w >> 16)));
}

// ldmatrix .x4: lane l gives the shared-memory address of row l % 8 of 8x8 matrix l / 8 (16
// bytes, 16-byte aligned); r[j] receives, of matrix j, row l / 4, columns 2(l % 4) and 2(l % 4)+1
// (trans: rows 2(l % 4) and 2(l % 4)+1 of column l / 4).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
#if defined(GRPO_KERNELS_EMULATED)
  grpo_emu::ldmatrix(r, 4, row, false);
#elif defined(__CUDA_ARCH__)
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
#else
  (void)r, (void)row;
#endif
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
#if defined(GRPO_KERNELS_EMULATED)
  grpo_emu::ldmatrix(r, 4, row, true);
#elif defined(__CUDA_ARCH__)
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
#else
  (void)r, (void)row;
#endif
}

// d += A * B for one 16x8x16 tile, fp32 accumulation (mma.sync.m16n8k16.row.col).
template <class T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1) {
#if defined(GRPO_KERNELS_EMULATED)
  grpo_emu::mma_m16n8k16(d, a, b0, b1, std::is_same<T, __nv_bfloat16>::value);
#elif defined(__CUDA_ARCH__)
  if constexpr (std::is_same<T, __nv_bfloat16>::value) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
        "{%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
#else
  (void)d, (void)a, (void)b0, (void)b1;
#endif
}

// Asynchronous 16-byte global -> shared copies (cp.async.cg), committed in groups; wait<N>
// returns when at most the N most recent groups of this thread are still in flight. Other
// threads see the data only after their own barrier following the wait. Commit and wait are
// compiler memory barriers too ("memory" clobbers): no shared-memory access moves across them.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem) {
#if defined(GRPO_KERNELS_EMULATED)
  grpo_emu::cp_async(smem, gmem, 16);
#elif defined(__CUDA_ARCH__)
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(addr), "l"(gmem));
#else
  (void)smem, (void)gmem;
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(GRPO_KERNELS_EMULATED)
  grpo_emu::cp_async_commit();
#elif defined(__CUDA_ARCH__)
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(GRPO_KERNELS_EMULATED)
  grpo_emu::cp_async_wait(N);
#elif defined(__CUDA_ARCH__)
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// Issues this thread's share (thread `tid` of `nthreads`) of the cp.async copies of a (rows, D)
// tile of 16-bit elements from global rows (row stride in elements, D contiguous, 16-byte
// aligned) into shared memory with leading dimension ld; rows at or past `valid_rows` are zeroed
// with plain stores instead (a padded V row must be 0, not whatever the buffer held: 0 * NaN is
// NaN). The caller commits and waits.
template <class T, int D>
__device__ __forceinline__ void async_tile(T* smem, int ld, const T* gmem, int64_t row_stride,
                                           int rows, int valid_rows, int tid, int nthreads) {
  constexpr int kVec = 8;  // 16 bytes of 16-bit elements
  constexpr int kVecPerRow = D / kVec;
  for (int idx = tid; idx < rows * kVecPerRow; idx += nthreads) {
    const int r = idx / kVecPerRow, c = (idx % kVecPerRow) * kVec;
    if (r < valid_rows) {
      cp_async_16(smem + r * ld + c, gmem + r * row_stride + c);
    } else {
      *reinterpret_cast<uint4*>(smem + r * ld + c) = make_uint4(0, 0, 0, 0);
    }
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
