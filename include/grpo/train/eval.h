// Evaluation of a policy on a benchmark file: K sampled completions per item with the rollout
// engine, scored by the reward pipeline, summarised as pass@1 (mean over the K samples), pass@k
// (the unbiased estimator of Chen et al. 2021) and cons@K (majority vote on the extracted
// answers). `grpo eval` is the command line; docs/evaluation.md describes the figures.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "grpo/core/config/eval_suite.h"
#include "grpo/data/answer_text.h"
#include "grpo/model/modules.h"
#include "grpo/reward/answer_vote.h"
#include "grpo/reward/pipeline.h"
#include "grpo/rollout/engine.h"
#include "grpo/text/template.h"
#include "grpo/text/tokenizer.h"

namespace grpo::train {

// pass@k for one item with c correct of n samples: 1 - C(n-c, k) / C(n, k), the probability that
// k samples drawn without replacement from the n contain a correct one. 0 <= c <= n, 1 <= k <= n.
double pass_at_k(int64_t n, int64_t c, int64_t k);
// The k reported for n samples: 1, 2, 4, ... (powers of two below n) and n.
std::vector<int64_t> pass_ks(int64_t n);

// The gold answer text of a benchmark field (grpo/data/answer_text.h), as training reads it.
using data::gold_answer_text;

struct EvalFields {
  std::string prompt = "prompt";
  std::string answer = "answer";  // "": no gold answer
  std::string tests = "tests";    // "": none (code_tests)
  std::string id;                 // copied into the per-item results when set
  // When not empty: the tests are an object built from these fields, key -> the record's field
  // (HumanEval: prefix <- prompt, check <- test, entry_point <- entry_point); `tests` is unused.
  std::map<std::string, std::string> tests_from;
};

// A suite benchmark's field names (grpo/core/config/eval_suite.h).
EvalFields eval_fields(const config::SuiteBenchmark& benchmark);

struct EvalItem {
  size_t index = 0;  // position in the file (0-based, blank lines not counted)
  std::string prompt;
  std::string answer;
  nlohmann::json tests;  // null when absent
  nlohmann::json id;     // null when EvalFields::id is empty
};

// Reads the first `limit` items (0: all) of a JSONL file; errors name file:line and the field.
std::vector<EvalItem> load_eval_items(const std::string& path, const EvalFields& fields,
                                      size_t limit = 0);

struct EvalOptions {
  int64_t n = 1;  // samples per item (K)
  rollout::SamplingParams sampling;
  rollout::EngineOptions engine;
  // Items sampled per engine call. Item i draws the random numbers of prompt index i under
  // sampling.seed whatever the batching, so the samples depend on the seed, not on this size.
  int64_t items_per_batch = 64;
  // The reward whose score >= 1 marks a sample correct; "": the first of math_boxed, countdown,
  // code_tests in the pipeline.
  std::string pass_reward;
  bool log_progress = true;  // a log line per batch of items
};

// Index in `pipeline`'s entries of the reward that marks a sample correct: the entry named
// `pass_reward`, or for "" the first correctness reward (math_boxed, countdown, code_tests).
// Throws a usage error naming the pipeline's rewards when there is none.
size_t pass_reward_entry(const reward::RewardPipeline& pipeline, const std::string& pass_reward);

struct EvalSample {
  std::string completion;
  rollout::FinishReason finish_reason = rollout::FinishReason::length;
  int64_t tokens = 0;
  reward::ScoredSample score;
  bool correct = false;
  std::optional<std::string> extracted;  // the math_boxed answer, when the pipeline has one
};

struct EvalItemResult {
  std::vector<EvalSample> samples;
  int64_t correct = 0;
  reward::VoteResult vote;  // over `extracted`; winner -1 without math_boxed or answers
  bool vote_correct = false;
};

// Running means over items: pass@k for each k of pass_ks(n), cons@n, reward and lengths.
class EvalSummary {
 public:
  EvalSummary(int64_t n, std::vector<std::string> reward_names, bool has_vote);
  void add(const EvalItemResult& item);
  int64_t items() const { return items_; }
  double pass_at(int64_t k) const;  // mean over items so far
  double cons() const;
  // {"items", "n", "pass@1", "pass@2", ..., "cons@n" (with a vote), "reward/mean",
  //  "reward/<name>/mean", "response_length/mean", "truncated_fraction"}
  nlohmann::json to_json() const;
  // The running sums behind the figures (items, pass@k, cons, rewards, lengths), so that the
  // summaries of several processes add up: set_sums(element-wise sum of every sums()).
  std::vector<double> sums() const;
  void set_sums(const std::vector<double>& sums);

 private:
  int64_t n_;
  std::vector<std::string> reward_names_;
  bool has_vote_;
  int64_t items_ = 0;
  std::map<int64_t, double> pass_sums_;
  double cons_hits_ = 0, reward_sum_ = 0, length_sum_ = 0, truncated_ = 0;
  std::vector<double> component_sums_;
};

// Rejection sampling (the R1 pipeline's third stage): which of an item's samples become SFT
// examples. A kept sample is correct (the pass reward >= 1), finished on its own (eos or a stop
// string, not cut at the token limit), scores >= 1 on every pipeline entry in `required`
// (e.g. format_think_answer, language_consistency) and differs from the samples kept before it.
struct KeepRule {
  std::vector<size_t> required;  // indices into the pipeline's entries
  int64_t max_per_item = 0;      // at most this many per item, in sample order; 0: all
};
// Indices of the kept samples, in sample order.
std::vector<size_t> kept_samples(const EvalItemResult& result, const KeepRule& rule);

class Evaluator {
 public:
  // `model`, `tokenizer` and `pipeline` must outlive the evaluator.
  Evaluator(model::CausalLM model, const text::Tokenizer& tokenizer,
            const text::PromptTemplate& prompt_template, const reward::RewardPipeline& pipeline,
            EvalOptions options);

  const EvalOptions& options() const { return options_; }
  // Index of the pass reward in the pipeline's entries.
  size_t pass_entry() const { return pass_entry_; }
  // Whether cons@n is computed (the pipeline has math_boxed).
  bool has_vote() const { return math_entry_.has_value(); }
  // An empty summary of this evaluation's figures (n, the pipeline's rewards, cons@n or not),
  // as run() starts from: for summaries of subsets of the items.
  EvalSummary new_summary() const;

  // Samples, scores and summarises every item; `on_item` sees each item's result in order as
  // its batch finishes (to stream the per-item JSONL).
  // Item i (0-based in `items`) draws the random numbers of prompt index
  // options.sampling.first_prompt_index + i: a shard of a larger set passes its offset.
  EvalSummary run(const std::vector<EvalItem>& items,
                  const std::function<void(const EvalItem&, const EvalItemResult&)>& on_item);

  // One item's JSONL record: index, id, prompt, answer, n, correct, pass@1, cons (answer, votes,
  // correct) and samples (completion, finish_reason, completion_tokens, reward, rewards,
  // correct, extracted).
  nlohmann::json item_json(const EvalItem& item, const EvalItemResult& result) const;

 private:
  EvalItemResult score_item(std::vector<EvalSample> samples) const;

  model::CausalLM model_;
  const text::Tokenizer& tokenizer_;
  const text::PromptTemplate& template_;
  const reward::RewardPipeline& pipeline_;
  EvalOptions options_;
  size_t pass_entry_ = 0;
  std::optional<size_t> math_entry_;
};

}  // namespace grpo::train
