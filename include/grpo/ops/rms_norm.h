// RMSNorm: the ATen reference, or the fused CPU path (src/ops/cpu_norm_rope.cpp) under the
// automatic and all policies.
#pragma once

#include <ATen/ATen.h>

#include "grpo/ops/kernels.h"

namespace grpo::ops {

// x (..., H) any float dtype, weight (H). Normalises in fp32 and casts back before scaling by
// weight, in the order Hugging Face's Llama/Qwen RMSNorm uses, so bf16 results match bit for bit.
// The fused CPU path (float32/float64) computes in the input's dtype, equal to rounding.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps,
                    KernelPolicy policy = KernelPolicy::automatic);

}  // namespace grpo::ops
