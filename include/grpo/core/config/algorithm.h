// `algorithm:` section: advantage estimator, clipped objective, KL penalty, loss aggregation.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "grpo/core/config_bind.h"

namespace grpo::config {

enum class AdvantageEstimator { grpo, drgrpo, rloo, reinforce_pp };
inline const std::vector<std::pair<AdvantageEstimator, std::string>>& enum_names(
    AdvantageEstimator) {
  static const std::vector<std::pair<AdvantageEstimator, std::string>> k{
      {AdvantageEstimator::grpo, "grpo"},
      {AdvantageEstimator::drgrpo, "drgrpo"},
      {AdvantageEstimator::rloo, "rloo"},
      {AdvantageEstimator::reinforce_pp, "reinforce_pp"}};
  return k;
}

enum class StdScaling { group, batch, none };
inline const std::vector<std::pair<StdScaling, std::string>>& enum_names(StdScaling) {
  static const std::vector<std::pair<StdScaling, std::string>> k{
      {StdScaling::group, "group"}, {StdScaling::batch, "batch"}, {StdScaling::none, "none"}};
  return k;
}

enum class KlEstimator { k1, k2, k3 };
inline const std::vector<std::pair<KlEstimator, std::string>>& enum_names(KlEstimator) {
  static const std::vector<std::pair<KlEstimator, std::string>> k{
      {KlEstimator::k1, "k1"}, {KlEstimator::k2, "k2"}, {KlEstimator::k3, "k3"}};
  return k;
}

enum class LossAggregation { token_mean, seq_mean_token_mean, seq_mean_token_sum_norm };
inline const std::vector<std::pair<LossAggregation, std::string>>& enum_names(LossAggregation) {
  static const std::vector<std::pair<LossAggregation, std::string>> k{
      {LossAggregation::token_mean, "token_mean"},
      {LossAggregation::seq_mean_token_mean, "seq_mean_token_mean"},
      {LossAggregation::seq_mean_token_sum_norm, "seq_mean_token_sum_norm"}};
  return k;
}

enum class RatioLevel { token, sequence };
inline const std::vector<std::pair<RatioLevel, std::string>>& enum_names(RatioLevel) {
  static const std::vector<std::pair<RatioLevel, std::string>> k{
      {RatioLevel::token, "token"}, {RatioLevel::sequence, "sequence"}};
  return k;
}

enum class OldLogprobs { recorded, recompute };
inline const std::vector<std::pair<OldLogprobs, std::string>>& enum_names(OldLogprobs) {
  static const std::vector<std::pair<OldLogprobs, std::string>> k{
      {OldLogprobs::recorded, "recorded"}, {OldLogprobs::recompute, "recompute"}};
  return k;
}

struct AlgorithmConfig {
  AdvantageEstimator advantage = AdvantageEstimator::grpo;
  StdScaling std_scaling = StdScaling::group;
  double eps_low = 0.2;    // clip range below 1
  double eps_high = 0.2;   // clip range above 1 (DAPO clip-higher: 0.28)
  double dual_clip = 0.0;  // c > 1 enables dual clip for negative advantages; 0: off
  RatioLevel ratio_level = RatioLevel::token;  // sequence: GSPO
  double beta = 0.001;  // KL coefficient; 0 skips the reference model entirely
  KlEstimator kl_estimator = KlEstimator::k3;
  LossAggregation loss_aggregation = LossAggregation::token_mean;
  double entropy_coef = 0.0;
  // The policy gradient only on the step's highest-entropy response tokens: this fraction of
  // them by the behaviour policy's entropy at sampling time, over the whole step's batch (Wang
  // et al. 2025, "Beyond the 80/20 rule"; TRL's top_entropy_quantile); 1: every token.
  double top_entropy_quantile = 1.0;
  int mu = 1;  // policy updates per rollout batch
  // recorded: the engine's behaviour log-probs (same module, same weights); recompute: one
  // extra no-grad forward of the training path before the update.
  OldLogprobs old_logprobs = OldLogprobs::recorded;
  int ref_reset_every = 0;  // copy the policy into the reference every N steps; 0: never
  // DAPO dynamic sampling: drop groups whose rewards are all equal and sample more prompts
  // until prompts_per_step groups remain, at most max_sampling_rounds generate calls per step.
  bool dynamic_sampling = false;
  int max_sampling_rounds = 4;
  bool mask_truncated = false;  // truncated completions (finish "length") get no loss
  // DAPO soft overlong punishment: completions longer than max_new_tokens - overlong_buffer
  // lose up to overlong_penalty (linearly, reaching it at max_new_tokens); 0: off.
  int overlong_buffer = 0;
  double overlong_penalty = 1.0;

  template <class V>
  void visit(V& v) {
    v("advantage", advantage);
    v("std_scaling", std_scaling);
    v("eps_low", eps_low, in_range(0, 1));
    v("eps_high", eps_high, at_least(0));
    v("dual_clip", dual_clip, at_least(0));
    v("ratio_level", ratio_level);
    v("beta", beta, at_least(0));
    v("kl_estimator", kl_estimator);
    v("loss_aggregation", loss_aggregation);
    v("entropy_coef", entropy_coef);
    v("top_entropy_quantile", top_entropy_quantile, in_range(0, 1));
    v("mu", mu, at_least(1));
    v("old_logprobs", old_logprobs);
    v("ref_reset_every", ref_reset_every, at_least(0));
    v("dynamic_sampling", dynamic_sampling);
    v("max_sampling_rounds", max_sampling_rounds, at_least(1));
    v("mask_truncated", mask_truncated);
    v("overlong_buffer", overlong_buffer, at_least(0));
    v("overlong_penalty", overlong_penalty, at_least(0));
  }
  void check(Checker& c) const {
    c.require(dual_clip == 0.0 || dual_clip > 1.0, "dual_clip",
              "must be 0 (off) or greater than 1");
    c.require(top_entropy_quantile > 0.0, "top_entropy_quantile",
              "must be > 0 (1 trains on every token)");
  }
};

}  // namespace grpo::config
