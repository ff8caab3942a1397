// `trainer:` section: steps, batch sizes, optimizer and schedule, device.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "grpo/core/config_bind.h"

namespace grpo::config {

enum class LrSchedule { constant, cosine };
inline const std::vector<std::pair<LrSchedule, std::string>>& enum_names(LrSchedule) {
  static const std::vector<std::pair<LrSchedule, std::string>> k{{LrSchedule::constant, "constant"},
                                                                 {LrSchedule::cosine, "cosine"}};
  return k;
}

enum class Device { automatic, cpu, cuda };
inline const std::vector<std::pair<Device, std::string>>& enum_names(Device) {
  static const std::vector<std::pair<Device, std::string>> k{
      {Device::automatic, "auto"}, {Device::cpu, "cpu"}, {Device::cuda, "cuda"}};
  return k;
}

enum class Autocast { none, bfloat16, float16 };
inline const std::vector<std::pair<Autocast, std::string>>& enum_names(Autocast) {
  static const std::vector<std::pair<Autocast, std::string>> k{
      {Autocast::none, "none"}, {Autocast::bfloat16, "bfloat16"}, {Autocast::float16, "float16"}};
  return k;
}

struct TrainerConfig {
  int steps = 100;
  int prompts_per_step = 8;  // per step across all ranks
  int minibatch_size = 0;    // completions per optimizer step; 0: the whole rollout batch
  int micro_batch_size = 0;  // completions per forward/backward; 0: the minibatch
  // > 0: a micro-batch also holds at most this many tokens, padding included (verl's dynamic
  // batch size): rows are taken longest first while rows x the longest fits.
  int max_tokens_per_micro_batch = 0;
  // The update and reference forwards run each distinct prompt once and let its completions
  // continue it (train::SharedPrompts), where that saves tokens; false: every row runs whole.
  bool share_prompts = true;
  double lr = 1e-6;
  double weight_decay = 0.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_eps = 1e-8;
  int warmup_steps = 0;
  LrSchedule lr_schedule = LrSchedule::constant;
  double max_grad_norm = 1.0;  // 0: no clipping
  int seed = 42;
  Device device = Device::automatic;
  bool deterministic = false;  // bit-reproducible kernels where LibTorch offers them
  // Mixed precision: float32 parameters and optimizer (master weights), compute in this dtype
  // through LibTorch's autocast (sampling, reference and update forwards). Needs
  // model.dtype: float32.
  Autocast autocast = Autocast::none;
  // Steps in a row skipped for a NaN/Inf loss or gradient before the run aborts.
  int max_nonfinite_steps = 3;
  // Activation checkpointing of the policy's training forwards (GRPO update, SFT): each decoder
  // layer keeps only its input and is run again in the backward (CausalLM docs/training.md).
  bool gradient_checkpointing = false;

  template <class V>
  void visit(V& v) {
    v("steps", steps, at_least(1));
    v("prompts_per_step", prompts_per_step, at_least(1));
    v("minibatch_size", minibatch_size, at_least(0));
    v("micro_batch_size", micro_batch_size, at_least(0));
    v("max_tokens_per_micro_batch", max_tokens_per_micro_batch, at_least(0));
    v("share_prompts", share_prompts);
    v("lr", lr, greater_than(0));
    v("weight_decay", weight_decay, at_least(0));
    v("adam_beta1", adam_beta1, in_range(0, 0.999999));
    v("adam_beta2", adam_beta2, in_range(0, 0.999999999));
    v("adam_eps", adam_eps, greater_than(0));
    v("warmup_steps", warmup_steps, at_least(0));
    v("lr_schedule", lr_schedule);
    v("max_grad_norm", max_grad_norm, at_least(0));
    v("seed", seed, at_least(0));
    v("device", device);
    v("deterministic", deterministic);
    v("autocast", autocast);
    v("max_nonfinite_steps", max_nonfinite_steps, at_least(1));
    v("gradient_checkpointing", gradient_checkpointing);
  }
  void check(Checker& c) const {
    c.require(
        micro_batch_size == 0 || minibatch_size == 0 || minibatch_size % micro_batch_size == 0,
        "micro_batch_size", "must divide minibatch_size (" + std::to_string(minibatch_size) + ")");
  }
};

}  // namespace grpo::config
