// Advantages, KL estimators, the clipped surrogate and every aggregation mode against values
// derived by hand in the comments (small tensors, float64).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "grpo/algo/advantages.h"
#include "grpo/algo/policy_loss.h"
#include "grpo/core/error.h"

namespace algo = grpo::algo;
namespace config = grpo::config;

namespace {

at::Tensor t1(std::vector<double> v) { return at::tensor(v, at::kDouble); }
at::Tensor t2(std::vector<double> v, int64_t rows) { return t1(std::move(v)).reshape({rows, -1}); }

void expect_values(const at::Tensor& got, const std::vector<double>& want, double tol = 1e-6) {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  const at::Tensor g = got.to(at::kDouble).reshape({-1});
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(g[static_cast<int64_t>(i)].item<double>(), want[i], tol) << "element " << i;
  }
}

algo::AdvantageResult advantages(std::vector<double> rewards, int64_t g,
                                 config::AdvantageEstimator est,
                                 config::StdScaling scaling = config::StdScaling::group,
                                 at::Tensor lengths = {}) {
  config::AlgorithmConfig cfg;
  cfg.advantage = est;
  cfg.std_scaling = scaling;
  return algo::compute_advantages({t1(std::move(rewards)), g, std::move(lengths)}, cfg);
}

}  // namespace

TEST(Advantages, GrpoGroupStd) {
  // Group 1 {1,0,0,1}: mean 0.5, unbiased std sqrt(4 * 0.25 / 3) = sqrt(1/3).
  // Group 2 {2,2,2,2}: no variance, advantage 0 (0 / eps).
  const auto r = advantages({1, 0, 0, 1, 2, 2, 2, 2}, 4, config::AdvantageEstimator::grpo);
  const double a = 0.5 / (std::sqrt(1.0 / 3.0) + algo::kStdEps);
  expect_values(r.advantages, {a, -a, -a, a, 0, 0, 0, 0});
  EXPECT_DOUBLE_EQ(r.zero_variance_fraction, 0.5);
  EXPECT_EQ(r.advantages.scalar_type(), at::kFloat);
}

TEST(Advantages, GrpoBatchStdAndNoStd) {
  // {1,0 | 3,3}: centred by group means 0.5 and 3 -> {0.5,-0.5,0,0}. Batch {1,0,3,3}: mean 1.75,
  // squared deviations 0.5625+3.0625+1.5625+1.5625 = 6.75, / 3 = 2.25, std 1.5.
  const auto b =
      advantages({1, 0, 3, 3}, 2, config::AdvantageEstimator::grpo, config::StdScaling::batch);
  const double a = 0.5 / (1.5 + algo::kStdEps);
  expect_values(b.advantages, {a, -a, 0, 0});
  const auto n =
      advantages({1, 0, 3, 3}, 2, config::AdvantageEstimator::grpo, config::StdScaling::none);
  expect_values(n.advantages, {0.5, -0.5, 0, 0});
}

TEST(Advantages, DrGrpoIgnoresStdScaling) {
  const auto r = advantages({1, 0, 0, 0, 4, 2}, 3, config::AdvantageEstimator::drgrpo);
  expect_values(r.advantages, {2.0 / 3, -1.0 / 3, -1.0 / 3, -2, 2, 0});
  EXPECT_DOUBLE_EQ(r.zero_variance_fraction, 0.0);
}

TEST(Advantages, RlooLeaveOneOut) {
  // {3,0,0}: 3 - mean(0,0) = 3; 0 - mean(3,0) = -1.5 (twice).
  const auto r = advantages({3, 0, 0}, 3, config::AdvantageEstimator::rloo);
  expect_values(r.advantages, {3, -1.5, -1.5});
}

