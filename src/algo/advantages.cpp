// Advantage estimators and their registry. Every estimator sees rewards as (B, G) float64 and
// returns (B, G); compute_advantages flattens, validates and counts zero-variance groups.
#include "grpo/algo/advantages.h"

#include <string>
#include <utility>
#include <vector>

#include "grpo/core/error.h"

namespace grpo::algo {
namespace {

// (B, G) -> (B, 1) group means.
at::Tensor group_mean(const at::Tensor& r) { return r.mean(1, /*keepdim=*/true); }

// GRPO (DeepSeekMath): (r - group mean) / (std + eps). The std is the unbiased (n - 1) one,
// as torch.std computes it in both TRL and verl, so our numbers match theirs.
at::Tensor grpo_advantage(const at::Tensor& r, const AdvantageInputs&,
                          const config::AlgorithmConfig& cfg) {
  const at::Tensor centred = r - group_mean(r);
  switch (cfg.std_scaling) {
    case config::StdScaling::group:
      return centred / (r.std(1, /*unbiased=*/true, /*keepdim=*/true) + kStdEps);
    case config::StdScaling::batch:
      return centred / (r.std(/*unbiased=*/true) + kStdEps);
    case config::StdScaling::none:
      return centred;
  }
  GRPO_FAIL("unknown std_scaling");
}

// Dr. GRPO: the group mean is the whole baseline; no std, whatever std_scaling says.
at::Tensor drgrpo_advantage(const at::Tensor& r, const AdvantageInputs&,
                            const config::AlgorithmConfig&) {
  return r - group_mean(r);
}

// RLOO: r_i - mean of the other G-1 rewards, which is G/(G-1) * (r_i - group mean).
at::Tensor rloo_advantage(const at::Tensor& r, const AdvantageInputs&,
                          const config::AlgorithmConfig&) {
  const double g = static_cast<double>(r.size(1));
  return (r - group_mean(r)) * (g / (g - 1.0));
}

// REINFORCE++ as verl's compute_reinforce_plus_plus_outcome_advantage with gamma = 1: the
// outcome reward is the return of every response token, whitened over all valid tokens of the
// batch (masked_whiten: token-weighted mean, unbiased variance, rsqrt(var + 1e-8)). No group
// baseline. Per sequence this is a length-weighted whitening of the rewards.
at::Tensor reinforce_pp_advantage(const at::Tensor& r, const AdvantageInputs& in,
                                  const config::AlgorithmConfig&) {
  const at::Tensor w = in.response_lengths.defined()
                           ? in.response_lengths.to(at::kDouble).reshape(r.sizes())
                           : at::ones_like(r);
  const at::Tensor total = w.sum();
  GRPO_CHECK(total.item<double>() > 1.0,
             "reinforce_pp advantages need more than one response token in the batch, got ",
             total.item<double>());
  const at::Tensor mean = (w * r).sum() / total;
  const at::Tensor var = (w * (r - mean).pow(2)).sum() / (total - 1.0);
  return (r - mean) * at::rsqrt(var + kVarEps);
}

const std::vector<std::pair<config::AdvantageEstimator, AdvantageFn>>& registry() {
  static const std::vector<std::pair<config::AdvantageEstimator, AdvantageFn>> k{
      {config::AdvantageEstimator::grpo, &grpo_advantage},
      {config::AdvantageEstimator::drgrpo, &drgrpo_advantage},
      {config::AdvantageEstimator::rloo, &rloo_advantage},
      {config::AdvantageEstimator::reinforce_pp, &reinforce_pp_advantage}};
  return k;
}

std::string name_of(config::AdvantageEstimator which) {
  for (const auto& [key, name] : config::enum_names(which)) {
    if (key == which) return name;
  }
  return "?";
}

}  // namespace

AdvantageFn advantage_estimator(config::AdvantageEstimator which) {
  for (const auto& [key, fn] : registry()) {
    if (key == which) return fn;
  }
  GRPO_FAIL("no advantage estimator registered for enum value ", static_cast<int>(which));
}

AdvantageResult compute_advantages(const AdvantageInputs& in, const config::AlgorithmConfig& cfg) {
  GRPO_CHECK(in.rewards.defined() && in.rewards.dim() == 1,
             "advantages: rewards must be a 1-D tensor (B*G,), got ",
             in.rewards.defined() ? in.rewards.sizes() : at::IntArrayRef{});
  const int64_t n = in.rewards.size(0);
  const int64_t g = in.group_size;
  GRPO_CHECK(g >= 1 && n > 0 && n % g == 0, "advantages: ", n,
             " rewards do not split into groups of G = ", g);
  const bool needs_groups = cfg.advantage != config::AdvantageEstimator::reinforce_pp;
  GRPO_CHECK(!needs_groups || g >= 2, "advantages: estimator '", name_of(cfg.advantage),
             "' compares completions within a group and needs G >= 2, got G = ", g);
  if (in.response_lengths.defined()) {
    GRPO_CHECK(in.response_lengths.dim() == 1 && in.response_lengths.size(0) == n,
               "advantages: response_lengths must be (", n, ",), got ",
               in.response_lengths.sizes());
  }
  const at::Tensor r = in.rewards.to(at::kDouble).reshape({n / g, g});  // (B, G)
  GRPO_CHECK(at::isfinite(r).all().item<bool>(), "advantages: rewards contain NaN or Inf");

  AdvantageResult out;
  const at::Tensor a = advantage_estimator(cfg.advantage)(r, in, cfg);  // (B, G)
  out.advantages = a.reshape({n}).to(at::kFloat);
  const at::Tensor flat = (std::get<0>(r.max(1)) == std::get<0>(r.min(1)));  // (B,) bool
  out.zero_variance_fraction = flat.to(at::kDouble).mean().item<double>();
  return out;
}

double overlong_penalty(int64_t length, int64_t max_new_tokens, int64_t buffer, double factor) {
  GRPO_CHECK(buffer >= 0 && buffer < max_new_tokens, "overlong buffer ", buffer,
             " must be in [0, max_new_tokens = ", max_new_tokens, ")");
  if (buffer == 0) return 0.0;
  const int64_t start = max_new_tokens - buffer;
  if (length <= start) return 0.0;
  return factor * static_cast<double>(length - start) / static_cast<double>(buffer);
}

}  // namespace grpo::algo
