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

namespace grpo::dist {
class ProcessGroup;
}  // namespace grpo::dist

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

// One parameter group's options: config's betas and eps, the learning rate of step 0.
std::unique_ptr<torch::optim::AdamWOptions> adamw_options(const config::TrainerConfig& config,
                                                          double weight_decay);

// The learning rate of 0-based step `step` (the step about to be taken):
//   warm-up (step < W):  lr * (step + 1) / W
//   constant:            lr
//   cosine:              lr * 0.5 * (1 + cos(pi * (step - W) / (steps - W))), reaching 0 at
//                        step == config.steps (steps past the end stay at 0).
double learning_rate(const config::TrainerConfig& config, int64_t step);

// Sets the learning rate of every parameter group.
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

// Zeroes each defined gradient in place (zero_grad of the Optimizer classes).
void zero_gradients(const std::vector<at::Tensor>& params);

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

// What the training loops ask of their optimizer: AdamW as make_adamw builds it, either whole in
// this process or sharded over data-parallel ranks (ShardedAdamW, sharded_adamw.h). Both save
// and load the same file, so a run may resume with the other kind or another world size.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual void set_learning_rate(double lr) = 0;
  // Zeroes the trainable parameters' gradients in place (never sets them to none: under data
  // parallelism they are views of the gradient buckets, dist::GradientReducer).
  virtual void zero_grad() = 0;
  // One AdamW step from the parameters' (summed, clipped) gradients. Sharded: every rank.
  virtual void step() = 0;
  // Checkpoints: gather_for_save() on every rank (a collective when sharded), then save(path) on
  // the rank that writes; load(path) on every rank.
  virtual void gather_for_save() {}
  virtual void save(const std::string& path) = 0;
  virtual void load(const std::string& path) = 0;
  // Bytes of AdamW moments this process holds.
  virtual int64_t state_bytes() const = 0;
};

// The whole optimizer in this process (make_adamw, save_optimizer, load_optimizer).
std::unique_ptr<Optimizer> make_whole_adamw(const NamedParameters& params,
                                            const config::TrainerConfig& config);

}  // namespace grpo::train
