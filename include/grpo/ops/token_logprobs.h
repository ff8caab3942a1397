// Log-probabilities (and entropy) of chosen tokens straight from final hidden states: the output
// projection, log-softmax and gather in one autograd function that keeps no large (rows, vocab)
// tensor alive between forward and backward. Rows are processed in chunks; the backward
// recomputes each chunk's logits from the saved hidden rows (as fused linear cross-entropy
// kernels do), unless they were one chunk of at most 4M values, which the forward then keeps
// (small models: the recompute would cost another product and exp). The composite reference
// is log_softmax(hidden W^T / T).gather(targets).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace grpo::ops {

struct TokenLogprobs {
  // (R) float32 (float64 when the product runs in float64)
  at::Tensor logprobs;  // log softmax(h W^T / T)[target]
  at::Tensor entropy;   // entropy of softmax(h W^T / T); undefined unless asked
  at::Tensor top;       // (R) bool: the target's logit is the largest (ties count), no gradient
};

// hidden (R, H), weight (V, H) (the output embedding), targets (R) int64 in [0, V).
// temperature > 0 divides the logits. Both outputs are differentiable with respect to hidden and
// weight. The product runs in the autocast dtype when autocast is on for the device (as
// at::matmul would), the softmax in float32. chunk_rows <= 0 picks chunks of about 16M logits.
TokenLogprobs token_logprobs(const at::Tensor& hidden, const at::Tensor& weight,
                             const at::Tensor& targets, double temperature, bool with_entropy,
                             int64_t chunk_rows = 0);

}  // namespace grpo::ops
