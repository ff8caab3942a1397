// Causal grouped-query attention: the single entry point that the CUDA attention kernels will
// later replace (issue 10). The ATen reference here is the oracle for those kernels.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace grpo::ops {

// q (B, Hq, T, D); k, v (B, Hkv, S, D) with Hq % Hkv == 0 and S >= T. The T queries sit at
// absolute positions S-T .. S-1 (the last T of the keys: a KV cache holds the S-T before), so
// query i sees key j iff j <= S - T + i. key_mask (B, S) bool, true for real tokens, or
// undefined for none; a query row whose every key is masked (left padding) gets a finite, unused
// result instead of NaN. Softmax in fp32; returns (B, Hq, T, D) in q's dtype.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale, const at::Tensor& key_mask = {});

}  // namespace grpo::ops
