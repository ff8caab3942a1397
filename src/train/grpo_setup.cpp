// The setup of a `grpo train` run before resume: the rank's device and process group, tokenizer,
// template, data (every prompt's length checked), rewards, validation, policy and reference.
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "grpo/algo/batch_plan.h"
#include "grpo/core/log.h"
#include "grpo/data/prompt_dataset.h"
#include "grpo/model/checkpoint.h"
#include "grpo/train/data_parallel.h"
#include "grpo/train/device.h"
#include "grpo_run.h"

namespace grpo::train::detail {
namespace {

namespace fs = std::filesystem;

// Every prompt rendered and tokenized once before the first step: one over data.max_prompt_tokens
// is an error now (naming it and how many more there are), not at the step that draws it, or,
// with data.drop_overlong_prompts, the dataset goes on without them.
void check_prompt_lengths(Run& run) {
  const auto& data = run.config.data;
  const auto& dataset = *run.dataset;
  std::vector<size_t> over;
  size_t longest = 0;
  for (size_t i = 0; i < dataset.size(); ++i) {
    const size_t tokens =
        run.tokenizer->encode(run.prompt_template->render(dataset.record(i).prompt)).size();
    longest = std::max(longest, tokens);
    if (static_cast<int64_t>(tokens) > data.max_prompt_tokens) over.push_back(i);
  }
  if (run.dp->is_main()) {
    log::info(dataset.size(), " prompts, the longest rendered one ", longest,
              " tokens (data.max_prompt_tokens = ", data.max_prompt_tokens, ")");
  }
  if (over.empty()) return;
  const auto& first = dataset.record(over.front());
  const std::string where = first.source_file + ":" + std::to_string(first.source_line);
  GRPO_CHECK_KIND(config, data.drop_overlong_prompts, over.size(), " of ", dataset.size(),
                  " prompts render to more than data.max_prompt_tokens = ", data.max_prompt_tokens,
                  " tokens (the first: ", where,
                  "); raise the limit, or set data.drop_overlong_prompts: true to leave them out");
  GRPO_CHECK_KIND(config, over.size() < dataset.size(), "every one of the ", dataset.size(),
                  " prompts renders to more than data.max_prompt_tokens = ", data.max_prompt_tokens,
                  " tokens");
  std::vector<data::PromptRecord> kept;
  size_t next = 0;
  for (size_t i = 0; i < dataset.size(); ++i) {
    if (next < over.size() && over[next] == i) {
      ++next;
    } else {
      kept.push_back(dataset.record(i));
    }
  }
  if (run.dp->is_main()) {
    log::warn("data.drop_overlong_prompts: left out ", over.size(), " of ", dataset.size(),
              " prompts over ", data.max_prompt_tokens, " tokens (the first: ", where, ")");
  }
  run.dataset = std::make_unique<data::PromptDataset>(std::move(kept), data.shuffle,
                                                      static_cast<uint64_t>(data.seed));
}

// The engine stops a completion at the model's context: say so at setup rather than let long
// prompts' completions end early as "length" without a word.
void warn_if_over_context(const config::Config& c, int64_t context) {
  if (c.rollout.max_new_tokens >= context) {
    log::warn("rollout.max_new_tokens = ", c.rollout.max_new_tokens,
              " is not below the model's context of ", context,
              " positions: every completion stops where the context ends");
  } else if (c.data.max_prompt_tokens + c.rollout.max_new_tokens > context) {
    log::warn("data.max_prompt_tokens + rollout.max_new_tokens = ",
              c.data.max_prompt_tokens + c.rollout.max_new_tokens,
              " exceeds the model's context of ", context,
              " positions: a completion stops where the context ends, before max_new_tokens "
              "when its prompt is longer than ",
              context - c.rollout.max_new_tokens, " tokens");
  }
}

}  // namespace

void setup(Run& run, const TrainOptions& options) {
  const auto& c = run.config;
  const dist::Env& env = options.dist;
  GRPO_CHECK_KIND(config, !c.data.train_files.empty() || !c.data.synthetic.empty(),
                  "data.train_files and data.synthetic are both empty: grpo train needs prompts");
  GRPO_CHECK_KIND(config, !c.reward.functions.empty(),
                  "reward.functions is empty: grpo train needs at least one reward");
  run.plan = algo::plan_batches(c.trainer.prompts_per_step, c.rollout.n, c.trainer.minibatch_size,
                                c.trainer.micro_batch_size, env.world_size);
  run.device = rank_device(pick_device(c.trainer.device), env);
  run.autocast_dtype = c.trainer.autocast == config::Autocast::bfloat16  ? at::kBFloat16
                       : c.trainer.autocast == config::Autocast::float16 ? at::kHalf
                                                                         : at::kFloat;
  run.dp = &run_data_parallel(options.data_parallel, run.own_dp, c.distributed, env, run.device);
  run.dp->check_config(config::config_hash(c));
  torch::manual_seed(dist::rank_seed(static_cast<uint64_t>(c.trainer.seed), env.rank));
  if (c.trainer.deterministic) at::globalContext().setDeterministicAlgorithms(true, false);

  run.tokenizer_dir = c.tokenizer.path.empty() ? c.model.path : c.tokenizer.path;
  GRPO_CHECK_KIND(config, !run.tokenizer_dir.empty(),
                  "tokenizer.path is required when the model is built from scratch");
  run.tokenizer = text::load_tokenizer(run.tokenizer_dir);
  text::TemplateConfig tc;
  tc.name = c.tokenizer.template_name;
  tc.custom = c.tokenizer.custom_template;
  tc.system = c.tokenizer.system;
  run.prompt_template = std::make_unique<text::PromptTemplate>(tc);
  run.dataset = std::make_unique<data::PromptDataset>(c.data);
  run.rewards = std::make_unique<reward::RewardPipeline>(c.reward, options.reward_threads);
  if (c.validation.enabled()) {
    run.validator =
        std::make_unique<Validator>(c, *run.tokenizer, *run.prompt_template, *run.rewards, *run.dp);
  }
  check_prompt_lengths(run);

  run.policy = model::build_model(c.model, run.tokenizer->vocab_size());
  if (run.dp->is_main()) warn_if_over_context(c, run.policy->arch().max_position_embeddings);
  if (c.algorithm.beta > 0 && c.model.lora.rank == 0) {
    // The frozen reference is the initial policy: rebuilt from the same weights or seed.
    run.reference = model::build_model(c.model, run.tokenizer->vocab_size());
    for (auto& p : run.reference->parameters()) p.set_requires_grad(false);
    run.reference->eval();
  }
  fs::create_directories(options.run_dir);
}

}  // namespace grpo::train::detail
