// The parameters, gradients and hyperparameters shared by the sharded-AdamW test and its rank
// processes (sharded_adamw_worker.cpp): a handful of tensors whose sizes do not divide evenly
// over 2 or 3 ranks, decaying and not (Hugging Face names), and gradients that depend only on
// the parameter, the element and the step, so that every rank holds the summed gradient a
// data-parallel all-reduce would leave.
#pragma once

#include <ATen/ATen.h>
#include <torch/optim/optimizer.h>

#include <cmath>
#include <string>
#include <vector>

#include "grpo/core/config/trainer.h"
#include "grpo/train/optimizer.h"

namespace grpo::testing {

inline config::TrainerConfig sharded_adamw_config() {
  config::TrainerConfig c;
  c.lr = 0.01;
  c.weight_decay = 0.1;
  c.adam_beta1 = 0.9;
  c.adam_beta2 = 0.99;
  c.adam_eps = 1e-8;
  return c;
}

// 61 decaying elements (shards of 31 for 2 ranks, 21 for 3: padding at the end) and 12 that do
// not decay.
inline train::NamedParameters sharded_adamw_params() {
  const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes{
      {"model.embed_tokens.weight", {6, 4}},
      {"model.layers.0.input_layernorm.weight", {9}},
      {"model.layers.0.self_attn.q_proj.weight", {7, 5}},
      {"model.layers.0.self_attn.q_proj.bias", {3}},
      {"lm_head.weight", {2}}};
  train::NamedParameters out;
  int64_t seed = 1;
  for (const auto& [name, shape] : shapes) {
    int64_t n = 1;
    for (auto s : shape) n *= s;
    auto values = at::sin(at::arange(n, at::kFloat) * 0.7 + static_cast<double>(seed++));
    out.emplace_back(name, values.view(shape).clone().requires_grad_(true));
  }
  return out;
}

// The gradient of parameter i at step t.
inline at::Tensor sharded_adamw_grad(const at::Tensor& p, size_t i, int t) {
  auto e = at::arange(p.numel(), at::kFloat);
  return at::cos(e * 0.37 * static_cast<double>(i + 1) + t).mul(1.0 + t).view(p.sizes()).clone();
}

inline void set_sharded_adamw_grads(const train::NamedParameters& params, int t) {
  for (size_t i = 0; i < params.size(); ++i) {
    params[i].second.mutable_grad() = sharded_adamw_grad(params[i].second, i, t);
  }
}

// Step t of both optimizers: the gradients of step t on `params` and on `copy`, then one step of
// `sharded` (over `params`) and of `whole` (over `copy`).
inline void step_both(train::Optimizer& sharded, const train::NamedParameters& params,
                      torch::optim::Optimizer& whole, const train::NamedParameters& copy, int t) {
  set_sharded_adamw_grads(params, t);
  set_sharded_adamw_grads(copy, t);
  sharded.step();
  whole.step();
}

inline train::NamedParameters clone_params(const train::NamedParameters& params) {
  train::NamedParameters out;
  for (const auto& [name, p] : params) {
    out.emplace_back(name, p.detach().clone().requires_grad_(true));
  }
  return out;
}

inline double max_param_diff(const train::NamedParameters& a, const train::NamedParameters& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    m = std::max(m, (a[i].second - b[i].second).abs().max().item<double>());
  }
  return m;
}

}  // namespace grpo::testing
