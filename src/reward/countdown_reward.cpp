// The `countdown` reward: wraps data::score_countdown (see countdown_reward.h).
#include "grpo/reward/countdown_reward.h"

namespace grpo::reward {

RewardResult CountdownReward::score(const Sample& sample) const {
  const data::CountdownVerdict v =
      data::score_countdown(sample.completion, sample.answer, options_);
  RewardResult r;
  r.score = v.score;
  r.details["verdict"] = v.verdict;
  if (!v.detail.empty()) r.details["detail"] = v.detail;
  return r;
}

}  // namespace grpo::reward
