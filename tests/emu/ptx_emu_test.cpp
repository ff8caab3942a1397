// The emulated device's tensor-core and cp.async instructions (grpo_emu/ptx.h) against PTX's
// fragment tables as the ISA states them (per lane: groupID = lane >> 2, threadID_in_group =
// lane % 4), with spot values worked out by hand, and the emulator's ordering rules that the
// kernels' race checks rest on. The kernel tests only show that ldmatrix and mma agree with each
// other; these pin both to the published layouts.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "cuda_bf16.h"
#include "cuda_runtime.h"
#include "grpo_emu/ptx.h"

namespace {

// M[r][c] = 16 r + c: exact in bfloat16 (integers up to 256), and so are the products' sums.
float m_value(int r, int c) { return static_cast<float>(16 * r + c); }

uint16_t bf16_bits(float v) { return __float2bfloat16_rn(v).bits; }
float from_bits(uint16_t b) { return __bfloat162float(__nv_bfloat16{b}); }
float lo(uint32_t w) { return from_bits(static_cast<uint16_t>(w & 0xffffu)); }
float hi(uint32_t w) { return from_bits(static_cast<uint16_t>(w >> 16)); }
uint32_t pack(float a, float b) {
  return static_cast<uint32_t>(bf16_bits(a)) | static_cast<uint32_t>(bf16_bits(b)) << 16;
}

// Runs body once per thread of `blocks` blocks of `threads` threads with `smem` bytes of dynamic
// shared memory each.
void run_blocks(int blocks, int threads, size_t smem, const std::function<void()>& body) {
  static const int kernel_tag = 0;
  grpo_emu::run_grid(&kernel_tag, dim3(blocks), dim3(threads), smem, body);
}

// The 16 x 16 matrix M in shared memory, row-major, rows 32 bytes apart.
__nv_bfloat16* fill_m() {
  auto* s = reinterpret_cast<__nv_bfloat16*>(grpo_emu::dynamic_smem());
  if (threadIdx.x == 0) {
    for (int r = 0; r < 16; ++r) {
      for (int c = 0; c < 16; ++c) s[r * 16 + c] = __float2bfloat16_rn(m_value(r, c));
    }
  }
  __syncwarp();
  return s;
}

TEST(EmulatedPtx, LdmatrixGivesTheMmaAFragmentOfARowMajorTile) {
  std::vector<uint32_t> regs(32 * 4);
  run_blocks(1, 32, 512, [&] {
    const __nv_bfloat16* s = fill_m();
    const int lane = threadIdx.x, j = lane / 8;
    // Lanes 8j..8j+7 address the rows of matrix j: rows 0-7 / 8-15 (j % 2), columns 0-7 / 8-15.
    uint32_t r[4];
    grpo_emu::ldmatrix(r, 4, s + ((j % 2) * 8 + lane % 8) * 16 + (j / 2) * 8, false);
    for (int i = 0; i < 4; ++i) regs[lane * 4 + i] = r[i];
  });
  // PTX, mma.m16n8k16 A (.bf16): a_i has row groupID for 0 <= i < 2 or 4 <= i < 6, else
  // groupID + 8; column threadID_in_group * 2 + (i & 1), + 8 for i >= 4; a_2k, a_2k+1 in reg k.
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane % 4;
    for (int i = 0; i < 8; ++i) {
      const int row = (i < 2 || (i >= 4 && i < 6)) ? g : g + 8;
      const int col = t * 2 + (i & 1) + (i >= 4 ? 8 : 0);
      const uint32_t w = regs[lane * 4 + i / 2];
      EXPECT_EQ(i % 2 == 0 ? lo(w) : hi(w), m_value(row, col)) << "lane " << lane << " a" << i;
    }
  }
  // By hand, lane 5 (groupID 1, threadID_in_group 1): M[1][2..3], M[9][2..3], M[1][10..11],
  // M[9][10..11].
  EXPECT_EQ(lo(regs[20]), 18.f);
  EXPECT_EQ(hi(regs[20]), 19.f);
  EXPECT_EQ(lo(regs[21]), 146.f);
  EXPECT_EQ(lo(regs[22]), 26.f);
  EXPECT_EQ(hi(regs[23]), 155.f);
}

