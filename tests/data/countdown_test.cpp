// The countdown verifier on hand-checked answers, and the generator's instances verified by it.
#include "grpo/data/countdown.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "grpo/core/error.h"
#include "grpo/data/expression.h"

namespace grpo::data {
namespace {

const CountdownProblem k3_5_7{{3, 5, 7}, 22};

std::string verdict_of(const std::string& expr, const CountdownProblem& p = k3_5_7,
                       CountdownOptions o = {}) {
  return check_countdown(expr, p, o).verdict;
}

TEST(CountdownVerifier, HandCheckedAnswers) {
  EXPECT_EQ(verdict_of("5 * 3 + 7"), "correct");  // 15 + 7
  EXPECT_EQ(verdict_of("7 + 3 * 5"), "correct");
  EXPECT_EQ(verdict_of("(7 + 5) * 3"), "wrong_value");   // 36
  EXPECT_EQ(verdict_of("3 * 7 + 1"), "unknown_number");  // 1 is not given
  EXPECT_EQ(verdict_of("6 + 3 + 5 + 7 + 1"), "unknown_number");
  EXPECT_EQ(verdict_of("7 + 7 + 5 + 3"), "number_reuse");  // 22, but 7 twice
  EXPECT_EQ(verdict_of("5 * 3 + 7 = 22"), "correct");      // a trailing "= target" is allowed
  EXPECT_EQ(verdict_of("5 * 3 + 7 = 23"), "wrong_value");  // ... and must be the target
  EXPECT_EQ(verdict_of("5 * 3 + 7 = 15 + 7"), "wrong_value");
  EXPECT_EQ(verdict_of("5 * (3 + 7"), "parse_error");
  EXPECT_EQ(verdict_of("5 * 3 + 7;"), "parse_error");
  EXPECT_EQ(verdict_of("   "), "no_answer");
  EXPECT_EQ(verdict_of("7 / (5 - 5)", {{5, 5, 7}, 22}), "division_by_zero");
  // Repeated numbers in the problem may each be used once.
  EXPECT_EQ(verdict_of("5 + 5 + 7 * 2", {{5, 5, 7, 2}, 24}), "correct");
  EXPECT_EQ(verdict_of("5 + 5 + 5 + 7 + 2", {{5, 5, 7, 2}, 24}), "number_reuse");
}

TEST(CountdownVerifier, NonWholeIntermediatesAreAnOption) {
  const CountdownProblem p{{1, 3, 4, 6}, 24};
  EXPECT_EQ(verdict_of("6 / (1 - 3 / 4)", p), "correct");  // 6 / (1/4)
  CountdownOptions whole;
  whole.integer_intermediates = true;
  EXPECT_EQ(verdict_of("6 / (1 - 3 / 4)", p, whole), "non_integer_intermediate");
  EXPECT_EQ(verdict_of("6 * 4 * (3 - 1) / 2", {{6, 4, 3, 1, 2}, 24}, whole), "correct");
}

TEST(CountdownVerifier, UseAllNumbersIsAnOption) {
  const CountdownProblem p{{3, 5, 7, 2}, 22};
  EXPECT_EQ(verdict_of("5 * 3 + 7", p), "correct");
  CountdownOptions all;
  all.use_all_numbers = true;
  EXPECT_EQ(verdict_of("5 * 3 + 7", p, all), "unused_number");
  EXPECT_EQ(verdict_of("(5 * 3 + 7) * (2 - 1)", {{3, 5, 7, 2, 1}, 22}, all), "correct");
}

TEST(CountdownVerifier, ScoresCompletionsByTheirLastAnswerBlock) {
  const std::string spec = k3_5_7.spec();
  EXPECT_EQ(spec, "{\"numbers\":[3,5,7],\"target\":22}");
  CountdownOptions o;
  EXPECT_EQ(
      score_countdown("<think> 5*3=15, 15+7=22 </think> <answer> 5*3+7 </answer>", spec, o).score,
      1.0);
  EXPECT_EQ(score_countdown("<answer>3+5</answer> wait <answer>(5*3)+7</answer>", spec, o).score,
            1.0);
  EXPECT_EQ(score_countdown("<answer>(5*3)+7</answer> wait <answer>3+5</answer>", spec, o).score,
            0.0);
  auto untagged = score_countdown("5*3+7", spec, o);
  EXPECT_EQ(untagged.verdict, "no_answer");
  EXPECT_EQ(untagged.score, 0.0);
  o.require_answer_tags = false;
  EXPECT_EQ(score_countdown("5*3+7", spec, o).score, 1.0);

  // format_score rewards a parsed miss, never an unparsable answer.
  CountdownOptions partial;
  partial.format_score = 0.1;
  EXPECT_EQ(score_countdown("<answer>3+5+7</answer>", spec, partial).score, 0.1);
  EXPECT_EQ(score_countdown("<answer>3+5+</answer>", spec, partial).score, 0.0);
  EXPECT_EQ(score_countdown("no answer here", spec, partial).score, 0.0);
}

TEST(CountdownVerifier, MalformedSpecIsADataError) {
  EXPECT_THROW(score_countdown("<answer>1</answer>", "22", {}), grpo::Error);
  EXPECT_THROW(CountdownProblem::parse_spec("{\"numbers\":[],\"target\":3}"), grpo::Error);
  EXPECT_THROW(CountdownProblem::parse_spec("{\"numbers\":[1.5],\"target\":3}"), grpo::Error);
  try {
    CountdownProblem::parse_spec("{\"numbers\":[1]}", "data.jsonl:4");
    FAIL();
  } catch (const grpo::Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("data.jsonl:4: ", 0), 0u) << e.what();
  }
  auto p = CountdownProblem::parse_spec("{\"numbers\":[25, 3],\"target\":75}");
  EXPECT_EQ(p.numbers, (std::vector<int64_t>{25, 3}));
  EXPECT_EQ(p.target, 75);
}

TEST(CountdownGenerator, EveryInstanceIsSolvedByItsHiddenSolution) {
  for (Difficulty d : {Difficulty::easy, Difficulty::medium, Difficulty::hard}) {
    const CountdownTaskOptions o = countdown_preset(d);
    CountdownOptions strict;
    strict.use_all_numbers = true;  // the presets build solutions over every number
    strict.integer_intermediates = true;
    for (uint64_t i = 0; i < 200; ++i) {
      const TaskItem item = make_countdown(o, 7, i);
      const auto p = CountdownProblem::parse_spec(item.answer);
      ASSERT_EQ(p.numbers.size(), static_cast<size_t>(o.count));
      for (int64_t n : p.numbers) {
        EXPECT_GE(n, o.min_number);
        EXPECT_LE(n, o.max_number);
      }
      EXPECT_GE(p.target, 1);
      EXPECT_LE(p.target, o.max_target);
      EXPECT_EQ(std::count(p.numbers.begin(), p.numbers.end(), p.target), 0);
      const std::string solution = item.extra["solution"];
      EXPECT_EQ(check_countdown(solution, p, strict).verdict, "correct") << solution;
      // The worked solution's answer block is that expression.
      EXPECT_EQ(score_countdown(item.response, item.answer, strict).verdict, "correct")
          << item.response;
    }
  }
}

TEST(CountdownGenerator, SubsetInstancesNeedNotUseEveryNumber) {
  CountdownTaskOptions o;
  o.use_all = false;
  size_t partial = 0;
  for (uint64_t i = 0; i < 100; ++i) {
    const TaskItem item = make_countdown(o, 1, i);
    const auto p = CountdownProblem::parse_spec(item.answer);
    const auto e = evaluate(item.extra["solution"].get<std::string>());
    partial += e.numbers.size() < p.numbers.size() ? 1 : 0;
    EXPECT_EQ(check_countdown(item.extra["solution"].get<std::string>(), p, {}).verdict, "correct");
  }
  EXPECT_GT(partial, 10u);
}

TEST(CountdownGenerator, ImpossibleKnobsFailClearly) {
  CountdownTaskOptions o;
  o.min_number = 1;
  o.max_number = 1;
  o.count = 2;
  o.max_target = 1;  // 1+1, 1*1, 1-1, 1/1 never reach a target in [1,1] other than a given number
  EXPECT_THROW(make_countdown(o, 0, 0), grpo::Error);
}

}  // namespace
}  // namespace grpo::data