TEST(Advantages, ReinforcePlusPlusWhitensOverTokens) {
  // Rewards {1,0} with 1 and 3 tokens act as tokens {1,0,0,0}: mean 0.25, unbiased variance
  // (0.5625 + 3 * 0.0625) / 3 = 0.25, so (r - 0.25) / 0.5 = {1.5, -0.5}. No group baseline.
  const double s = 1.0 / std::sqrt(0.25 + algo::kVarEps);
  const auto w = advantages({1, 0}, 1, config::AdvantageEstimator::reinforce_pp,
                            config::StdScaling::group, at::tensor({1, 3}, at::kLong));
  expect_values(w.advantages, {0.75 * s, -0.25 * s});
  const auto u = advantages({1, 0, 0, 0}, 2, config::AdvantageEstimator::reinforce_pp);
  expect_values(u.advantages, {0.75 * s, -0.25 * s, -0.25 * s, -0.25 * s});
  EXPECT_DOUBLE_EQ(u.zero_variance_fraction, 0.5);
}

TEST(Advantages, OverlongPenaltyIsDapoSoftPunishment) {
  // DAPO: L_max = 32, L_cache = 8. No penalty up to 24 tokens, then (L - 24) / 8 x factor.
  EXPECT_DOUBLE_EQ(algo::overlong_penalty(10, 32, 8, 1.0), 0.0);
  EXPECT_DOUBLE_EQ(algo::overlong_penalty(24, 32, 8, 1.0), 0.0);
  EXPECT_DOUBLE_EQ(algo::overlong_penalty(25, 32, 8, 1.0), 0.125);
  EXPECT_DOUBLE_EQ(algo::overlong_penalty(28, 32, 8, 1.0), 0.5);
  EXPECT_DOUBLE_EQ(algo::overlong_penalty(32, 32, 8, 1.0), 1.0);
  EXPECT_DOUBLE_EQ(algo::overlong_penalty(30, 32, 8, 0.5), 0.375);
  EXPECT_DOUBLE_EQ(algo::overlong_penalty(32, 32, 0, 1.0), 0.0);  // off
  EXPECT_THROW(algo::overlong_penalty(5, 32, 32, 1.0), grpo::Error);
}

TEST(Advantages, BadInputsAreClearErrors) {
  EXPECT_THROW(advantages({1, 0, 1}, 2, config::AdvantageEstimator::grpo), grpo::Error);
  EXPECT_THROW(advantages({1, 0}, 1, config::AdvantageEstimator::grpo), grpo::Error);
  EXPECT_THROW(advantages({1, std::nan("")}, 2, config::AdvantageEstimator::rloo), grpo::Error);
  try {
    advantages({1, 0}, 1, config::AdvantageEstimator::rloo);
    FAIL() << "G = 1 accepted";
  } catch (const grpo::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'rloo'"), std::string::npos) << e.what();
  }
}

TEST(Kl, EstimatorsAndClamp) {
  // logp = 0, ref = ln 2: k1 = -ln 2, k2 = ln(2)^2 / 2, k3 = 2 - ln 2 - 1.
  const at::Tensor lp = at::zeros({1, 3}, at::kDouble);
  const at::Tensor ref = t2({std::log(2.0), 25.0, -30.0}, 1);
  const double l2 = std::log(2.0);
  expect_values(algo::kl_estimate(lp, ref, config::KlEstimator::k1), {-l2, -25, 30});
  expect_values(algo::kl_estimate(lp, ref, config::KlEstimator::k2), {0.5 * l2 * l2, 312.5, 450});
  // k3 at ref - logp = 25 (clamped to 20: e^20 - 21) and -30 (-> -20: e^-20 + 19) both exceed
  // the clamp of 10.
  expect_values(algo::kl_estimate(lp, ref, config::KlEstimator::k3), {1 - l2, 10, 10});
}

namespace {

// One sequence of two tokens with ratios 1.5 and 0.5 (old log-probs 0), eps 0.2 both sides.
algo::PolicyLossInputs two_tokens(double advantage) {
  algo::PolicyLossInputs in;
  in.logprobs = t2({std::log(1.5), std::log(0.5)}, 1).set_requires_grad(true);
  in.old_logprobs = at::zeros({1, 2}, at::kDouble);
  in.advantages = t1({advantage});
  in.mask = at::ones({1, 2}, at::kBool);
  return in;
}

config::AlgorithmConfig plain() {
  config::AlgorithmConfig cfg;
  cfg.beta = 0;
  cfg.eps_low = 0.2;
  cfg.eps_high = 0.2;
  return cfg;
}

}  // namespace

