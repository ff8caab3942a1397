// Private to ops: the fused CPU paths of the entry points in dense.cpp, taken under the
// `automatic` and `all` policies where `*_supported` holds (the ATen reference otherwise):
// causal_attention (cpu_attention.cpp, compiled when the build found a CBLAS:
// GRPO_CPU_ATTENTION), RMSNorm and RoPE (cpu_norm_rope.cpp, always).
#pragma once

#include <ATen/ATen.h>

namespace grpo::ops::cpu {

// CPU tensors of one dtype, float32 or float64, (B, H, T, D) with S >= T, outside CPU autocast.
bool attention_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// Same contract as ops::causal_attention, except that a query row that sees no key at all
// (left padding) gets zeros (and passes no gradient) instead of the reference's mean of V.
// Differentiable in q, k and v. The result is a (B, Hq, T, D) view of a (B, T, Hq, D) tensor, so
// the caller's transpose back to (B, T, Hq * D) is free.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale, const at::Tensor& key_mask);

// float32/float64 CPU x (..., H) with a weight (H) of the same dtype, outside CPU autocast.
bool rms_norm_supported(const at::Tensor& x, const at::Tensor& weight);
// ops::rms_norm's result; differentiable in x and weight.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// float32/float64 CPU x (B, H, T, D), D even, with cos and sin (B, T, D) of x's dtype that need
// no gradient, outside CPU autocast.
bool rope_supported(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
// ops::apply_rope's result, in x's memory layout; differentiable in x.
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace grpo::ops::cpu
