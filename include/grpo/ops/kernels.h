// How the ops entry points choose between the CUDA kernels (kernels/) and the ATen reference:
// `automatic` takes a kernel when it is linked into this build, the tensors are on a GPU in
// bfloat16/float16 and the shapes are ones it supports; `reference` always takes ATen
// (`model.kernels` in the config). docs/kernels.md lists each kernel's conditions.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace grpo::ops {

enum class KernelPolicy { automatic, reference };

// True when this build linked kernels/ into ops (LibTorch with CUDA and nvcc found).
bool kernels_linked();

// Packed variable-length causal GQA attention (kernel only; throws without it). q (total_q, Hq,
// D), k, v (total_k, Hkv, D) bf16/fp16 on a GPU; cu_seqlens_* (B+1) int32 on q's device;
// max_seqlen_* the longest sequence. Query i of sequence b sees key j iff
// j <= len_k(b) - len_q(b) + i. Differentiable in q, k, v. Returns (total_q, Hq, D).
at::Tensor varlen_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k,
                            int64_t max_seqlen_q, int64_t max_seqlen_k, double scale);

// Expert GEMMs: rows offsets[e] .. offsets[e+1] of x (N*k, K) times weights[e]^T (weights[e]
// (n, K), as nn::Linear stores it) -> (N*k, n). Differentiable in x and the weights. The
// reference loops over experts with at::linear; the kernel path is one grouped cuBLAS call.
at::Tensor grouped_linear(const at::Tensor& x, const std::vector<int64_t>& offsets,
                          at::TensorList weights, KernelPolicy policy = KernelPolicy::automatic);

}  // namespace grpo::ops
