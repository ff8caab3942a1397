// Step metrics from rollouts: the correctness splits of response length and of accuracy by
// reflection words, counted by hand on four completions.
#include "grpo/train/rollout_metrics.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace {

grpo::rollout::Rollout completion(const std::string& text, size_t tokens) {
  grpo::rollout::Rollout r;
  r.text = text;
  r.completion_ids.assign(tokens, 1);
  r.logprobs.assign(tokens, 0.0f);
  r.finish_reason = grpo::rollout::FinishReason::eos;
  return r;
}

grpo::reward::ScoredSample scored(double correct, double format) {
  return {correct + 0.1 * format, {correct, format}, {}};
}

}  // namespace

TEST(RolloutMetrics, LengthAndReflectionSplitsByCorrectness) {
  grpo::config::RewardConfig rc;
  rc.functions.resize(2);
  rc.functions[0].name = "math_boxed";
  rc.functions[1].name = "format_think_answer";
  rc.functions[1].weight = 0.1;
  const grpo::reward::RewardPipeline pipeline(rc, 1);
  // Correct: 10 tokens with "wait", 30 tokens without. Wrong: 20 tokens with "Wait,", 40 without.
  const std::vector<grpo::rollout::Rollout> rollouts = {
      completion("so wait, 5", 10), completion("5", 30), completion("Wait, 7", 20),
      completion("awaiting 7", 40)};
  const std::vector<grpo::reward::ScoredSample> scores = {scored(1, 1), scored(1, 0), scored(0, 1),
                                                          scored(0, 1)};
  grpo::metrics::StepMetrics m(1);
  grpo::train::add_rollout_metrics(m, rollouts, scores, pipeline, {"wait"});
  const auto get = [&](const std::string& key) {
    for (const auto& [k, v] : m.values()) {
      if (k == key) return v;
    }
    ADD_FAILURE() << "no metric " << key;
    return -1.0;
  };
  EXPECT_DOUBLE_EQ(get("accuracy"), 0.5);
  EXPECT_DOUBLE_EQ(get("response_length/mean"), 25.0);
  EXPECT_DOUBLE_EQ(get("response_length/correct_mean"), 20.0);    // (10 + 30) / 2
  EXPECT_DOUBLE_EQ(get("response_length/incorrect_mean"), 30.0);  // (20 + 40) / 2
  EXPECT_DOUBLE_EQ(get("reflection/fraction"), 0.5);              // "awaiting" is not "wait"
  EXPECT_DOUBLE_EQ(get("reflection/accuracy_with"), 0.5);         // 1 of the 2 with "wait"
  EXPECT_DOUBLE_EQ(get("reflection/accuracy_without"), 0.5);
  EXPECT_DOUBLE_EQ(get("format_rate"), 0.75);

  // All correct: the wrong split is left out rather than reported as 0.
  grpo::metrics::StepMetrics all(2);
  grpo::train::add_rollout_metrics(all, {rollouts[0], rollouts[1]}, {scores[0], scores[1]},
                                   pipeline, {"wait"});
  for (const auto& [k, v] : all.values()) EXPECT_NE(k, "response_length/incorrect_mean");
}
