// MoE routing kernels: fused gating (one warp per token), the stable expert-contiguous
// permutation index (chunk histograms, a scan, a scatter ranked with warp match), row gather,
// the weighted combine, and the backwards of each.
#include <cmath>

#include "common.cuh"
#include "grpo/kernels/moe.h"

namespace grpo::kernels {
namespace {

constexpr int kGateWarps = 4, kGateThreads = kGateWarps * 32;

// Warp argmax of (value, index) with ties to the lower index.
__device__ __forceinline__ void warp_argmax(float& val, int& idx) {
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, val, o);
    const int oi = __shfl_xor_sync(0xffffffffu, idx, o);
    if (ov > val || (ov == val && oi < idx)) {
      val = ov;
      idx = oi;
    }
  }
}

__global__ void __launch_bounds__(kGateThreads) gate_forward_kernel(const GateParams p) {
  __shared__ float sChoice[kGateWarps][kGateMaxExperts];
  __shared__ float sScore[kGateWarps][kGateMaxExperts];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int t = blockIdx.x * kGateWarps + warp;
  if (t >= p.tokens) return;  // whole warps leave together
  const int E = p.experts;
  const float* logits = p.logits + static_cast<int64_t>(t) * E;
  float* choice = sChoice[warp];
  float* score = sScore[warp];

  if (p.sigmoid) {
    for (int e = lane; e < E; e += 32) score[e] = 1.f / (1.f + expf(-logits[e]));
  } else {
    float mx = -INFINITY;
    for (int e = lane; e < E; e += 32) mx = fmaxf(mx, logits[e]);
    mx = detail::warp_max(mx);
    float sum = 0.f;
    for (int e = lane; e < E; e += 32) {
      const float x = expf(logits[e] - mx);
      score[e] = x;
      sum += x;
    }
    sum = detail::warp_sum(sum);
    for (int e = lane; e < E; e += 32) score[e] /= sum;
  }
  for (int e = lane; e < E; e += 32) {
    p.scores[static_cast<int64_t>(t) * E + e] = score[e];
    choice[e] = score[e] + (p.bias ? p.bias[e] : 0.f);
  }
  __syncwarp();

  if (p.n_group > 1) {
    // Group score: sum of the group's two best choices; keep the topk_group best groups.
    const int per_group = E / p.n_group;
    float gscore = -INFINITY;
    if (lane < p.n_group) {
      float best = -INFINITY, second = -INFINITY;
      for (int e = lane * per_group; e < (lane + 1) * per_group; ++e) {
        const float c = choice[e];
        if (c > best) {
          second = best;
          best = c;
        } else if (c > second) {
          second = c;
        }
      }
      gscore = per_group >= 2 ? best + second : best;
    }
    unsigned keep = 0;
    for (int i = 0; i < p.topk_group; ++i) {
      float val = gscore;
      int idx = lane < p.n_group ? lane : 1 << 30;
      warp_argmax(val, idx);
      if (idx < 32) keep |= 1u << idx;
      if (lane == idx) gscore = -INFINITY;
    }
    for (int e = lane; e < E; e += 32) {
      if (!(keep >> (e / per_group) & 1u)) choice[e] = -INFINITY;
    }
    __syncwarp();
  }

  // Top-k by repeated warp argmax; lane j keeps the j-th pick. A picked expert is marked taken
  // (bit e / 32 of its lane's mask) rather than set to -inf: when top_k exceeds the experts left
  // by the group limit, the remaining picks come from the -inf (masked) ones, and those must
  // still be distinct experts (as torch.topk gives), not a repeat of an earlier pick.
  static_assert(kGateMaxExperts <= 32 * 32, "taken mask: one bit per expert of the lane");
  unsigned taken = 0;
  int my_id = 0;
  float my_w = 0.f;
  for (int j = 0; j < p.top_k; ++j) {
    float val = -INFINITY;
    int idx = 1 << 30;
    for (int e = lane, bit = 0; e < E; e += 32, ++bit) {
      if (taken >> bit & 1u) continue;
      const float c = choice[e];
      if (idx == (1 << 30) || c > val) {  // ascending e: ties keep the lower id
        val = c;
        idx = e;
      }
    }
    warp_argmax(val, idx);  // top_k <= E: some lane still has an untaken expert
    if (lane == (idx & 31)) taken |= 1u << (idx >> 5);  // each expert lives with one lane
    if (lane == j) {
      my_id = idx;
      my_w = score[idx];
    }
  }
  float total = detail::warp_sum(lane < p.top_k ? my_w : 0.f);
  if (lane < p.top_k) {
    float w = p.renormalize ? my_w / total : my_w;
    w *= p.routed_scaling;
    p.weights[static_cast<int64_t>(t) * p.top_k + lane] = w;
    p.expert_ids[static_cast<int64_t>(t) * p.top_k + lane] = my_id;
  }
}

