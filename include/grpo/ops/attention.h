// Causal grouped-query attention: the single entry point, taking the CUDA kernels (kernels/)
// where they apply and the ATen reference otherwise; the reference is the kernels' test oracle.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "grpo/ops/kernels.h"

namespace grpo::ops {

// q (B, Hq, T, D); k, v (B, Hkv, S, D) with Hq % Hkv == 0 and S >= T. The T queries sit at
// absolute positions S-T .. S-1 (the last T of the keys: a KV cache holds the S-T before), so
// query i sees key j iff j <= S - T + i. key_mask (B, S) bool, true for real tokens, or
// undefined for none; a query row whose every key is masked (left padding) gets a finite, unused
// result instead of NaN. Softmax in fp32; returns (B, Hq, T, D) in q's dtype.
// policy automatic: the CUDA kernel for bf16/fp16 GPU tensors with head dim 64 or 128 and a
// left-padding key_mask (docs/kernels.md); there a fully masked query row gives zeros.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale, const at::Tensor& key_mask = {},
                            KernelPolicy policy = KernelPolicy::automatic);

}  // namespace grpo::ops