TEST(EmulatedPtx, LdmatrixTransposedGivesTheBFragmentOfARowMajorKxNTile) {
  std::vector<uint32_t> regs(32 * 4);
  run_blocks(1, 32, 512, [&] {
    const __nv_bfloat16* s = fill_m();
    const int lane = threadIdx.x, j = lane / 8;
    uint32_t r[4];
    grpo_emu::ldmatrix(r, 4, s + ((j % 2) * 8 + lane % 8) * 16 + (j / 2) * 8, true);
    for (int i = 0; i < 4; ++i) regs[lane * 4 + i] = r[i];
  });
  // With M as B (k = row, n = column), PTX's B (.bf16): b_i has row (k) threadID_in_group * 2 +
  // (i & 1), + 8 for i >= 2, column (n) groupID. Registers 0-1 are n-tile 0 (columns 0-7) and
  // 2-3 n-tile 1 (columns 8-15).
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane % 4;
    for (int tile = 0; tile < 2; ++tile) {
      for (int i = 0; i < 4; ++i) {
        const int k = t * 2 + (i & 1) + (i >= 2 ? 8 : 0), n = 8 * tile + g;
        const uint32_t w = regs[lane * 4 + 2 * tile + i / 2];
        EXPECT_EQ(i % 2 == 0 ? lo(w) : hi(w), m_value(k, n)) << "lane " << lane << " b" << i;
      }
    }
  }
  // By hand, lane 5: M[2][1], M[3][1]; M[10][1], M[11][1]; M[2][9], M[3][9]; M[10][9], M[11][9].
  EXPECT_EQ(lo(regs[20]), 33.f);
  EXPECT_EQ(hi(regs[20]), 49.f);
  EXPECT_EQ(lo(regs[21]), 161.f);
  EXPECT_EQ(hi(regs[22]), 57.f);
  EXPECT_EQ(hi(regs[23]), 185.f);
}

TEST(EmulatedPtx, MmaFollowsTheFragmentTables) {
  // A = M (16 x 16), B[k][n] = k - n (16 x 8), C[r][n] = r + n; D = A B + C.
  auto b_value = [](int k, int n) { return static_cast<float>(k - n); };
  std::vector<float> d(32 * 4);
  run_blocks(1, 32, 16, [&] {
    const int lane = threadIdx.x, g = lane >> 2, t = lane % 4;
    uint32_t a[4];
    for (int reg = 0; reg < 4; ++reg) {
      const int row = g + (reg % 2) * 8, col = t * 2 + (reg / 2) * 8;
      a[reg] = pack(m_value(row, col), m_value(row, col + 1));
    }
    const uint32_t b0 = pack(b_value(t * 2, g), b_value(t * 2 + 1, g));
    const uint32_t b1 = pack(b_value(t * 2 + 8, g), b_value(t * 2 + 9, g));
    float acc[4];
    for (int i = 0; i < 4; ++i)
      acc[i] = static_cast<float>((g + (i >= 2 ? 8 : 0)) + t * 2 + (i & 1));
    grpo_emu::mma_m16n8k16(acc, a, b0, b1, true);
    for (int i = 0; i < 4; ++i) d[lane * 4 + i] = acc[i];
  });
  // PTX's C/D: c_i has row groupID for i < 2, else groupID + 8; column threadID_in_group * 2 +
  // (i & 1).
  for (int lane = 0; lane < 32; ++lane) {
    const int g = lane >> 2, t = lane % 4;
    for (int i = 0; i < 4; ++i) {
      const int row = i < 2 ? g : g + 8, col = t * 2 + (i & 1);
      float want = static_cast<float>(row + col);
      for (int k = 0; k < 16; ++k) want += m_value(row, k) * b_value(k, col);
      EXPECT_EQ(d[lane * 4 + i], want) << "lane " << lane << " d" << i;
    }
  }
  // By hand: D[0][0] = sum_k 16*0 + k times k = sum k^2 = 1240; lane 0's d0.
  EXPECT_EQ(d[0], 1240.f);
}

