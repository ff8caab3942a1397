// Supervised fine-tuning (`grpo sft`, docs/training.md): next-token cross-entropy on JSONL
// records, prompt + response (only response tokens count, unless sft.loss_on_prompt) or plain
// text, with the GRPO run's optimizer, schedule, checkpoints, resume and metric sinks. Also the
// `model.init: sft` stage: a run whose base model is the output of an SFT config trains that
// stage first, or reuses it when it is already there with the same config.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "grpo/core/config.h"
#include "grpo/data/prompt_dataset.h"
#include "grpo/model/modules.h"
#include "grpo/text/template.h"
#include "grpo/text/tokenizer.h"
#include "grpo/train/grpo_trainer.h"

namespace grpo::train {

class StopSignal;

// One tokenized example: the prompt's tokens, then the target's.
struct SftExample {
  std::vector<int32_t> ids;
  int64_t prompt_tokens = 0;  // leading ids left out of the loss (0: every id after the first)
  bool truncated = false;     // cut at the maximum length
};

// prompt_response: the templated prompt and the response (+ eos) are encoded separately and
// concatenated, as at rollout time, where the completion continues the encoded prompt; the
// prompt's tokens count only with sft.loss_on_prompt. text: the text (+ eos), every token
// counts. Longer than max_len: the tail is cut. Records without a response are an error.
SftExample encode_sft_example(const data::PromptRecord& record, const config::SftConfig& sft,
                              const text::Tokenizer& tokenizer,
                              const text::PromptTemplate& prompt_template, int64_t max_len);

struct SftBatch {
  at::Tensor input_ids;       // (N, L) int64, right-padded with 0
  at::Tensor attention_mask;  // (N, L) int64: 1 on real tokens
  // Targets are input_ids[:, 1:]; position t is predicted by logits[:, t].
  at::Tensor loss_mask;  // (N, L-1) float32: 1 where the target counts
};
SftBatch make_sft_batch(const std::vector<SftExample>& examples);

struct SftLoss {
  at::Tensor loss_sum;  // () float32: cross-entropy summed over the counted targets (autograd)
  double tokens = 0;    // counted targets
  double correct = 0;   // counted targets whose logit is the largest (ties count)
};
// One forward of `model` over `batch`.
SftLoss sft_loss(model::CausalLM& model, const SftBatch& batch);

// Optimizer steps of the run: ceil(sft.epochs * examples / sft.batch_size) when sft.epochs > 0,
// else trainer.steps.
int64_t sft_steps(const config::Config& config, size_t examples);

// Trains `config` (model.init must be resolved: pretrained or random, see prepare_base_model)
// and writes metrics.jsonl and checkpoints/ into options.run_dir (docs/training.md).
TrainSummary run_sft(const config::Config& config, const TrainOptions& options,
                     const StopSignal* stop = nullptr);

// model.init sft: loads model.sft_config, then reuses the stage's final checkpoint in
// model.sft_run_dir (default <run_dir>/sft) when it was written with the same config hash and
// finished, or trains it there (continuing an unfinished stage); a finished stage with another
// hash is a config error. Sets config.model.path to the stage's final policy folder (the
// tokenizer folder too when tokenizer.path is empty). Stages may chain; a cycle is an error.
// Any other init is left as it is. False when `stop` ended the stage early (rerun to continue).
// `ranks`: the ranks' process group when several processes call this together (grpo launch);
// they then train an unfinished stage together (data-parallel grpo sft) and all return its
// final checkpoint. Null: one process.
bool prepare_base_model(config::Config& config, const std::string& run_dir,
                        const StopSignal* stop = nullptr, DataParallel* ranks = nullptr);

}  // namespace grpo::train
