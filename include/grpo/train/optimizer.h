// The optimizer side of a training step: AdamW with weight-decay groups chosen by Hugging Face
// parameter name, the learning-rate schedule (linear warm-up, then constant or cosine), global
// gradient-norm clipping, and optimizer state files for checkpoints.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/adamw.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "grpo/core/config/trainer.h"

namespace grpo::train {

// Parameters with their Hugging Face names ("model.layers.0.mlp.up_proj.weight"), in module
// order. The order must be the same at save and load time (it keys the optimizer state).
using NamedParameters = std::vector<std::pair<std::string, at::Tensor>>;

// The parameters of `module` that require gradients.
NamedParameters trainable_parameters(const torch::nn::Module& module);

// Whether weight decay applies: not to biases (*.bias, *_bias) nor to norm weights (a module
// named norm, *_norm, ln_*, *layernorm*, *rmsnorm*), as transformers' Trainer decides.
bool uses_weight_decay(const std::string& name);

// AdamW (decoupled weight decay) with up to two parameter groups, empty ones left out: first
// the parameters that decay with config.weight_decay, then the biases and norms (decay 0).
// The learning rate starts at learning_rate(config, 0).
std::unique_ptr<torch::optim::AdamW> make_adamw(const NamedParameters& params,
                                                const config::TrainerConfig& config);

// The learning rate of 0-based step `step` (the step about to be taken):
//   warm-up (step < W):  lr * (step + 1) / W
//   constant:            lr
//   cosine:              lr * 0.5 * (1 + cos(pi * (step - W) / (steps - W))), reaching 0 at
//                        step == config.steps (steps past the end stay at 0).
double learning_rate(const config::TrainerConfig& config, int64_t step);

// Sets the learning rate of every parameter group.
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

// Scales all gradients by min(1, max_norm / (norm + 1e-6)) where norm is the global L2 norm of
// the gradients (accumulated in fp32 whatever the gradient dtype); max_norm <= 0 only measures.
// Returns the norm before clipping (non-finite when a gradient is). Parameters without a
// gradient are skipped. Call it after gradients are all-reduced across ranks.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);
double clip_grad_norm(const NamedParameters& params, double max_norm);

// Optimizer state (moments, step counts, group options) to/from a file (torch::save format).
// Loading requires an optimizer built over the same parameters in the same order.
void save_optimizer(torch::optim::Optimizer& optimizer, const std::string& path);
void load_optimizer(torch::optim::Optimizer& optimizer, const std::string& path);

}  // namespace grpo::train