TEST(EmulatedPtx, CpAsyncLandsAtTheWaitersNextBarrier) {
  // Lane 0 copies and waits; lane 1 reads with no barrier since the wait. Of two blocks (lanes
  // first-to-last, then last-to-first) one has lane 1 read before lane 0's __syncwarp: the old
  // bytes (0xff...). After that __syncwarp, and in another warp after __syncthreads, the copy.
  alignas(16) static const uint32_t src[4] = {7, 8, 9, 10};
  std::vector<uint32_t> early(2), synced(2), other(2);
  run_blocks(2, 64, 64, [&] {
    auto* s = reinterpret_cast<uint32_t*>(grpo_emu::dynamic_smem());
    const int tid = threadIdx.x, block = blockIdx.x;
    if (tid == 0) {
      grpo_emu::cp_async(s, src, 16);
      grpo_emu::cp_async_commit();
      grpo_emu::cp_async_wait(0);
    }
    if (tid == 1) early[block] = s[0];
    __syncwarp();
    if (tid == 1) synced[block] = s[0];
    __syncthreads();
    if (tid == 32) other[block] = s[3];
  });
  EXPECT_EQ((early[0] == 0xffffffffu) + (early[1] == 0xffffffffu), 1);
  EXPECT_EQ((early[0] == 7u) + (early[1] == 7u), 1);
  for (int block = 0; block < 2; ++block) {
    EXPECT_EQ(synced[block], 7u);
    EXPECT_EQ(other[block], 10u);
  }
}

TEST(EmulatedPtx, WarpsRunOneAfterAnotherBetweenBlockBarriers) {
  // Warp 1 writes after a few warp-level collectives, warp 0 reads after as many of its own,
  // with no __syncthreads between: of two blocks (one runs its warps first-to-last, the other
  // last-to-first) exactly one has warp 0 read before warp 1 wrote, however many collectives lie
  // between. After the barrier both see the write.
  std::vector<int> before(2, -1), after(2, -1);
  run_blocks(2, 64, 16, [&] {
    auto* s = reinterpret_cast<int*>(grpo_emu::dynamic_smem());
    const int tid = threadIdx.x, block = blockIdx.x;
    if (tid == 0) s[0] = 0;
    __syncthreads();
    for (int i = 0; i < 3; ++i) __shfl_xor_sync(0xffffffffu, tid, 1);
    if (tid == 32) s[0] = 1;
    for (int i = 0; i < 3; ++i) __shfl_xor_sync(0xffffffffu, tid, 1);
    if (tid == 0) before[block] = s[0];
    __syncthreads();
    if (tid == 0) after[block] = s[0];
  });
  EXPECT_EQ(before[0] + before[1], 1);
  EXPECT_EQ(after[0], 1);
  EXPECT_EQ(after[1], 1);
}

TEST(EmulatedPtx, LdmatrixOutsideSharedMemoryOrMisalignedIsAnError) {
  EXPECT_THROW(run_blocks(1, 32, 512,
                          [&] {
                            uint32_t r[4];
                            const auto* s = grpo_emu::dynamic_smem();
                            grpo_emu::ldmatrix(r, 4, s + 8, false);  // 8 bytes in: misaligned
                          }),
               grpo_emu::EmulationError);
  alignas(16) static const uint16_t global[64] = {};
  EXPECT_THROW(run_blocks(1, 32, 512,
                          [&] {
                            uint32_t r[4];
                            grpo_emu::ldmatrix(r, 4, global, false);
                          }),
               grpo_emu::EmulationError);
}

}  // namespace