__global__ void __launch_bounds__(kGateThreads) gate_backward_kernel(const GateBwdParams p) {
  __shared__ float sD[kGateWarps][kGateMaxExperts];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int t = blockIdx.x * kGateWarps + warp;
  if (t >= p.tokens) return;
  const int E = p.experts, K = p.top_k;
  const int64_t row = static_cast<int64_t>(t) * E;
  float* ds = sD[warp];
  for (int e = lane; e < E; e += 32) ds[e] = p.dscores ? p.dscores[row + e] : 0.f;

  // d(raw weight) for lane's slot; raw = scores[id].
  int id = 0;
  float raw = 0.f, dw = 0.f;
  if (lane < K) {
    id = p.expert_ids[static_cast<int64_t>(t) * K + lane];
    raw = p.scores[row + id];
    dw = p.dweights[static_cast<int64_t>(t) * K + lane];
  }
  float draw = p.routed_scaling * dw;
  if (p.renormalize) {
    const float sum = detail::warp_sum(raw);
    const float dot = detail::warp_sum(dw * raw);
    draw = p.routed_scaling * (dw / sum - dot / (sum * sum));
  }
  __syncwarp();
  for (int j = 0; j < K; ++j) {  // serial: two slots never pick the same expert, but be safe
    const int e = __shfl_sync(0xffffffffu, id, j);
    const float g = __shfl_sync(0xffffffffu, draw, j);
    if (lane == 0) ds[e] += g;
    __syncwarp();
  }
  if (p.sigmoid) {
    for (int e = lane; e < E; e += 32) {
      const float s = p.scores[row + e];
      p.dlogits[row + e] = ds[e] * s * (1.f - s);
    }
  } else {
    float dot = 0.f;
    for (int e = lane; e < E; e += 32) dot += ds[e] * p.scores[row + e];
    dot = detail::warp_sum(dot);
    for (int e = lane; e < E; e += 32) {
      const float s = p.scores[row + e];
      p.dlogits[row + e] = s * (ds[e] - dot);
    }
  }
}

// Per chunk of kPermuteChunk assignments: how many go to each expert.
__global__ void permute_histogram_kernel(const PermuteIndexParams p) {
  GRPO_DYNAMIC_SMEM(int, hist);
  const int total = p.tokens * p.top_k, c = blockIdx.x;
  for (int e = threadIdx.x; e < p.experts; e += blockDim.x) hist[e] = 0;
  __syncthreads();
  const int a = c * kPermuteChunk + threadIdx.x;
  if (a < total) atomicAdd(&hist[p.expert_ids[a]], 1);
  __syncthreads();
  for (int e = threadIdx.x; e < p.experts; e += blockDim.x) {
    p.chunk_counts[static_cast<int64_t>(c) * p.experts + e] = hist[e];
  }
}

