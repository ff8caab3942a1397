// Held-out validation during `grpo train` and `grpo sft` (the `validation:` section,
// docs/training.md): the policy samples n completions per item, the run's reward pipeline
// scores them, and the figures of `grpo eval` (pass@k, cons@n, rewards, lengths) become val/*
// metrics. With several sources (files, synthetic tasks) each also gets its own figures,
// val/<source>/<figure>. Data-parallel ranks each take a contiguous share of the items and add
// their sums, so the figures do not depend on the number of ranks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "grpo/core/config.h"
#include "grpo/core/metrics.h"
#include "grpo/model/modules.h"
#include "grpo/reward/pipeline.h"
#include "grpo/text/template.h"
#include "grpo/text/tokenizer.h"
#include "grpo/train/data_parallel.h"
#include "grpo/train/eval.h"

namespace grpo::train {

class Validator {
 public:
  // Loads, renders and tokenizes every item now, so that a bad file, a prompt over
  // data.max_prompt_tokens or a pipeline without the pass reward fails before training starts.
  // The references must outlive the validator.
  Validator(const config::Config& config, const text::Tokenizer& tokenizer,
            const text::PromptTemplate& prompt_template, const reward::RewardPipeline& pipeline,
            DataParallel& dp);

  size_t items() const { return total_items_; }
  // The sources' names, in order: a file's name without .jsonl, a synthetic task's name, with
  // _2, _3, ... after a name already taken.
  const std::vector<std::string>& sources() const { return source_names_; }
  // Whether to validate once `steps_done` steps are done: every validation.every steps and
  // after the last one (`last`).
  bool due(int64_t steps_done, bool last) const;
  // Samples and scores this rank's items with `policy` (every rank calls it; the sums are
  // added over the ranks) and sets val/<figure> and time/validation in `m`. With
  // validation.save_items, writes the items' results to <run_dir>/validation/step_NNNNNN.jsonl
  // (.rankR.jsonl per rank in a distributed run).
  void run(model::CausalLM policy, int64_t steps_done, const std::string& run_dir,
           metrics::StepMetrics& m);

 private:
  const config::Config& config_;
  const text::Tokenizer& tokenizer_;
  const text::PromptTemplate& template_;
  const reward::RewardPipeline& pipeline_;
  DataParallel& dp_;
  std::vector<EvalItem> shard_;  // this rank's items
  int64_t shard_begin_ = 0;      // index of shard_[0] among all items
  size_t total_items_ = 0;
  std::vector<std::string> source_names_;
  std::vector<size_t> shard_source_;  // the source of each of shard_'s items
};

}  // namespace grpo::train
