// Policy loss: per-token clipped surrogate + beta * KL - entropy_coef * entropy, then one of the
// registered aggregations. Masked-out positions are zeroed before any arithmetic so that padding
// (log-prob 0, -inf, NaN) never leaks into the loss or its gradient.
#include "grpo/algo/policy_loss.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "grpo/core/error.h"

namespace grpo::algo {
namespace {

// token_mean: sum over all valid tokens / total valid tokens of the minibatch (DAPO, TRL's
// "dapo" loss, verl's token-mean).
at::Tensor token_mean(const at::Tensor& x, const at::Tensor& m, const LossNormalizers& norm) {
  GRPO_CHECK(norm.tokens > 0, "token_mean needs the minibatch's token count, got ", norm.tokens);
  return (x * m).sum() / norm.tokens;
}

// seq_mean_token_mean: per-sequence token mean, then mean over sequences (original GRPO, TRL's
// "grpo" loss, verl's seq-mean-token-mean).
at::Tensor seq_mean_token_mean(const at::Tensor& x, const at::Tensor& m,
                               const LossNormalizers& norm) {
  GRPO_CHECK(norm.sequences > 0, "seq_mean_token_mean needs the minibatch's sequence count, got ",
             norm.sequences);
  return ((x * m).sum(1) / m.sum(1).clamp_min(1.0)).sum() / norm.sequences;
}

// seq_mean_token_sum_norm: per-sequence token sum / a constant, then mean over sequences
// (Dr. GRPO, TRL's "dr_grpo" loss).
at::Tensor seq_mean_token_sum_norm(const at::Tensor& x, const at::Tensor& m,
                                   const LossNormalizers& norm) {
  GRPO_CHECK(norm.sequences > 0 && norm.max_response_length > 0,
             "seq_mean_token_sum_norm needs the sequence count and max_response_length, got ",
             norm.sequences, " and ", norm.max_response_length);
  return ((x * m).sum(1) / norm.max_response_length).sum() / norm.sequences;
}

const std::vector<std::pair<config::LossAggregation, AggregateFn>>& registry() {
  static const std::vector<std::pair<config::LossAggregation, AggregateFn>> k{
      {config::LossAggregation::token_mean, &token_mean},
      {config::LossAggregation::seq_mean_token_mean, &seq_mean_token_mean},
      {config::LossAggregation::seq_mean_token_sum_norm, &seq_mean_token_sum_norm}};
  return k;
}

void check_like(const at::Tensor& t, const char* name, const at::Tensor& like) {
  GRPO_CHECK(t.defined() && t.sizes() == like.sizes(), "policy_loss: ", name, " must be ",
             like.sizes(), " like logprobs, got ", t.defined() ? t.sizes() : at::IntArrayRef{});
}

}  // namespace

AggregateFn loss_aggregation(config::LossAggregation which) {
  for (const auto& [key, fn] : registry()) {
    if (key == which) return fn;
  }
  GRPO_FAIL("no loss aggregation registered for enum value ", static_cast<int>(which));
}

at::Tensor kl_estimate(const at::Tensor& logprobs, const at::Tensor& ref_logprobs,
                       config::KlEstimator which) {
  switch (which) {
    case config::KlEstimator::k1:  // log(pi/ref): unbiased, can be negative
      return logprobs - ref_logprobs;
    case config::KlEstimator::k2:  // 0.5 * log(pi/ref)^2
      return 0.5 * (logprobs - ref_logprobs).pow(2);
    case config::KlEstimator::k3: {  // ref/pi - log(ref/pi) - 1 >= 0, clamped as verl
      const at::Tensor d = (ref_logprobs - logprobs).clamp(-kLogRatioClamp, kLogRatioClamp);
      return (d.exp() - d - 1.0).clamp(-kK3Clamp, kK3Clamp);
    }
  }
  GRPO_FAIL("unknown kl_estimator");
}

PolicyLossOutput policy_loss(const PolicyLossInputs& in, const LossNormalizers& norm,
                             const config::AlgorithmConfig& cfg) {
  GRPO_CHECK(in.logprobs.defined() && in.logprobs.dim() == 2,
             "policy_loss: logprobs must be (N, T), got ",
             in.logprobs.defined() ? in.logprobs.sizes() : at::IntArrayRef{});
  const at::Tensor& lp = in.logprobs;  // (N, T)
  check_like(in.old_logprobs, "old_logprobs", lp);
  check_like(in.mask, "mask", lp);
  GRPO_CHECK(
      in.advantages.defined() && in.advantages.dim() == 1 && in.advantages.size(0) == lp.size(0),
      "policy_loss: advantages must be (", lp.size(0), ",), got ",
      in.advantages.defined() ? in.advantages.sizes() : at::IntArrayRef{});
  GRPO_CHECK(cfg.beta == 0.0 || in.ref_logprobs.defined(), "policy_loss: beta = ", cfg.beta,
             " needs reference log-probs");
  GRPO_CHECK(cfg.entropy_coef == 0.0 || in.entropy.defined(),
             "policy_loss: entropy_coef = ", cfg.entropy_coef, " needs the token entropy");
  if (in.ref_logprobs.defined()) check_like(in.ref_logprobs, "ref_logprobs", lp);
  if (in.entropy.defined()) check_like(in.entropy, "entropy", lp);

  const at::Tensor valid = in.mask.scalar_type() == at::kBool ? in.mask : in.mask != 0;  // (N, T)
  const at::Tensor m = valid.to(lp.scalar_type());                                       // (N, T)
  // Padding is replaced by 0 before any arithmetic: masking afterwards would still let a NaN or
  // -inf there poison the gradient (0 * d exp(NaN) = NaN in the backward pass).
  const at::Tensor zero = at::zeros({}, lp.options());
  const auto clean = [&](const at::Tensor& t) {
    return at::where(valid, t.to(lp.scalar_type()), zero);
  };
  const at::Tensor logp = clean(lp);                                       // (N, T), has grad
  const at::Tensor adv = in.advantages.to(lp.scalar_type()).unsqueeze(1);  // (N, 1)

  at::Tensor log_ratio = logp - clean(in.old_logprobs.detach());  // (N, T), 0 on padding
  if (cfg.ratio_level == config::RatioLevel::sequence) {
    // GSPO: s_i = exp(mean_t log ratio) in value; the gradient of token t is s_i * grad log pi_t
    // (the paper's GSPO-token form, as verl), which equals TRL's sequence-level gradient.
    const at::Tensor seq = log_ratio.sum(1, true) / m.sum(1, true).clamp_min(1.0);  // (N, 1)
    log_ratio = logp - logp.detach() + seq.detach();
  }
  const at::Tensor ratio = log_ratio.clamp(-kLogRatioClamp, kLogRatioClamp).exp();  // (N, T)

  const at::Tensor pg1 = -adv * ratio;
  const at::Tensor pg2 = -adv * ratio.clamp(1.0 - cfg.eps_low, 1.0 + cfg.eps_high);
  at::Tensor pg = at::maximum(pg1, pg2);  // (N, T)
  at::Tensor dual = at::zeros_like(valid);
  if (cfg.dual_clip > 0.0) {
    // Dual clip (Ye et al. 2020, verl clip_ratio_c): for A < 0 the loss is at most -c * A.
    const at::Tensor pg3 = -adv * cfg.dual_clip;
    const at::Tensor negative = (adv < 0).expand_as(pg);
    dual = negative & (pg > pg3) & valid;
    pg = at::where(negative, at::minimum(pg, pg3), pg);
  }

  if (in.policy_mask.defined()) {
    check_like(in.policy_mask, "policy_mask", lp);
    pg = pg * clean(in.policy_mask.detach());
  }
  at::Tensor per_token = pg;
  at::Tensor kl;
  if (in.ref_logprobs.defined()) {
    kl = kl_estimate(logp, clean(in.ref_logprobs.detach()), cfg.kl_estimator);
    if (cfg.beta != 0.0) per_token = per_token + cfg.beta * kl;
  }
  at::Tensor entropy;
  if (in.entropy.defined()) {
    entropy = clean(in.entropy);
    if (cfg.entropy_coef != 0.0) per_token = per_token - cfg.entropy_coef * entropy;
  }

  PolicyLossOutput out;
  out.loss = loss_aggregation(cfg.loss_aggregation)(per_token, m, norm);

  const at::NoGradGuard no_grad;
  const auto count = [&](const at::Tensor& b) { return (b & valid).sum().to(at::kDouble); };
  const auto total = [&](const at::Tensor& t) {
    return t.defined() ? (t.detach() * m).sum().to(at::kDouble)
                       : at::zeros({}, lp.options().dtype(at::kDouble));
  };
  out.stats = at::stack({m.sum().to(at::kDouble), count((ratio < 1.0 - cfg.eps_low) & (adv < 0)),
                         count((ratio > 1.0 + cfg.eps_high) & (adv > 0)), count(dual), total(ratio),
                         total(kl), total(entropy)});
  return out;
}

float top_quantile_threshold(
    const at::Tensor& values, const at::Tensor& mask, double quantile,
    const std::function<std::vector<double>(const std::vector<double>&)>& sum) {
  GRPO_CHECK(quantile > 0 && quantile <= 1, "top_quantile_threshold: quantile ", quantile,
             " outside (0, 1]");
  const at::Tensor picked =
      values.cpu().to(at::kFloat).masked_select(mask.cpu() != 0).clamp_min(0).contiguous();
  std::vector<float> local(picked.data_ptr<float>(), picked.data_ptr<float>() + picked.numel());
  std::sort(local.begin(), local.end());
  const double total = sum({static_cast<double>(local.size())})[0];
  if (total == 0) return std::numeric_limits<float>::infinity();
  const double k = std::max(1.0, std::ceil(quantile * total - 1e-9));
  const auto at_least = [&](uint32_t bits) {  // values >= the float with these bits
    float t;
    std::memcpy(&t, &bits, sizeof t);
    return static_cast<double>(local.end() - std::lower_bound(local.begin(), local.end(), t));
  };
  // Non-negative floats order as their bit patterns: find the largest pattern t with at least k
  // values >= t; it is the k-th largest value itself.
  uint32_t lo = 0, hi = 0x7f800000u;  // count(>= lo) >= k holds; hi is +infinity
  while (hi - lo > 1) {
    const uint32_t mid = lo + (hi - lo) / 2;
    if (sum({at_least(mid)})[0] >= k) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  float t;
  std::memcpy(&t, &lo, sizeof t);
  return t;
}

LossMetrics summarize(const at::Tensor& stats) {
  GRPO_CHECK(stats.dim() == 1 && stats.size(0) == kStatCount, "summarize: stats must be (",
             static_cast<int64_t>(kStatCount), ",), got ", stats.sizes());
  const at::Tensor s = stats.to(at::kCPU, at::kDouble).contiguous();
  const double* p = s.data_ptr<double>();
  LossMetrics out;
  const double tokens = p[kStatTokens];
  if (tokens <= 0) return out;
  out.clip_frac_low = p[kStatClipLow] / tokens;
  out.clip_frac_high = p[kStatClipHigh] / tokens;
  out.clip_frac_dual = p[kStatClipDual] / tokens;
  out.ratio_mean = p[kStatRatio] / tokens;
  out.kl_mean = p[kStatKl] / tokens;
  out.entropy_mean = p[kStatEntropy] / tokens;
  return out;
}

}  // namespace grpo::algo