TEST(PolicyLoss, ClippedSurrogatePositiveAdvantage) {
  // A = 1. Token 1: max(-1.5, -1.2) = -1.2, clipped (no gradient). Token 2: max(-0.5, -0.8) =
  // -0.5, gradient -A * ratio = -0.5. token_mean over 2 tokens: -0.85, gradient {0, -0.25}.
  auto in = two_tokens(1.0);
  const auto out = algo::policy_loss(in, {2, 1, 2}, plain());
  EXPECT_NEAR(out.loss.item<double>(), -0.85, 1e-12);
  out.loss.backward();
  expect_values(in.logprobs.grad(), {0, -0.25}, 1e-12);
  const auto m = algo::summarize(out.stats);
  EXPECT_DOUBLE_EQ(m.clip_frac_high, 0.5);
  EXPECT_DOUBLE_EQ(m.clip_frac_low, 0.0);  // ratio 0.5 < 0.8 but A > 0: not clipped
  EXPECT_NEAR(m.ratio_mean, 1.0, 1e-12);
}

TEST(PolicyLoss, NegativeAdvantageAndDualClip) {
  // A = -1. Token 1: max(1.5, 1.2) = 1.5 (gradient 1.5); token 2: max(0.5, 0.8) = 0.8, clipped.
  auto in = two_tokens(-1.0);
  auto out = algo::policy_loss(in, {2, 1, 2}, plain());
  EXPECT_NEAR(out.loss.item<double>(), (1.5 + 0.8) / 2, 1e-12);
  out.loss.backward();
  expect_values(in.logprobs.grad(), {0.75, 0}, 1e-12);
  EXPECT_DOUBLE_EQ(algo::summarize(out.stats).clip_frac_low, 0.5);

  // Dual clip c = 1.4 caps token 1 at -c * A = 1.4 (no gradient): (1.4 + 0.8) / 2.
  auto cfg = plain();
  cfg.dual_clip = 1.4;
  auto dual = two_tokens(-1.0);
  out = algo::policy_loss(dual, {2, 1, 2}, cfg);
  EXPECT_NEAR(out.loss.item<double>(), 1.1, 1e-12);
  out.loss.backward();
  expect_values(dual.logprobs.grad(), {0, 0}, 1e-12);
  EXPECT_DOUBLE_EQ(algo::summarize(out.stats).clip_frac_dual, 0.5);
}

TEST(PolicyLoss, GspoSequenceRatio) {
  // Log ratios {0.2, -0.4}: s = exp(-0.1) for both tokens, within the clip range. Loss under
  // token_mean = -A * s; the gradient of each token is -A * s / 2 (s * grad of the mean).
  algo::PolicyLossInputs in;
  in.logprobs = t2({-1.0, -2.0}, 1).set_requires_grad(true);
  in.old_logprobs = t2({-1.2, -1.6}, 1);
  in.advantages = t1({1.0});
  in.mask = at::ones({1, 2}, at::kBool);
  auto cfg = plain();
  cfg.ratio_level = config::RatioLevel::sequence;
  const auto out = algo::policy_loss(in, {2, 1, 2}, cfg);
  const double s = std::exp(-0.1);
  EXPECT_NEAR(out.loss.item<double>(), -s, 1e-12);
  out.loss.backward();
  expect_values(in.logprobs.grad(), {-s / 2, -s / 2}, 1e-12);
}

