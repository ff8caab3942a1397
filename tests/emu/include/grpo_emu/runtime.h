// A CUDA device emulated on the CPU, for running kernels/ in tests on a machine without a GPU.
// kernels/*.cu compile as C++ against the headers in tests/emu/include (cuda_runtime.h,
// cuda_bf16.h, cuda_fp16.h, cublas_v2.h, grpo_emu/ptx.h for the tensor-core and cp.async
// instructions), which route the CUDA built-ins here.
//
// Execution model: the blocks of a grid run one after another; the threads of a block are fibers
// on one OS thread, each running until it reaches a barrier (__syncthreads, __syncwarp, a warp
// shuffle, match, ldmatrix or mma) or returns. A barrier releases when every live thread it names
// has reached it. Between two __syncthreads the warps run one after another, each as far as its
// own warp barriers let it, and between two warp barriers a warp's lanes run one after another;
// both orders are first-to-last in some blocks and last-to-first in the others. So missing
// synchronisation shows up as wrong results: a thread that reads what another writes without the
// barrier between them (__syncthreads across warps, __syncwarp within one) sees stale data in one
// of the two orders, whichever thread runs first on a GPU. A barrier that cannot release
// (divergent __syncthreads, a shuffle naming an exited lane) is an error that names the kernel's
// block. Launches check what a GPU checks: block size, grid limits, dynamic shared memory above
// 48 KiB only after cudaFuncSetAttribute raised the limit. Dynamic shared memory starts as 0xff
// bytes (NaN as floats) so a kernel that reads shared memory it never wrote is likely to show it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

struct uint3 {
  unsigned int x, y, z;
};

struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1)
      : x(vx), y(vy), z(vz) {}
};

struct alignas(16) uint4 {
  unsigned int x, y, z, w;
};
inline uint4 make_uint4(unsigned int x, unsigned int y, unsigned int z, unsigned int w) {
  return uint4{x, y, z, w};
}

namespace grpo_emu {

// Thrown by a launch the emulator rejects or a block that deadlocks.
struct EmulationError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The current thread's coordinates and the launch's.
uint3 thread_idx();
uint3 block_idx();
dim3 block_dim();
dim3 grid_dim();
int lane_id();

void sync_block();
// Waits for the live lanes of `mask` in the caller's warp (the caller must be one of them).
void sync_warp(unsigned mask);
// __syncwarp itself: also lands this thread's waited-for cp.async copies (grpo_emu/ptx.h).
void syncwarp_builtin(unsigned mask);
// Publishes this lane's 8 bytes, waits for `mask`'s lanes, and returns the 32 slots of this
// exchange (valid until the warp's next exchange).
const uint64_t* warp_exchange(unsigned mask, uint64_t value);

unsigned char* dynamic_smem();

// Kernel launches and cuBLAS GEMMs run so far: lets a test tell that a path reached the device.
uint64_t device_calls();
// Adds one to device_calls() (the emulated cuBLAS, for each GEMM).
void count_device_call();

// Records the limit cudaFuncSetAttribute sets for `kernel`.
void set_max_dynamic_smem(const void* kernel, int bytes);
// Runs `body` once per thread of each block of the grid (throws EmulationError).
void run_grid(const void* kernel, dim3 grid, dim3 block, size_t smem,
              const std::function<void()>& body);

template <class... P>
class Launch {
 public:
  Launch(dim3 grid, dim3 block, size_t smem, void (*kernel)(P...))
      : grid_(grid), block_(block), smem_(smem), kernel_(kernel) {}
  template <class... A>
  void operator()(A&&... args) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong argument count");
    const std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);
    auto* kernel = kernel_;
    run_grid(reinterpret_cast<const void*>(kernel), grid_, block_, smem_,
             [&] { std::apply(kernel, params); });
  }

 private:
  dim3 grid_, block_;
  size_t smem_;
  void (*kernel_)(P...);
};

template <class Stream, class... P>
Launch<P...> make_launch(dim3 grid, dim3 block, size_t smem, Stream, void (*kernel)(P...)) {
  return Launch<P...>(grid, block, smem, kernel);
}

template <class T>
uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a large type");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  return bits;
}
template <class T>
T from_bits(uint64_t bits) {
  T v;
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}

}  // namespace grpo_emu

// Kernel launch and dynamic shared memory, spelled through common.cuh's macros.
#define GRPO_LAUNCH(grid, block, smem, stream, ...) \
  ::grpo_emu::make_launch(grid, block, smem, stream, __VA_ARGS__)
#define GRPO_DYNAMIC_SMEM(type, name) \
  type* name = reinterpret_cast<type*>(::grpo_emu::dynamic_smem())

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
// One block runs at a time, so a function-static variable is that block's shared memory.
#define __shared__ static

#define threadIdx (::grpo_emu::thread_idx())
#define blockIdx (::grpo_emu::block_idx())
#define blockDim (::grpo_emu::block_dim())
#define gridDim (::grpo_emu::grid_dim())

inline void __syncthreads() { grpo_emu::sync_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { grpo_emu::syncwarp_builtin(mask); }

template <class T>
T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32) {
  const int lane = grpo_emu::lane_id();
  const uint64_t* slots = grpo_emu::warp_exchange(mask, grpo_emu::to_bits(v));
  const int src = (lane / width) * width + (src_lane % width);
  return grpo_emu::from_bits<T>(slots[src]);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = grpo_emu::lane_id();
  const uint64_t* slots = grpo_emu::warp_exchange(mask, grpo_emu::to_bits(v));
  const int src = lane ^ lane_mask;
  return grpo_emu::from_bits<T>(slots[(src / width == lane / width) ? src : lane]);
}
template <class T>
unsigned __match_any_sync(unsigned mask, T v) {
  const uint64_t* slots = grpo_emu::warp_exchange(mask, grpo_emu::to_bits(v));
  const uint64_t mine = slots[grpo_emu::lane_id()];
  unsigned same = 0;
  for (int l = 0; l < 32; ++l) {
    if ((mask >> l & 1u) && slots[l] == mine) same |= 1u << l;
  }
  return same;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }

// The built-ins kernels/ uses; add others as kernels come to use them.
// Blocks and threads never run at once, so read-modify-write is atomic.
template <class T>
T atomicAdd(T* address, T v) {
  const T old = *address;
  *address = old + v;
  return old;
}
// The device integer and float min/max overloads.
#define GRPO_EMU_MINMAX(T)                         \
  inline T min(T a, T b) { return b < a ? b : a; } \
  inline T max(T a, T b) { return a < b ? b : a; }
GRPO_EMU_MINMAX(int)
GRPO_EMU_MINMAX(unsigned int)
GRPO_EMU_MINMAX(long)
GRPO_EMU_MINMAX(unsigned long)
GRPO_EMU_MINMAX(long long)
GRPO_EMU_MINMAX(unsigned long long)
#undef GRPO_EMU_MINMAX