// One block of kScanThreads: per expert, the exclusive prefix of its chunk counts (in place) and
// its total; then an exclusive scan of the totals into offsets. The chunks are split into one
// contiguous segment per warp, and the experts are taken 32 at a time (lane = expert), so the
// loads run in parallel rather than one chunk after another: each warp sums its segment, a warp
// per expert turns the segment sums into exclusive prefixes, and each warp rewrites its segment.
constexpr int kScanThreads = 1024, kScanWarps = kScanThreads / 32;
__global__ void __launch_bounds__(kScanThreads)
    permute_scan_kernel(const PermuteIndexParams p, int chunks) {
  __shared__ int seg_sum[kScanWarps][33];  // (segment, expert of the tile); 33: no bank conflicts
  GRPO_DYNAMIC_SMEM(int64_t, tot);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int seg = detail::ceil_div(chunks, kScanWarps);
  const int c0 = min(chunks, warp * seg), c1 = min(chunks, c0 + seg);
  const int64_t E = p.experts;
  for (int e0 = 0; e0 < p.experts; e0 += 32) {
    const int e = e0 + lane;
    const bool live = e < p.experts;
    int32_t* col = p.chunk_counts + e;  // chunk c's count at col[c * E]
    int sum = 0;
    if (live) {
      for (int c = c0; c < c1; ++c) sum += col[c * E];
    }
    seg_sum[warp][lane] = sum;
    __syncthreads();
    {  // warp w: expert e0 + w, lane = segment; inclusive scan by shuffles, stored exclusive
      const int v = seg_sum[lane][warp];
      int incl = v;
      for (int o = 1; o < 32; o <<= 1) {
        const int up = __shfl_sync(0xffffffffu, incl, lane >= o ? lane - o : lane);
        if (lane >= o) incl += up;
      }
      seg_sum[lane][warp] = incl - v;
      if (lane == 31 && e0 + warp < p.experts) {
        tot[e0 + warp] = incl;
        p.counts[e0 + warp] = incl;
      }
    }
    __syncthreads();
    if (live) {
      int running = seg_sum[warp][lane];
      // Batches of 8 loads before their stores, so that the loads overlap.
      for (int c = c0; c < c1; c += 8) {
        int n[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) n[i] = c + i < c1 ? col[(c + i) * E] : 0;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          if (c + i < c1) col[(c + i) * E] = running;
          running += n[i];
        }
      }
    }
    __syncthreads();  // seg_sum is the next tile's
  }
  // Hillis-Steele inclusive scan over experts (E <= 4 * kScanThreads).
  for (int step = 1; step < p.experts; step <<= 1) {
    int64_t vals[4];
    int n = 0;
    for (int e = threadIdx.x; e < p.experts; e += blockDim.x) {
      vals[n++] = e >= step ? tot[e - step] : 0;
    }
    __syncthreads();
    n = 0;
    for (int e = threadIdx.x; e < p.experts; e += blockDim.x) tot[e] += vals[n++];
    __syncthreads();
  }
  for (int e = threadIdx.x; e <= p.experts; e += blockDim.x) {
    p.offsets[e] = e == 0 ? 0 : tot[e - 1];
  }
}

// Sorted position of each assignment: expert offset + earlier chunks + earlier warps of this
// chunk + earlier lanes of this warp with the same expert.
__global__ void permute_scatter_kernel(const PermuteIndexParams p) {
  GRPO_DYNAMIC_SMEM(int, warp_counts);  // (kPermuteChunk / 32, E)
  constexpr int kChunkWarps = kPermuteChunk / 32;
  const int total = p.tokens * p.top_k, c = blockIdx.x;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int i = threadIdx.x; i < kChunkWarps * p.experts; i += blockDim.x) warp_counts[i] = 0;
  __syncthreads();
  const int a = c * kPermuteChunk + threadIdx.x;
  const bool valid = a < total;
  const int e = valid ? p.expert_ids[a] : -1;
  const unsigned same = __match_any_sync(0xffffffffu, e);
  const int rank = __popc(same & ((1u << lane) - 1u));
  if (valid && rank == 0) warp_counts[warp * p.experts + e] = __popc(same);
  __syncthreads();
  if (!valid) return;
  int before = 0;
  for (int w = 0; w < warp; ++w) before += warp_counts[w * p.experts + e];
  const int64_t pos =
      p.offsets[e] + p.chunk_counts[static_cast<int64_t>(c) * p.experts + e] + before + rank;
  p.order[pos] = a;
  p.token_index[pos] = a / p.top_k;
  p.position[a] = static_cast<int32_t>(pos);
}