TEST(PolicyLoss, KlAndEntropyTerms) {
  // Ratio 1 everywhere (logp == old), A = 0: only beta * k1 - entropy_coef * H remain.
  // k1 = logp - ref = {0.5, -0.1}, H = {2, 4}: token_mean = (0.1 * 0.4 - 0.01 * 6) / 2 = -0.01.
  algo::PolicyLossInputs in;
  in.logprobs = t2({-1.0, -1.0}, 1).set_requires_grad(true);
  in.old_logprobs = t2({-1.0, -1.0}, 1);
  in.ref_logprobs = t2({-1.5, -0.9}, 1);
  in.entropy = t2({2, 4}, 1);
  in.advantages = t1({0.0});
  in.mask = at::ones({1, 2}, at::kBool);
  auto cfg = plain();
  cfg.beta = 0.1;
  cfg.kl_estimator = config::KlEstimator::k1;
  cfg.entropy_coef = 0.01;
  const auto out = algo::policy_loss(in, {2, 1, 2}, cfg);
  EXPECT_NEAR(out.loss.item<double>(), -0.01, 1e-12);
  out.loss.backward();
  expect_values(in.logprobs.grad(), {0.05, 0.05}, 1e-12);  // beta * d k1 / d logp / 2
  const auto m = algo::summarize(out.stats);
  EXPECT_NEAR(m.kl_mean, 0.2, 1e-12);
  EXPECT_NEAR(m.entropy_mean, 3.0, 1e-12);
}

// policy_mask (top_entropy_quantile) drops the clipped surrogate of the unselected tokens, but
// not their KL term, and the token_mean normaliser still counts both tokens.
TEST(PolicyLoss, PolicyMaskKeepsKlAndNormaliser) {
  auto in = two_tokens(-1.0);  // surrogate per token: 1.5 (gradient 1.5) and 0.8 (clipped)
  in.ref_logprobs = t2({std::log(1.5) - 0.5, std::log(0.5) + 0.25}, 1);  // k1 = {0.5, -0.25}
  in.policy_mask = t2({0, 1}, 1);
  auto cfg = plain();
  cfg.beta = 0.1;
  cfg.kl_estimator = config::KlEstimator::k1;
  const auto out = algo::policy_loss(in, {2, 1, 2}, cfg);
  EXPECT_NEAR(out.loss.item<double>(), (0.8 + 0.1 * (0.5 - 0.25)) / 2, 1e-12);
  out.loss.backward();
  expect_values(in.logprobs.grad(), {0.1 / 2, 0.1 / 2}, 1e-12);  // KL only; token 2 clipped
}

// top_quantile_threshold: the k-th largest masked value, k = ceil(q n), against a sort; ties at
// the threshold; the sum hook sees the counts (here two "ranks" holding the same values add up).
TEST(TopQuantile, KthLargestOfTheMaskedValues) {
  const auto identity = [](const std::vector<double>& v) { return v; };
  at::Tensor values =
      at::tensor({0.5, 2.0, 0.0, 1.25, 3.0, 2.0, 7.0, 0.75}, at::kFloat).view({2, 4});
  at::Tensor mask = at::tensor({1, 1, 1, 1, 1, 1, 0, 1}, at::kFloat).view({2, 4});  // 7.0 out
  std::vector<float> kept = {0.5, 2.0, 0.0, 1.25, 3.0, 2.0, 0.75};
  std::sort(kept.rbegin(), kept.rend());
  for (double q : {0.05, 0.2, 0.3, 0.5, 0.8, 1.0}) {
    const size_t k = static_cast<size_t>(std::ceil(q * 7 - 1e-9));
    EXPECT_EQ(algo::top_quantile_threshold(values, mask, q, identity),
              kept[std::max<size_t>(k, 1) - 1])
        << q;
  }
  // 2 of 7 -> k = 2: 3.0 and the first 2.0; the tied second 2.0 is selected as well.
  EXPECT_EQ(algo::top_quantile_threshold(values, mask, 2.0 / 7, identity), 2.0f);
  // Two ranks with these values: k doubles, the threshold stays.
  int calls = 0;
  const auto doubled = [&](const std::vector<double>& v) {
    ++calls;
    return std::vector<double>{2 * v[0]};
  };
  EXPECT_EQ(algo::top_quantile_threshold(values, mask, 0.5, doubled),
            algo::top_quantile_threshold(values, mask, 0.5, identity));
  EXPECT_EQ(calls, 32);
  EXPECT_TRUE(
      std::isinf(algo::top_quantile_threshold(values, at::zeros_like(mask), 0.5, identity)));
}

