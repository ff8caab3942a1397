// The interface every rule-based reward implements (math_boxed, format_think_answer,
// code_tests, external, ...). The reward pipeline looks functions up by name, calls them on
// decoded completions and sums the weighted scores. No LibTorch here.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace grpo::reward {

// One completion to score, with the dataset fields the config maps onto it.
struct Sample {
  std::string prompt;      // the rendered prompt text (after the template)
  std::string completion;  // the decoded completion text
  std::string answer;      // gold answer (math), empty when the dataset has none
  nlohmann::json tests;  // code tests: [{"input","output"}...] or {"prefix","check","entry_point"}
};

// The score of one function on one sample plus its details for metrics and `grpo reward`
// output (e.g. {"verdict": "WA", "tests_passed": 2, "tests_total": 5}).
struct RewardResult {
  double score = 0.0;
  nlohmann::json details = nlohmann::json::object();
};

class RewardFunction {
 public:
  virtual ~RewardFunction() = default;
  virtual const std::string& name() const = 0;
  // Must be thread-safe: the pipeline may score samples concurrently.
  virtual RewardResult score(const Sample& sample) const = 0;
  // Functions with their own parallelism (the code sandbox pool) override this.
  virtual std::vector<RewardResult> score_batch(const std::vector<Sample>& samples) const {
    std::vector<RewardResult> out;
    out.reserve(samples.size());
    for (const auto& s : samples) out.push_back(score(s));
    return out;
  }
};

}  // namespace grpo::reward
