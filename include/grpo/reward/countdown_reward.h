// The `countdown` reward: the data layer's exact countdown verifier (grpo/data/countdown.h) as
// a reward function. The sample's gold `answer` is the problem spec
// ({"numbers":[...],"target":N}) that `grpo data make --task countdown` and data.synthetic
// write; the completion's last <answer> block is judged against it.
#pragma once

#include <string>

#include "grpo/data/countdown.h"
#include "grpo/reward/reward_function.h"

namespace grpo::reward {

class CountdownReward : public RewardFunction {
 public:
  explicit CountdownReward(data::CountdownOptions options) : options_(options) {}
  const std::string& name() const override { return name_; }
  // Score 1 when correct, options.format_score for a parsed miss, else 0; details carry the
  // verdict ("correct", "wrong_value", ...) and a human-readable detail. A malformed spec is a
  // data error and throws.
  RewardResult score(const Sample& sample) const override;

 private:
  std::string name_ = "countdown";
  data::CountdownOptions options_;
};

}  // namespace grpo::reward