template <class T>
__global__ void permute_rows_kernel(const PermuteRowsParams p) {
  const int64_t row = blockIdx.x;
  const T* src = static_cast<const T*>(p.in) + p.token_index[row] * p.hidden;
  T* dst = static_cast<T*>(p.out) + row * p.hidden;
  for (int h = threadIdx.x; h < p.hidden; h += blockDim.x) dst[h] = src[h];
}

template <class T>
__global__ void permute_rows_backward_kernel(const PermuteRowsParams p) {
  const int64_t t = blockIdx.x;
  const T* in = static_cast<const T*>(p.in);
  T* dx = static_cast<T*>(p.out) + t * p.hidden;
  for (int h = threadIdx.x; h < p.hidden; h += blockDim.x) {
    float acc = 0.f;
    for (int s = 0; s < p.top_k; ++s) {
      acc += detail::to_float(in[static_cast<int64_t>(p.position[t * p.top_k + s]) * p.hidden + h]);
    }
    dx[h] = detail::from_float<T>(acc);
  }
}

template <class T>
__global__ void combine_kernel(const CombineParams p) {
  const int64_t t = blockIdx.x;
  const T* y = static_cast<const T*>(p.y);
  T* out = static_cast<T*>(p.out) + t * p.hidden;
  for (int h = threadIdx.x; h < p.hidden; h += blockDim.x) {
    float acc = 0.f;
    for (int s = 0; s < p.top_k; ++s) {
      const int64_t a = t * p.top_k + s;
      acc += p.weights[a] * detail::to_float(y[static_cast<int64_t>(p.position[a]) * p.hidden + h]);
    }
    out[h] = detail::from_float<T>(acc);
  }
}

// One block per token: dy rows of its k assignments and the k weight gradients.
template <class T>
__global__ void combine_backward_kernel(const CombineParams p) {
  __shared__ float partial[32];
  const int64_t t = blockIdx.x;
  const T* y = static_cast<const T*>(p.y);
  const T* dout = static_cast<const T*>(p.dout) + t * p.hidden;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  for (int s = 0; s < p.top_k; ++s) {
    const int64_t a = t * p.top_k + s;
    const int64_t row = static_cast<int64_t>(p.position[a]) * p.hidden;
    const float w = p.weights[a];
    T* dy = static_cast<T*>(p.dy) + row;
    float dot = 0.f;
    for (int h = threadIdx.x; h < p.hidden; h += blockDim.x) {
      const float g = detail::to_float(dout[h]);
      dy[h] = detail::from_float<T>(w * g);
      dot += g * detail::to_float(y[row + h]);
    }
    dot = detail::warp_sum(dot);
    if (lane == 0) partial[warp] = dot;
    __syncthreads();
    if (warp == 0) {
      float v = lane < warps ? partial[lane] : 0.f;
      v = detail::warp_sum(v);
      if (lane == 0) p.dweights[a] = v;
    }
    __syncthreads();
  }
}

int row_threads(int hidden) { return hidden >= 256 ? 256 : 128; }

}  // namespace

