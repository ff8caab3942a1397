// How the ops entry points choose between fused implementations and the ATen reference
// (`model.kernels` in the config; docs/kernels.md lists each path's conditions):
// - `all`: every fused path that takes the tensors: the CUDA kernels (kernels/, when linked into
//   this build, on a GPU in bfloat16/float16 with supported shapes) and the fused CPU attention
//   (float32/float64 on the CPU, when the build found a CBLAS);
// - `automatic`: the same, except that the CUDA kernels join only once they have passed their
//   GPU tests (kCudaKernelsVerified);
// - `reference`: ATen everywhere (the test oracle).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace grpo::ops {

enum class KernelPolicy { automatic, all, reference };

// Whether scripts/gpu_check.sh has passed on a GPU (it did on an H200, 2026-11-29), so that
// `automatic` takes the CUDA kernels.
inline constexpr bool kCudaKernelsVerified = true;

// Whether `policy` takes a CUDA kernel that supports the call.
constexpr bool cuda_kernels_enabled(KernelPolicy policy) {
  return policy == KernelPolicy::all || (policy == KernelPolicy::automatic && kCudaKernelsVerified);
}

// True when this build linked kernels/ into ops (LibTorch with CUDA and nvcc found).
bool kernels_linked();

// True when `policy` takes the CUDA kernels and `x` lies where they run (a GPU tensor in a build
// that linked them): callers that choose between whole code paths (the MoE block's grouped
// expert products) ask this rather than the tensor's device.
bool cuda_kernels_for(const at::Tensor& x, KernelPolicy policy);

// True when this build has the fused CPU attention (a CBLAS was found).
bool cpu_attention_linked();

// Packed variable-length causal GQA attention (kernel only; throws without it). q (total_q, Hq,
// D), k, v (total_k, Hkv, D) bf16/fp16 on a GPU; cu_seqlens_* (B+1) int32 on q's device;
// max_seqlen_* the longest sequence. Query i of sequence b sees key j iff
// j <= len_k(b) - len_q(b) + i. Differentiable in q, k, v. Returns (total_q, Hq, D).
at::Tensor varlen_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k,
                            int64_t max_seqlen_q, int64_t max_seqlen_k, double scale);

// Decode attention (kernel only; throws without it): one query per sequence, q (B, Hq, 1, D),
// over every key of k, v (B, Hkv, S, D), bf16/fp16 on a GPU, no gradients, split `num_splits`
// ways along the keys (0: kernels::decode_num_splits' choice, what causal_attention takes).
// For benchmarks that compare split counts. Returns (B, Hq, 1, D).
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale, int num_splits = 0);

// Expert GEMMs: rows offsets[e] .. offsets[e+1] of x (N*k, K) times weights[e]^T (weights[e]
// (n, K), as nn::Linear stores it) -> (N*k, n). Differentiable in x and the weights. The
// reference loops over experts with at::linear; the kernel path is one grouped cuBLAS call.
at::Tensor grouped_linear(const at::Tensor& x, const std::vector<int64_t>& offsets,
                          at::TensorList weights, KernelPolicy policy = KernelPolicy::automatic);

}  // namespace grpo::ops
