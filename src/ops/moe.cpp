// ATen reference implementation of MoE routing, dispatch, combine and auxiliary losses (see
// include/grpo/ops/moe.h). Gating runs in fp32 whatever the activation dtype.
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "grpo/core/error.h"
#include "grpo/ops/moe.h"

#if GRPO_KERNELS_LINKED
#include "cuda_ops.h"
#endif

namespace grpo::ops {

RouterScore parse_router_score(const std::string& name) {
  if (name == "softmax") return RouterScore::softmax;
  if (name == "sigmoid") return RouterScore::sigmoid;
  GRPO_CHECK_KIND(config, false, "unsupported router scoring function '", name,
                  "' (supported: softmax, sigmoid)");
  return RouterScore::softmax;
}

Routing route(const at::Tensor& logits, const RouterParams& p, const at::Tensor& correction_bias) {
  GRPO_CHECK(logits.dim() == 2, "route: logits must be (N, E), got ", logits.sizes());
  const int64_t n = logits.size(0), e = logits.size(1);
  GRPO_CHECK(p.top_k >= 1 && p.top_k <= e, "route: top_k ", p.top_k, " not in [1, ", e, "]");
#if GRPO_KERNELS_LINKED
  if (cuda_kernels_enabled(p.kernels) && cuda::route_supported(logits, p)) {
    return cuda::route(logits, p, correction_bias);
  }
#endif
  Routing r;
  const at::Tensor lf = logits.to(at::kFloat);
  r.scores = p.score == RouterScore::softmax ? at::softmax(lf, -1) : at::sigmoid(lf);
  at::Tensor choice = r.scores;
  if (correction_bias.defined()) {
    GRPO_CHECK(correction_bias.numel() == e, "route: correction bias has ", correction_bias.numel(),
               " entries for ", e, " experts");
    choice = choice + correction_bias.to(at::kFloat).view({1, e});
  }
  if (p.n_group > 1) {
    GRPO_CHECK(e % p.n_group == 0, "route: ", e, " experts do not split into ", p.n_group,
               " groups");
    GRPO_CHECK(p.topk_group >= 1 && p.topk_group <= p.n_group, "route: topk_group ", p.topk_group,
               " not in [1, ", p.n_group, "]");
    const int64_t per_group = e / p.n_group;
    const at::Tensor grouped = choice.view({n, p.n_group, per_group});
    const at::Tensor group_scores =
        std::get<0>(grouped.topk(std::min<int64_t>(2, per_group), -1)).sum(-1);  // (N, G)
    const at::Tensor best_groups = std::get<1>(group_scores.topk(p.topk_group, -1));
    const at::Tensor group_mask =
        at::zeros_like(group_scores).scatter_(1, best_groups, 1.0).to(at::kBool);  // (N, G)
    const at::Tensor expert_mask =
        group_mask.unsqueeze(-1).expand({n, p.n_group, per_group}).reshape({n, e});
    choice = choice.masked_fill(expert_mask.logical_not(), -std::numeric_limits<float>::infinity());
  }
  r.experts = std::get<1>(choice.topk(p.top_k, -1));  // (N, k)
  r.weights = r.scores.gather(1, r.experts);          // (N, k): without the bias
  if (p.renormalize) r.weights = r.weights / r.weights.sum(-1, true);
  if (p.routed_scaling_factor != 1.0) r.weights = r.weights * p.routed_scaling_factor;
  return r;
}

Dispatch dispatch(const at::Tensor& experts, int64_t num_experts, KernelPolicy policy) {
#if GRPO_KERNELS_LINKED
  if (cuda_kernels_enabled(policy) && cuda::dispatch_supported(experts, num_experts)) {
    return cuda::dispatch(experts, num_experts);
  }
#else
  (void)policy;
#endif
  Dispatch d;
  const at::Tensor flat = experts.reshape({-1});  // (N*k)
  // Stable, so tokens keep their order inside an expert (deterministic combine order).
  d.order = std::get<1>(flat.sort(/*stable=*/true, 0, false));
  d.token_index = at::div(d.order, experts.size(1), "floor");
  d.counts = at::bincount(flat, {}, num_experts);
  d.offsets = at::cat({at::zeros({1}, d.counts.options()), d.counts.cumsum(0)}).to(at::kCPU);
  return d;
}

at::Tensor permute(const at::Tensor& x, const Dispatch& d) {
#if GRPO_KERNELS_LINKED
  if (cuda::rows_supported(x, d)) return cuda::permute(x, d);
#endif
  return x.index_select(0, d.token_index);
}

at::Tensor combine(const at::Tensor& y, const at::Tensor& weights, const Dispatch& d,
                   int64_t num_tokens) {
#if GRPO_KERNELS_LINKED
  if (cuda::rows_supported(y, d)) return cuda::combine(y, weights, d, num_tokens);
#endif
  const at::Tensor w = weights.reshape({-1}).index_select(0, d.order).to(y.scalar_type());
  at::Tensor out = at::zeros({num_tokens, y.size(1)}, y.options());
  return out.index_add(0, d.token_index, y * w.unsqueeze(1));
}

at::Tensor grouped_linear(const at::Tensor& x, const std::vector<int64_t>& offsets,
                          at::TensorList weights, KernelPolicy policy) {
  GRPO_CHECK(offsets.size() == weights.size() + 1, "grouped_linear: ", offsets.size(),
             " offsets for ", weights.size(), " experts");
#if GRPO_KERNELS_LINKED
  if (cuda_kernels_enabled(policy) && cuda::grouped_linear_supported(x, weights)) {
    return cuda::grouped_linear(x, offsets, weights);
  }
#else
  (void)policy;
#endif
  std::vector<at::Tensor> parts;
  for (size_t e = 0; e < weights.size(); ++e) {
    parts.push_back(at::linear(x.narrow(0, offsets[e], offsets[e + 1] - offsets[e]), weights[e]));
  }
  return at::cat(parts, 0);
}

at::Tensor load_balancing_loss(const Routing& routing, int64_t num_experts,
                               const at::Tensor& token_mask) {
  const int64_t k = routing.experts.size(1);
  at::Tensor probs = routing.scores / routing.scores.sum(-1, true);                     // (N, E)
  at::Tensor chosen = at::one_hot(routing.experts, num_experts).to(at::kFloat).sum(1);  // (N, E)
  at::Tensor weight = at::ones({routing.scores.size(0), 1}, probs.options());
  if (token_mask.defined()) weight = token_mask.to(at::kFloat).reshape({-1, 1});
  const at::Tensor denom = weight.sum().clamp_min(1.0);
  const at::Tensor fraction = (chosen * weight).sum(0) / (denom * k);  // (E)
  const at::Tensor mean_prob = (probs * weight).sum(0) / denom;        // (E)
  return (fraction * mean_prob).sum() * num_experts;
}

at::Tensor router_z_loss(const at::Tensor& logits, const at::Tensor& token_mask) {
  const at::Tensor z = at::logsumexp(logits.to(at::kFloat), -1).pow(2);  // (N)
  if (!token_mask.defined()) return z.mean();
  const at::Tensor m = token_mask.to(at::kFloat).reshape({-1});
  return (z * m).sum() / m.sum().clamp_min(1.0);
}

}  // namespace grpo::ops
