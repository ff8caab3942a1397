// RMSNorm: the single entry point that a fused kernel may later replace (ATen reference here).
#pragma once

#include <ATen/ATen.h>

namespace grpo::ops {

// x (..., H) any float dtype, weight (H). Normalises in fp32 and casts back before scaling by
// weight, in the order Hugging Face's Llama/Qwen RMSNorm uses, so bf16 results match bit for bit.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

}  // namespace grpo::ops
