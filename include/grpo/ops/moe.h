// Mixture-of-experts routing and dispatch: gating (softmax or sigmoid scores, optional
// correction bias, optional group-limited top-k, renormalisation, routed scaling), the token
// permutation into expert-contiguous order, the weighted combine, and the auxiliary losses.
// Each entry point takes the CUDA kernels (kernels/moe.h) where they apply (docs/kernels.md).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "grpo/ops/kernels.h"

namespace grpo::ops {

enum class RouterScore { softmax, sigmoid };

// "softmax" | "sigmoid"; anything else throws naming the value.
RouterScore parse_router_score(const std::string& name);

struct RouterParams {
  RouterScore score = RouterScore::softmax;
  int64_t top_k = 2;
  bool renormalize = false;  // divide the k weights by their sum
  double routed_scaling_factor = 1.0;
  // Group-limited top-k (DeepSeek): experts form n_group equal groups; a group's score is the
  // sum of its two best (bias-corrected) scores; experts are picked only from the topk_group
  // best groups. n_group <= 1 disables it.
  int64_t n_group = 1;
  int64_t topk_group = 1;
  KernelPolicy kernels = KernelPolicy::automatic;  // route and dispatch: kernel or reference
};

struct Routing {
  at::Tensor weights;  // (N, k) fp32: combine weights (after renormalisation and scaling)
  at::Tensor experts;  // (N, k) int64: chosen expert ids
  at::Tensor scores;   // (N, E) fp32: softmax or sigmoid of the logits, without the bias
};

// logits (N, E) any float dtype; correction_bias (E) or undefined: added to the scores only to
// choose the experts (aux-loss-free balancing), never to the combine weights.
Routing route(const at::Tensor& logits, const RouterParams& params,
              const at::Tensor& correction_bias = {});

// Expert-contiguous order of the N*k (token, slot) assignments.
struct Dispatch {
  at::Tensor order;        // (N*k) int64: flat assignment ids (token * k + slot), by expert
  at::Tensor token_index;  // (N*k) int64: the token of each sorted assignment
  at::Tensor counts;       // (E) int64: assignments per expert (router statistics)
  at::Tensor offsets;      // (E+1) int64 on CPU: expert e owns rows offsets[e] .. offsets[e+1]
  // (N*k) int32: sorted position of each assignment; set by the kernel path only, and then
  // permute and combine take their kernels too (bf16/fp16 rows).
  at::Tensor position;
};
Dispatch dispatch(const at::Tensor& experts, int64_t num_experts,
                  KernelPolicy policy = KernelPolicy::automatic);

// x (N, H) -> (N*k, H): the rows each expert receives, in dispatch order.
at::Tensor permute(const at::Tensor& x, const Dispatch& d);

// y (N*k, H) expert outputs in dispatch order, weights (N, k) -> (N, H) in y's dtype:
// out[t] = sum over t's slots of weight * y.
at::Tensor combine(const at::Tensor& y, const at::Tensor& weights, const Dispatch& d,
                   int64_t num_tokens);

// Switch-Transformer load-balancing loss: E * sum_e f_e * P_e, where f_e is the fraction of the
// N*k assignments that went to expert e and P_e the mean router probability of e. Scalar fp32.
// token_mask (N) bool or undefined: padding tokens excluded.
at::Tensor load_balancing_loss(const Routing& routing, int64_t num_experts,
                               const at::Tensor& token_mask = {});

// Router z-loss (ST-MoE): mean over tokens of logsumexp(logits)^2. Scalar fp32.
at::Tensor router_z_loss(const at::Tensor& logits, const at::Tensor& token_mask = {});

}  // namespace grpo::ops
