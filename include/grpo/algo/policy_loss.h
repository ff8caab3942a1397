// The policy loss of one micro-batch: clipped surrogate (clip-higher, dual clip, GSPO sequence
// ratio), KL to the reference (k1/k2/k3) and an entropy bonus, aggregated by a named mode with
// global normalisers so that micro-batch gradients add up to the full-batch gradient.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <vector>

#include "grpo/core/config/algorithm.h"

namespace grpo::algo {

// Bounds as in verl: the log-ratio is clamped before exp, the k3 value after.
constexpr double kLogRatioClamp = 20.0;
constexpr double kK3Clamp = 10.0;

struct PolicyLossInputs {
  at::Tensor logprobs;      // (N, T) float, current policy; carries the gradient
  at::Tensor old_logprobs;  // (N, T) float, behaviour policy; no gradient
  at::Tensor advantages;    // (N,) float, one per sequence
  at::Tensor mask;          // (N, T) bool or float 0/1, 1 on response tokens
  at::Tensor ref_logprobs;  // (N, T) float, reference policy; may be undefined when beta == 0
  at::Tensor entropy;       // (N, T) float; may be undefined when entropy_coef == 0
  // (N, T) 0/1: the tokens whose clipped policy-gradient term counts (top_entropy_quantile);
  // undefined: all. The KL and entropy terms and the normalisers are unaffected.
  at::Tensor policy_mask;
};

// The entropy threshold of algorithm.top_entropy_quantile: the k-th largest of the `values`
// (N, T) where `mask` is non-zero, with k = ceil(quantile x their number), over every rank.
// `sum` adds a vector over the ranks (the identity in one process); it is called the same number
// of times on every rank (a bisection over the float bit patterns: exact, 32 small sums). With
// no values anywhere: +infinity (nothing selected).
float top_quantile_threshold(
    const at::Tensor& values, const at::Tensor& mask, double quantile,
    const std::function<std::vector<double>(const std::vector<double>&)>& sum);

// Totals over the whole batch that one optimizer step sees (all micro-batches, all ranks): the
// trainer computes them once per minibatch. With them every micro-batch's loss is its exact share
// of the full-batch loss, so summing micro-batch gradients (and all-reducing with a SUM across
// ranks) reproduces the full-batch gradient.
struct LossNormalizers {
  double tokens = 0;               // valid response tokens in the minibatch (token_mean)
  double sequences = 0;            // sequences in the minibatch (seq_mean_* modes)
  double max_response_length = 0;  // the constant normaliser of seq_mean_token_sum_norm
};

// Metrics as sums over valid tokens, so that micro-batches and ranks combine by adding (one
// all-reduce of a small tensor) before dividing by the token count.
enum LossStat : int64_t {
  kStatTokens = 0,  // valid tokens
  kStatClipLow,     // tokens whose ratio < 1 - eps_low with A < 0 (gradient clipped away)
  kStatClipHigh,    // tokens whose ratio > 1 + eps_high with A > 0
  kStatClipDual,    // tokens where the dual clip bound -c*A is taken (A < 0)
  kStatRatio,       // sum of the importance ratio (token or sequence level)
  kStatKl,          // sum of the per-token KL estimate (0 when no reference)
  kStatEntropy,     // sum of the per-token entropy (0 when not given)
  kStatCount
};

struct PolicyLossOutput {
  at::Tensor loss;   // () float, this micro-batch's share of the minibatch loss; has a gradient
  at::Tensor stats;  // (kStatCount,) float64 sums, detached, on the inputs' device
};

// Means from summed stats (after adding micro-batches / all-reducing across ranks).
struct LossMetrics {
  double clip_frac_low = 0;
  double clip_frac_high = 0;
  double clip_frac_dual = 0;
  double ratio_mean = 0;
  double kl_mean = 0;
  double entropy_mean = 0;
};
LossMetrics summarize(const at::Tensor& stats);

// An aggregation mode: per-token values (N, T) and mask (N, T) float to a scalar share.
using AggregateFn = at::Tensor (*)(const at::Tensor& per_token, const at::Tensor& mask,
                                   const LossNormalizers& norm);
// The registry lookup for config's loss_aggregation.
AggregateFn loss_aggregation(config::LossAggregation which);

// Per-token KL(policy || reference) estimate from log-probs (N, T); k3 clamped as verl does.
at::Tensor kl_estimate(const at::Tensor& logprobs, const at::Tensor& ref_logprobs,
                       config::KlEstimator which);

PolicyLossOutput policy_loss(const PolicyLossInputs& in, const LossNormalizers& norm,
                             const config::AlgorithmConfig& cfg);

}  // namespace grpo::algo