TEST(Aggregation, EveryModeOnAHandExample) {
  // Values {{1,2,3},{4,5,6}}, mask {{1,1,0},{1,0,0}}: valid tokens 1,2 | 4.
  const at::Tensor x = t2({1, 2, 3, 4, 5, 6}, 2);
  const at::Tensor m = t2({1, 1, 0, 1, 0, 0}, 2);
  const auto agg = [&](config::LossAggregation a, algo::LossNormalizers n) {
    return algo::loss_aggregation(a)(x, m, n).item<double>();
  };
  // token_mean: (1 + 2 + 4) / 3, or / 10 when the minibatch holds 10 tokens in all.
  EXPECT_NEAR(agg(config::LossAggregation::token_mean, {3, 2, 4}), 7.0 / 3, 1e-12);
  EXPECT_NEAR(agg(config::LossAggregation::token_mean, {10, 2, 4}), 0.7, 1e-12);
  // seq_mean_token_mean: (mean{1,2} + mean{4}) / 2 = (1.5 + 4) / 2.
  EXPECT_NEAR(agg(config::LossAggregation::seq_mean_token_mean, {3, 2, 4}), 2.75, 1e-12);
  // seq_mean_token_sum_norm, constant 4: (3 / 4 + 4 / 4) / 2.
  EXPECT_NEAR(agg(config::LossAggregation::seq_mean_token_sum_norm, {3, 2, 4}), 0.875, 1e-12);
  EXPECT_THROW(agg(config::LossAggregation::token_mean, {0, 2, 4}), grpo::Error);
  EXPECT_THROW(agg(config::LossAggregation::seq_mean_token_sum_norm, {3, 2, 0}), grpo::Error);
}

TEST(PolicyLoss, PaddingNeverLeaks) {
  // Padding full of NaN and -inf gives the same loss and gradient as the unpadded sequence.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  auto cfg = plain();
  cfg.beta = 0.1;
  cfg.ratio_level = config::RatioLevel::sequence;
  algo::PolicyLossInputs a;
  a.logprobs = t2({-1.0, -0.5, nan, nan}, 1).set_requires_grad(true);
  a.old_logprobs = t2({-1.1, -0.4, -inf, nan}, 1);
  a.ref_logprobs = t2({-0.9, -0.7, inf, nan}, 1);
  a.advantages = t1({0.7});
  a.mask = t2({1, 1, 0, 0}, 1);
  algo::PolicyLossInputs b = a;
  b.logprobs = t2({-1.0, -0.5}, 1).set_requires_grad(true);
  b.old_logprobs = t2({-1.1, -0.4}, 1);
  b.ref_logprobs = t2({-0.9, -0.7}, 1);
  b.mask = t2({1, 1}, 1);
  const auto la = algo::policy_loss(a, {2, 1, 4}, cfg);
  const auto lb = algo::policy_loss(b, {2, 1, 4}, cfg);
  EXPECT_NEAR(la.loss.item<double>(), lb.loss.item<double>(), 1e-12);
  la.loss.backward();
  lb.loss.backward();
  const at::Tensor ga = a.logprobs.grad();
  expect_values(ga.slice(1, 0, 2),
                {b.logprobs.grad()[0][0].item<double>(), b.logprobs.grad()[0][1].item<double>()},
                1e-12);
  expect_values(ga.slice(1, 2, 4), {0, 0}, 0);
  EXPECT_TRUE(at::isfinite(la.stats).all().item<bool>());
}

TEST(PolicyLoss, ShapeErrorsNameTheTensor) {
  auto in = two_tokens(1.0);
  in.old_logprobs = at::zeros({1, 3}, at::kDouble);
  try {
    algo::policy_loss(in, {2, 1, 2}, plain());
    FAIL() << "mismatched old_logprobs accepted";
  } catch (const grpo::Error& e) {
    EXPECT_NE(std::string(e.what()).find("old_logprobs"), std::string::npos) << e.what();
  }
  auto cfg = plain();
  cfg.beta = 0.04;
  EXPECT_THROW(algo::policy_loss(two_tokens(1.0), {2, 1, 2}, cfg), grpo::Error);
}
