// The state of one `grpo train` run between steps, shared by the loop (grpo_trainer.cpp) and
// the update phase (grpo_update.cpp). Internal to src/train.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "grpo/algo/batch_plan.h"
#include "grpo/core/config.h"
#include "grpo/core/metrics.h"
#include "grpo/data/prompt_dataset.h"
#include "grpo/model/modules.h"
#include "grpo/reward/pipeline.h"
#include "grpo/rollout/engine.h"
#include "grpo/text/template.h"
#include "grpo/text/tokenizer.h"
#include "grpo/torch_compat.h"
#include "grpo/train/data_parallel.h"
#include "grpo/train/grpo_trainer.h"
#include "grpo/train/nonfinite_guard.h"
#include "grpo/train/optimizer.h"
#include "grpo/train/train_batch.h"
#include "grpo/train/validation.h"

namespace grpo::train::detail {

// Everything a run holds between steps.
struct Run {
  const config::Config& config;
  at::Device device = at::kCPU;
  std::unique_ptr<text::Tokenizer> tokenizer;
  std::string tokenizer_dir;
  std::unique_ptr<text::PromptTemplate> prompt_template;
  model::CausalLM policy{nullptr};
  model::CausalLM reference{nullptr};  // a frozen copy; with LoRA the policy's adapters go off
  std::unique_ptr<data::PromptDataset> dataset;
  std::unique_ptr<reward::RewardPipeline> rewards;
  std::unique_ptr<rollout::RolloutEngine> engine;
  NamedParameters params;
  std::unique_ptr<Optimizer> optimizer;  // whole or sharded (distributed.shard_optimizer)
  algo::BatchPlan plan;
  double logprob_temperature = 1.0;
  at::ScalarType autocast_dtype = at::kFloat;  // trainer.autocast; kFloat: off
  bool reference_reset = false;                // the reference is no longer the initial policy
  DataParallel* dp = nullptr;                  // identity for one process (docs/distributed.md)
  std::unique_ptr<DataParallel> own_dp;        // when TrainOptions brought none
  std::unique_ptr<Validator> validator;        // the `validation:` section, when it has items

  explicit Run(const config::Config& c) : config(c) {}
};

// trainer.autocast for the run's device, for the guard's lifetime.
inline compat::AutocastGuard autocast(const Run& run) {
  return compat::AutocastGuard(run.device.type(), run.autocast_dtype,
                               run.autocast_dtype != at::kFloat);
}

// Everything before resume (grpo_setup.cpp): device and process group (TrainOptions'
// data_parallel or a new one), tokenizer, template, dataset with every prompt's length checked
// (data.drop_overlong_prompts), rewards, validator, policy and reference; creates the run
// directory.
void setup(Run& run, const TrainOptions& options);

// The update phase of a step (grpo_update.cpp): algorithm.mu passes over the rollout batch, one
// optimizer step per minibatch; sets loss, grad_norm, lr, kl/mean, entropy/mean, ratio/mean,
// clip_frac/*, nonfinite/skipped_steps and shared_prompts in `m`.
void update(Run& run, const TrainBatch& batch, int64_t step, NonFiniteGuard& guard,
            metrics::StepMetrics& m);

}  // namespace grpo::train::detail
