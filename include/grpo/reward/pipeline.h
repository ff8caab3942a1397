// The reward pipeline: the config's list of reward functions, looked up by name, each scored on
// every sample (in parallel), summed with their weights. Every component is kept for metrics.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "grpo/core/config/reward.h"
#include "grpo/reward/reward_function.h"

namespace grpo::reward {

// Names `make_reward` knows, for error messages and docs.
const std::vector<std::string>& reward_names();

// True for the functions whose score means "the answer is right" (math_boxed, countdown,
// code_tests): the `accuracy` metric and `grpo eval`'s pass criterion use the first of them.
bool is_correctness_reward(const std::string& name);

// Builds reward `name` with its options bound from `options` (errors name `path`, e.g.
// "reward.functions[0].options"). Throws a config error for an unknown name or bad option.
std::unique_ptr<RewardFunction> make_reward(const std::string& name, const config::Node& options,
                                            const std::string& path);

struct ScoredSample {
  double reward = 0.0;                  // sum of weight * component
  std::vector<double> components;       // per function, in pipeline order (unweighted)
  std::vector<nlohmann::json> details;  // per function
};

class RewardPipeline {
 public:
  struct Entry {
    std::string name;  // unique within the pipeline ("external_2" for a second "external")
    double weight = 1.0;
    std::shared_ptr<const RewardFunction> function;
  };

  // `threads` = 0: one per hardware thread.
  explicit RewardPipeline(const config::RewardConfig& config, int threads = 0);
  RewardPipeline(std::vector<Entry> entries, int threads = 0);

  const std::vector<Entry>& entries() const { return entries_; }
  std::vector<ScoredSample> score(const std::vector<Sample>& samples) const;

 private:
  std::vector<Entry> entries_;
  int threads_;
};

}  // namespace grpo::reward