// One block per row (or token); the element type picked from the params' dtype.
#define GRPO_LAUNCH_ROW_KERNEL(kernel, p, blocks, stream)                                    \
  do {                                                                                       \
    if ((blocks) == 0) return cudaSuccess;                                                   \
    if ((p).dtype == DType::bfloat16) {                                                      \
      GRPO_LAUNCH((blocks), row_threads((p).hidden), 0, (stream), kernel<__nv_bfloat16>)(p); \
    } else {                                                                                 \
      GRPO_LAUNCH((blocks), row_threads((p).hidden), 0, (stream), kernel<__half>)(p);        \
    }                                                                                        \
    return cudaGetLastError();                                                               \
  } while (0)

cudaError_t moe_gate_forward(const GateParams& p, cudaStream_t stream) {
  if (p.tokens == 0) return cudaSuccess;
  if (p.experts < 1 || p.experts > kGateMaxExperts || p.top_k < 1 || p.top_k > kGateMaxTopK ||
      p.top_k > p.experts || p.n_group > 32 || (p.n_group > 1 && p.experts % p.n_group != 0)) {
    return cudaErrorInvalidValue;
  }
  const int blocks = detail::ceil_div(p.tokens, kGateWarps);
  GRPO_LAUNCH(blocks, kGateThreads, 0, stream, gate_forward_kernel)(p);
  return cudaGetLastError();
}

cudaError_t moe_gate_backward(const GateBwdParams& p, cudaStream_t stream) {
  if (p.tokens == 0) return cudaSuccess;
  if (p.experts < 1 || p.experts > kGateMaxExperts || p.top_k < 1 || p.top_k > kGateMaxTopK) {
    return cudaErrorInvalidValue;
  }
  const int blocks = detail::ceil_div(p.tokens, kGateWarps);
  GRPO_LAUNCH(blocks, kGateThreads, 0, stream, gate_backward_kernel)(p);
  return cudaGetLastError();
}

cudaError_t moe_permute_index(const PermuteIndexParams& p, cudaStream_t stream) {
  if (p.experts < 1 || p.experts > 4 * 1024) return cudaErrorInvalidValue;
  const int total = p.tokens * p.top_k;
  const int chunks = detail::ceil_div(total, kPermuteChunk);
  const size_t hist_bytes = sizeof(int) * p.experts;
  if (chunks > 0) {
    GRPO_LAUNCH(chunks, kPermuteChunk, hist_bytes, stream, permute_histogram_kernel)(p);
  }
  GRPO_LAUNCH(1, kScanThreads, sizeof(int64_t) * p.experts, stream, permute_scan_kernel)(p, chunks);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess || chunks == 0) return err;
  const size_t scatter_bytes = sizeof(int) * (kPermuteChunk / 32) * p.experts;
  if (scatter_bytes > 48 * 1024) {
    err = cudaFuncSetAttribute(permute_scatter_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                               static_cast<int>(scatter_bytes));
    if (err != cudaSuccess) return err;
  }
  GRPO_LAUNCH(chunks, kPermuteChunk, scatter_bytes, stream, permute_scatter_kernel)(p);
  return cudaGetLastError();
}

cudaError_t moe_permute_rows(const PermuteRowsParams& p, cudaStream_t stream) {
  GRPO_LAUNCH_ROW_KERNEL(permute_rows_kernel, p, p.tokens * p.top_k, stream);
}

cudaError_t moe_permute_rows_backward(const PermuteRowsParams& p, cudaStream_t stream) {
  GRPO_LAUNCH_ROW_KERNEL(permute_rows_backward_kernel, p, p.tokens, stream);
}

cudaError_t moe_combine(const CombineParams& p, cudaStream_t stream) {
  GRPO_LAUNCH_ROW_KERNEL(combine_kernel, p, p.tokens, stream);
}

cudaError_t moe_combine_backward(const CombineParams& p, cudaStream_t stream) {
  GRPO_LAUNCH_ROW_KERNEL(combine_backward_kernel, p, p.tokens, stream);
}

}  // namespace grpo::kernels
