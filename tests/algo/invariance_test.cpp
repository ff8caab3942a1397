// The gradient of a minibatch does not depend on how it is cut into micro-batches or spread over
// ranks: with the minibatch's global normalisers, the micro-batch losses' gradients add up to
// the full-batch gradient (and the stats add up to the full-batch stats).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "grpo/algo/policy_loss.h"

namespace algo = grpo::algo;
namespace config = grpo::config;

namespace {

struct Batch {
  at::Tensor logp, old, ref, adv, mask, entropy;  // (N, T) except adv (N,)
};

Batch random_batch(int64_t n, int64_t t, at::ScalarType dtype) {
  at::manual_seed(7);
  Batch b;
  b.logp = -at::rand({n, t}, at::kDouble) * 2.0 - 0.05;
  b.old = b.logp + at::randn({n, t}, at::kDouble) * 0.4;
  b.ref = b.logp + at::randn({n, t}, at::kDouble) * 0.5;
  b.adv = at::randn({n}, at::kDouble);
  // Lengths 0..T, so an empty response is among them.
  const at::Tensor lengths = at::randint(0, t + 1, {n}, at::kLong);
  lengths[0] = 0;
  b.mask = at::arange(t, at::kLong).unsqueeze(0) < lengths.unsqueeze(1);
  b.entropy = at::rand({n, t}, at::kDouble) * 3.0;
  for (at::Tensor* x : {&b.logp, &b.old, &b.ref, &b.adv, &b.entropy}) *x = x->to(dtype);
  return b;
}

// Loss over rows [begin, end) with the full minibatch's normalisers; returns d loss / d logp
// (full shape, zero outside the rows), the loss value and the stats.
std::tuple<at::Tensor, double, at::Tensor> part(const Batch& b, int64_t begin, int64_t end,
                                                const algo::LossNormalizers& norm,
                                                const config::AlgorithmConfig& cfg) {
  const at::Tensor leaf = b.logp.detach().clone().set_requires_grad(true);
  algo::PolicyLossInputs in;
  in.logprobs = leaf.slice(0, begin, end);
  in.old_logprobs = b.old.slice(0, begin, end);
  in.ref_logprobs = b.ref.slice(0, begin, end);
  in.advantages = b.adv.slice(0, begin, end);
  in.mask = b.mask.slice(0, begin, end);
  in.entropy = b.entropy.slice(0, begin, end);
  const auto out = algo::policy_loss(in, norm, cfg);
  out.loss.backward();
  return {leaf.grad(), out.loss.item<double>(), out.stats};
}

void check_splits(at::ScalarType dtype, double tol) {
  const int64_t n = 8;
  const int64_t t = 7;
  const Batch b = random_batch(n, t, dtype);
  const algo::LossNormalizers norm{b.mask.sum().item<double>(), static_cast<double>(n),
                                   static_cast<double>(t)};
  // Micro-batches of uneven sizes; "2 ranks x 2 micro-batches" is the same arithmetic, since
  // ranks sum-all-reduce the gradients that micro-batches accumulate.
  const std::vector<std::vector<int64_t>> splits{{0, 8}, {0, 3, 4, 8}, {0, 2, 4, 6, 8}};
  for (const auto agg :
       {config::LossAggregation::token_mean, config::LossAggregation::seq_mean_token_mean,
        config::LossAggregation::seq_mean_token_sum_norm}) {
    for (const auto level : {config::RatioLevel::token, config::RatioLevel::sequence}) {
      for (const double dual : {0.0, 3.0}) {
        config::AlgorithmConfig cfg;
        cfg.loss_aggregation = agg;
        cfg.ratio_level = level;
        cfg.dual_clip = dual;
        cfg.beta = 0.05;
        cfg.eps_high = 0.28;
        cfg.entropy_coef = 0.01;
        const auto [full_grad, full_loss, full_stats] = part(b, 0, n, norm, cfg);
        ASSERT_GT(full_grad.abs().sum().item<double>(), 0.0);
        for (const auto& cuts : splits) {
          at::Tensor grad = at::zeros_like(full_grad);
          at::Tensor stats = at::zeros_like(full_stats);
          double loss = 0;
          for (size_t i = 0; i + 1 < cuts.size(); ++i) {
            const auto [g, l, s] = part(b, cuts[i], cuts[i + 1], norm, cfg);
            grad += g;
            loss += l;
            stats += s;
          }
          const std::string what =
              std::string(config::enum_names(agg)[static_cast<int>(agg)].second) +
              (level == config::RatioLevel::sequence ? " sequence" : " token") + " dual " +
              std::to_string(dual) + " split of " + std::to_string(cuts.size() - 1);
          EXPECT_LT((grad - full_grad).abs().max().item<double>(), tol) << what;
          EXPECT_NEAR(loss, full_loss, tol) << what;
          EXPECT_LT((stats - full_stats).abs().max().item<double>(), tol * 10) << what;
        }
      }
    }
  }
}

}  // namespace

TEST(Invariance, MicroBatchGradientsSumToFullBatchFloat64) { check_splits(at::kDouble, 1e-12); }

TEST(Invariance, MicroBatchGradientsSumToFullBatchFloat32) { check_splits(at::kFloat, 1e-6); }
