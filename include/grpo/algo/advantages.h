// Advantage estimators (grpo, drgrpo, rloo, reinforce_pp), looked up by the config enum in a
// small registry. Formulas and their sources: docs/algorithms.md.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "grpo/core/config/algorithm.h"

namespace grpo::algo {

// Added to a standard deviation before dividing (grpo), as verl does; TRL uses 1e-4.
constexpr double kStdEps = 1e-6;
// Added to a variance before the inverse square root (reinforce_pp), as verl's masked_whiten.
constexpr double kVarEps = 1e-8;

struct AdvantageInputs {
  at::Tensor rewards;      // (B*G,) float, the G completions of each prompt contiguous
  int64_t group_size = 0;  // G
  // (B*G,) token counts of the responses; only reinforce_pp uses them (verl whitens token-level
  // returns, so each sequence weighs as many times as it has tokens). Undefined: weight 1 each.
  at::Tensor response_lengths;
};

struct AdvantageResult {
  at::Tensor advantages;  // (B*G,) float32, one per sequence; the caller broadcasts to tokens
  double zero_variance_fraction = 0;  // groups whose G rewards are all equal (no signal)
};

// The signature every estimator in the registry has. rewards is (B, G) float64.
using AdvantageFn = at::Tensor (*)(const at::Tensor& rewards, const AdvantageInputs& in,
                                   const config::AlgorithmConfig& cfg);

// The registry lookup: the function implementing `cfg.advantage`.
AdvantageFn advantage_estimator(config::AdvantageEstimator which);

// Checks shapes (rewards 1-D, length a multiple of G, finite), runs the estimator the config
// names and counts zero-variance groups. Computes in float64 and returns float32.
AdvantageResult compute_advantages(const AdvantageInputs& in, const config::AlgorithmConfig& cfg);

// DAPO's soft overlong punishment, a reward term: 0 while length <= max_new_tokens - buffer,
// then falling linearly to -factor at length == max_new_tokens (and below for longer). Returns
// the penalty as a positive number to subtract; 0 when buffer == 0.
double overlong_penalty(int64_t length, int64_t max_new_tokens, int64_t buffer, double factor);

}  // namespace grpo::algo
