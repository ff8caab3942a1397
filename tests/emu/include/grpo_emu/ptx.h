// The tensor-core and asynchronous-copy instructions kernels/common.cuh wraps (ldmatrix,
// mma.sync.m16n8k16, cp.async), emulated from PTX's fragment tables (tests/emu/runtime.cpp).
// ldmatrix and mma are warp-collective: each is one warp barrier through which the lanes trade
// addresses or fragments, so every lane of the warp must make the same call. cp.async copies are
// queued per thread; a cp_async_wait releases the groups it waits for, and their bytes land in
// shared memory when that thread next reaches __syncthreads or __syncwarp (or exits). So a read
// of the tile before the barrier that follows the wait sees the old bytes, as it may on a GPU
// (where only the waiting thread itself is guaranteed to see its copies before that barrier: a
// kernel relying on that would fail here, a false alarm on the safe side). Shuffles, ldmatrix and
// mma are warp barriers here but do not land copies: they do not order memory on a GPU either.
#pragma once

#include <cstddef>
#include <cstdint>

namespace grpo_emu {

// r[j] for j < count: this lane's share of 8x8 matrix j of 16-bit elements, whose rows lanes
// 8j..8j+7 address (row = this lane's row address; 16-byte aligned, in shared memory).
void ldmatrix(uint32_t* r, int count, const void* row, bool trans);
// d (this lane's 4 accumulators) += A (16x16) * B (16x8), A and B from every lane's a and b0/b1.
void mma_m16n8k16(float* d, const uint32_t* a, uint32_t b0, uint32_t b1, bool bf16);
void cp_async(void* smem, const void* gmem, size_t bytes);
void cp_async_commit();
void cp_async_wait(int pending);

}  // namespace grpo_emu
