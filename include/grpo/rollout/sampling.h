// Next-token sampling from logits: temperature, top-k, top-p, min-p, greedy, driven by
// per-sequence counter-based random numbers so that a sequence's samples never depend on which
// other sequences share its batch (prefix sharing, compaction, waves). Also the one definition
// of "the log-prob of a token" shared by the rollout engine and the trainer.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "grpo/rollout/engine.h"

namespace grpo::rollout {

// log_softmax(logits / temperature) gathered at ids, in fp32. logits (..., V) any float dtype;
// ids (...) int64 -> (...) float. The trainer calls this on its forward's logits with
// temperature = logprob_temperature(params) to recompute what the engine recorded.
at::Tensor token_logprobs(const at::Tensor& logits, const at::Tensor& ids, double temperature);

// A uniform number in [0, 1) for token `token_index` of sample `sample_index` of prompt
// `prompt_index`: a hash of the four integers (splitmix64), 32 bits of resolution.
double sequence_uniform(uint64_t seed, int64_t prompt_index, int64_t sample_index,
                        int64_t token_index);

// The distribution sampling draws from: softmax(logits / T), then top-k, then top-p on the
// renormalised survivors, then min-p (relative to the most likely token). Returns unnormalised
// probabilities (R, V) fp32 with filtered tokens at 0. logits (R, V); requires temperature > 0.
at::Tensor filtered_probs(const at::Tensor& logits, const SamplingParams& params);

// The inverse-CDF draw: per row, the first token (vocabulary order) whose cumulative mass
// exceeds u * the row's total mass; a token with probability 0 is never drawn. probs (R, V)
// unnormalised, uniforms (R) in [0, 1) -> (R) int64. inverse_cdf_reference is the plain ATen
// form (an fp64 cumsum, any device). inverse_cdf is that on fp32 CPU tensors as one pass over
// 256-token block sums plus a walk inside one block (summed in another order than one cumsum,
// so a uniform within rounding of a CDF step may pick the neighbouring token; it falls back to
// the reference elsewhere).
at::Tensor inverse_cdf_reference(const at::Tensor& probs, const at::Tensor& uniforms);
at::Tensor inverse_cdf(const at::Tensor& probs, const at::Tensor& uniforms);

struct Sampled {
  at::Tensor tokens;    // (R) int64
  at::Tensor logprobs;  // (R) fp32: token_logprobs at logprob_temperature(params), up to rounding
  at::Tensor entropy;   // (R) fp32 with params.record_entropy: token_entropy; else undefined
};

// The entropy (nats) of softmax(logits / temperature) per row: logits (..., V) -> (...) fp32.
at::Tensor token_entropy(const at::Tensor& logits, double temperature);

// One token per row. logits (R, V); uniforms (R) fp64 in [0, 1), one per row (ignored for
// greedy). Sampling inverts the CDF of filtered_probs in vocabulary order, so row r's token
// is a function of row r's logits and uniform only. The recorded log-prob of a sampled token
// is the log of its softmax(logits / T) probability, which the filters leave unchanged (one
// pass over the vocabulary fewer than a separate log_softmax); greedy uses token_logprobs.
Sampled sample_next(const at::Tensor& logits, const at::Tensor& uniforms,
                    const SamplingParams& params);

}  // namespace grpo::rollout
