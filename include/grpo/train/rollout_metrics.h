// Metrics of one step's rollouts and rewards: reward mean/std and per function, accuracy and
// format rate, response lengths and truncation, and the reflection-word frequency that the
// R1-Zero "aha" curves plot. Names are listed in docs/training.md.
#pragma once

#include <string>
#include <vector>

#include "grpo/core/metrics.h"
#include "grpo/reward/pipeline.h"
#include "grpo/rollout/engine.h"

namespace grpo::train {

// Occurrences of `words` in `text` as whole words, case-insensitively ("Wait," counts for
// "wait"; "awaiting" does not). Words may contain '-' ("re-evaluate", "double-check").
int count_reflection_words(const std::string& text, const std::vector<std::string>& words);

// Adds reward/*, accuracy, format_rate, response_length/*, reflection/* to `metrics`.
// `accuracy` is the share of completions scoring >= 1 on the first correctness reward in the
// pipeline (math_boxed, countdown or code_tests); `format_rate` likewise for
// format_think_answer. Absent functions leave the metric out. With a correctness reward also
// response_length/correct_mean and /incorrect_mean, and reflection/accuracy_with and
// /accuracy_without (completions with and without a reflection word); each only when its
// split holds a completion.
void add_rollout_metrics(metrics::StepMetrics& metrics,
                         const std::vector<rollout::Rollout>& rollouts,
                         const std::vector<reward::ScoredSample>& scores,
                         const reward::RewardPipeline& pipeline,
                         const std::vector<std::string>& reflection_words);

}  // namespace grpo::train
