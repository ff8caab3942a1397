// Reward pipeline: registry by name with typed options (and config errors), weighted sums with
// every component kept, parallel scoring equal to serial, and the external reward process
// (JSON lines protocol, malformed output, failures, timeouts that kill the process group).
#include <gtest/gtest.h>

#include "grpo/core/config_node.h"
#include "grpo/core/error.h"
#include "grpo/reward/external_reward.h"
#include "grpo/reward/pipeline.h"

namespace grpo::reward {
namespace {

config::RewardConfig parse_reward(const std::string& yaml) {
  config::Node root = config::parse_yaml(yaml, "test.yaml");
  config::RewardConfig rc;
  config::bind(*root.get("reward"), rc, "reward");
  return rc;
}

Sample sample(const std::string& completion, const std::string& answer) {
  Sample s;
  s.completion = completion;
  s.answer = answer;
  return s;
}

TEST(Pipeline, WeightedSumWithComponents) {
  auto rc = parse_reward(
      "reward:\n  functions:\n"
      "    - {name: math_boxed, weight: 1.0}\n"
      "    - {name: format_think_answer, weight: 0.5, options: {mode: tag_count}}\n");
  RewardPipeline p(rc, 2);
  ASSERT_EQ(p.entries().size(), 2u);
  auto out = p.score({sample("<think>x</think><answer>\\boxed{4}</answer>", "4"),
                      sample("<think>x</think> \\boxed{5}", "4")});
  EXPECT_DOUBLE_EQ(out[0].reward, 1.0 + 0.5 * 1.0);
  EXPECT_DOUBLE_EQ(out[0].components[0], 1.0);
  EXPECT_DOUBLE_EQ(out[1].reward, 0.0 + 0.5 * 0.5);
  EXPECT_EQ(out[1].details[0]["extracted"], "5");
}

TEST(Pipeline, ParallelEqualsSerial) {
  auto rc = parse_reward("reward:\n  functions:\n    - {name: math_boxed}\n");
  std::vector<Sample> batch;
  for (int i = 0; i < 101; ++i) {
    batch.push_back(sample("\\boxed{" + std::to_string(i % 7) + "}", std::to_string(i % 5)));
  }
  auto serial = RewardPipeline(rc, 1).score(batch);
  auto parallel = RewardPipeline(rc, 4).score(batch);
  for (size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ(serial[i].reward, parallel[i].reward) << i;
    EXPECT_EQ(serial[i].reward, (i % 7) == (i % 5) ? 1.0 : 0.0) << i;
  }
}

TEST(Pipeline, ConfigErrorsNameTheKey) {
  try {
    RewardPipeline p(parse_reward("reward:\n  functions:\n    - {name: math_boxd}\n"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::config);
    EXPECT_NE(std::string(e.what()).find("did you mean 'math_boxed'"), std::string::npos);
  }
  try {
    RewardPipeline p(parse_reward(
        "reward:\n  functions:\n    - name: math_boxed\n      options: {percent: half}\n"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("reward.functions[0].options.percent"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(RewardPipeline(parse_reward("reward:\n  functions: []\n")), Error);
}

TEST(Pipeline, DuplicateNamesGetSuffixes) {
  auto rc = parse_reward(
      "reward:\n  functions:\n    - {name: format_think_answer}\n"
      "    - {name: format_think_answer, options: {mode: lenient}}\n");
  RewardPipeline p(rc, 1);
  EXPECT_EQ(p.entries()[0].name, "format_think_answer");
  EXPECT_EQ(p.entries()[1].name, "format_think_answer_2");
}

ExternalReward external(const std::string& command, double timeout_s = 10.0) {
  ExternalOptions o;
  o.command = command;
  o.timeout_s = timeout_s;
  return ExternalReward(o);
}

TEST(External, JsonLinesProtocol) {
  // The completion's length as the score, and a detail, computed by python3.
  auto r = external(
      "python3 -c 'import sys,json\n"
      "for l in sys.stdin:\n"
      "  d=json.loads(l); print(json.dumps({\"score\": len(d[\"completion\"]), \"a\": "
      "d[\"answer\"]}))'");
  auto out = r.score_batch({sample("abc", "x"), sample("hello", "y")});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].score, 3.0);
  EXPECT_EQ(out[1].score, 5.0);
  EXPECT_EQ(out[1].details["a"], "y");
  EXPECT_EQ(external("while read l; do echo 0.5; done").score(sample("a", "b")).score, 0.5);
}

TEST(External, BadOutputAndFailuresAreErrors) {
  EXPECT_THROW(external("cat > /dev/null; echo nope").score(sample("a", "b")), Error);
  EXPECT_THROW(external("cat > /dev/null; echo 1; echo 2").score(sample("a", "b")), Error);
  EXPECT_THROW(external("cat > /dev/null; exit 3").score(sample("a", "b")), Error);
  EXPECT_THROW(external("exit 0").score(sample("a", "b")), Error);  // no lines, stdin unread
}

TEST(External, TimeoutKillsTheGroup) {
  try {
    external("sleep 30 & sleep 30", 0.5).score(sample("a", "b"));
    FAIL() << "expected a timeout";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
  }
  // The background sleep holds stdout open too: returning at all means the group was killed.
}

TEST(External, LargeBatchDoesNotDeadlock) {
  // The program answers while input is still arriving; 20000 lines overflow both pipe buffers.
  std::vector<Sample> batch(20000, sample("x", "1"));
  auto r = external("python3 -c 'import sys\nfor l in sys.stdin: print(1)'");
  auto out = r.score_batch(batch);
  EXPECT_EQ(out.size(), batch.size());
}

// The countdown verifier by name, with its options; each score and verdict is worked out by hand
// from the problem: numbers 3, 5, 7 and target 22 (3 * 5 + 7).
TEST(Pipeline, CountdownByName) {
  auto rc = parse_reward(
      "reward:\n  functions:\n"
      "    - {name: countdown, options: {format_score: 0.1}}\n"
      "    - {name: countdown, options: {use_all_numbers: true}}\n");
  RewardPipeline p(rc, 1);
  ASSERT_EQ(p.entries().size(), 2u);
  EXPECT_EQ(p.entries()[1].name, "countdown_2");
  EXPECT_TRUE(is_correctness_reward("countdown"));
  const std::string spec = "{\"numbers\":[3,5,7],\"target\":22}";
  auto out = p.score(
      {sample("<think> 3 * 5 = 15. 15 + 7 = 22. </think> <answer> 3 * 5 + 7 </answer>", spec),
       sample("<answer> 5 * 7 - 3 * 5 </answer>", spec),  // 35 - 15 = 20, 5 twice
       sample("<answer> 5 * 7 - 13 </answer>", spec),     // 13 is not given
       sample("<answer> 3 * 7 </answer>", spec),          // 21
       sample("3 * 5 + 7", spec),                         // no answer block
       sample("<answer> 7 + 5 * 3 = 22 </answer>", spec)});
  EXPECT_DOUBLE_EQ(out[0].components[0], 1.0);
  EXPECT_DOUBLE_EQ(out[0].components[1], 1.0);
  EXPECT_EQ(out[0].details[0]["verdict"], "correct");
  EXPECT_DOUBLE_EQ(out[1].components[0], 0.1);
  EXPECT_EQ(out[1].details[0]["verdict"], "number_reuse");
  EXPECT_DOUBLE_EQ(out[2].components[0], 0.1);
  EXPECT_EQ(out[2].details[0]["verdict"], "unknown_number");
  EXPECT_DOUBLE_EQ(out[3].components[0], 0.1);  // at most once: a miss, not a misuse
  EXPECT_EQ(out[3].details[0]["verdict"], "wrong_value");
  EXPECT_DOUBLE_EQ(out[3].components[1], 0.0);  // exactly once: 5 unused
  EXPECT_EQ(out[3].details[1]["verdict"], "unused_number");
  EXPECT_DOUBLE_EQ(out[4].components[0], 0.0);
  EXPECT_EQ(out[4].details[0]["verdict"], "no_answer");
  EXPECT_DOUBLE_EQ(out[5].reward, 2.0);
  // A gold answer that is not a countdown spec is a data error, not a zero score.
  EXPECT_THROW(p.score({sample("<answer> 1 + 2 </answer>", "22")}), Error);
}

}  // namespace
}  // namespace grpo::reward
