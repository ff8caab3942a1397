// Arithmetic and equation generators: answers checked by re-evaluating the prompt's text,
// determinism per seed, presets/overrides, and the shape of the worked solutions.
#include "grpo/data/tasks.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <regex>
#include <set>

#include "grpo/core/error.h"
#include "grpo/data/expression.h"

namespace grpo::data {
namespace {

// The expression between "Calculate " and the final ".".
std::string arithmetic_expression(const std::string& prompt) {
  EXPECT_EQ(prompt.rfind("Calculate ", 0), 0u) << prompt;
  return prompt.substr(10, prompt.size() - 11);
}

TEST(ArithmeticTask, AnswerIsTheValueOfThePromptExpression) {
  for (Difficulty d : {Difficulty::easy, Difficulty::medium, Difficulty::hard}) {
    const ArithmeticTaskOptions o = arithmetic_preset(d);
    for (uint64_t i = 0; i < 200; ++i) {
      const TaskItem item = make_arithmetic(o, 11, i);
      const auto e = evaluate(arithmetic_expression(item.prompt));
      ASSERT_TRUE(e.ok) << item.prompt << ": " << e.error;
      EXPECT_TRUE(e.integer_intermediates) << item.prompt;
      EXPECT_EQ(item.answer, to_string(e.value)) << item.prompt;
      EXPECT_EQ(e.numbers.size(), static_cast<size_t>(o.ops) + 1) << item.prompt;
      for (int64_t n : e.numbers) EXPECT_LE(n, o.max_operand);
      EXPECT_GE(e.value.num, 0);
      EXPECT_LE(e.value.num, o.max_value);
    }
  }
}

TEST(ArithmeticTask, DivisionCanBeTurnedOff) {
  ArithmeticTaskOptions o;
  o.division = false;
  for (uint64_t i = 0; i < 100; ++i)
    EXPECT_EQ(make_arithmetic(o, 2, i).prompt.find('/'), std::string::npos);
}

// Substitutes x = v into one side of "3x + 5", "-x - 2", "4(x - 1)" and evaluates it exactly.
Rational side_value(std::string side, int64_t v) {
  const std::string val = v < 0 ? "(0 - " + std::to_string(-v) + ")" : std::to_string(v);
  if (!side.empty() && side[0] == '-') side = "0 " + side;  // leading minus: 0 - ...
  std::string out;
  for (size_t i = 0; i < side.size(); ++i) {
    const bool after_digit = i > 0 && std::isdigit(static_cast<unsigned char>(side[i - 1]));
    if (side[i] == 'x') {
      out += after_digit ? "*" + val : val;
    } else if (side[i] == '(' && after_digit) {
      out += "*(";
    } else {
      out += side[i];
    }
  }
  const auto e = evaluate(out);
  EXPECT_TRUE(e.ok) << out << ": " << e.error;
  return e.value;
}

TEST(EquationTask, AnswerSatisfiesThePromptEquation) {
  for (Difficulty d : {Difficulty::easy, Difficulty::medium, Difficulty::hard}) {
    const EquationTaskOptions o = equation_preset(d);
    std::set<int> forms_seen;
    for (uint64_t i = 0; i < 300; ++i) {
      const TaskItem item = make_equation(o, 5, i);
      ASSERT_EQ(item.prompt.rfind("Solve for x: ", 0), 0u);
      const std::string eq = item.prompt.substr(13, item.prompt.size() - 14);
      const size_t sep = eq.find(" = ");
      ASSERT_NE(sep, std::string::npos) << eq;
      const std::string lhs = eq.substr(0, sep), rhs = eq.substr(sep + 3);
      const int64_t x = std::stoll(item.answer);
      EXPECT_GE(x, o.min_solution);
      EXPECT_LE(x, o.max_solution);
      EXPECT_EQ(side_value(lhs, x), side_value(rhs, x)) << eq << " at x = " << x;
      // x is the only solution: the sides differ at x + 1 (the x terms never cancel).
      EXPECT_NE(side_value(lhs, x + 1), side_value(rhs, x + 1)) << eq;
      forms_seen.insert(rhs.find('x') != std::string::npos   ? 3
                        : lhs.find('(') != std::string::npos ? 2
                                                             : 1);
    }
    EXPECT_EQ(forms_seen.size(), static_cast<size_t>(o.forms));
  }
}

TEST(Tasks, SameSeedSameItemsAndItemsDoNotDependOnN) {
  for (TaskKind t : {TaskKind::countdown, TaskKind::arithmetic, TaskKind::equation}) {
    const auto a = generate_task(t, Difficulty::medium, config::overrides_map({}), 20, 42);
    const auto b = generate_task(t, Difficulty::medium, config::overrides_map({}), 20, 42);
    const auto c = generate_task(t, Difficulty::medium, config::overrides_map({}), 20, 43);
    const auto prefix = generate_task(t, Difficulty::medium, config::overrides_map({}), 5, 42);
    size_t differ = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].to_json(true), b[i].to_json(true));
      differ += a[i].prompt != c[i].prompt ? 1 : 0;
      if (i < prefix.size()) {
        EXPECT_EQ(a[i].to_json(true), prefix[i].to_json(true));
      }
    }
    EXPECT_GT(differ, 15u);
  }
}

// Pinned first items: the generators use their own portable RNG, so these hold on every
// platform and standard library. A change here changes every dataset made from a seed.
TEST(Tasks, PinnedItemsForSeedOne) {
  const auto cd =
      generate_task(TaskKind::countdown, Difficulty::easy, config::overrides_map({}), 1, 1);
  const auto ar =
      generate_task(TaskKind::arithmetic, Difficulty::easy, config::overrides_map({}), 1, 1);
  const auto eq =
      generate_task(TaskKind::equation, Difficulty::easy, config::overrides_map({}), 1, 1);
  EXPECT_EQ(cd[0].prompt,
            "Using the numbers [10, 7, 9], write an arithmetic expression that equals 26. You "
            "may use +, -, *, / and parentheses, and each number at most once.");
  EXPECT_EQ(cd[0].answer, "{\"numbers\":[10,7,9],\"target\":26}");  // 10 + 7 + 9
  EXPECT_EQ(ar[0].prompt, "Calculate 10 + 10 + 9.");
  EXPECT_EQ(ar[0].answer, "29");
  EXPECT_EQ(eq[0].prompt, "Solve for x: 5x + 2 = 12.");
  EXPECT_EQ(eq[0].answer, "2");  // 5 * 2 + 2 = 12
}

TEST(Tasks, OverridesBindOverThePreset) {
  const auto items = generate_task(TaskKind::countdown, Difficulty::easy,
                                   config::overrides_map({"count=5"}), 10, 3);
  for (const auto& item : items) EXPECT_EQ(item.extra["numbers"].size(), 5u);
  auto message = [](const std::vector<std::string>& sets) -> std::string {
    try {
      generate_task(TaskKind::countdown, Difficulty::easy, config::overrides_map(sets), 1, 0);
    } catch (const grpo::Error& e) {
      EXPECT_EQ(e.kind(), grpo::ErrorKind::config);
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message({"count=1"}).find("countdown.count"), std::string::npos);
  EXPECT_NE(message({"cuont=3"}).find("count"), std::string::npos);
  EXPECT_NE(message({"self_check_rate=2"}).find("countdown.self_check_rate"), std::string::npos);
}

TEST(Tasks, WorkedSolutionsVaryAndSometimesSelfCheck) {
  const std::regex shape("<think> (.+) </think> <answer> (.+) </answer>");
  for (TaskKind t : {TaskKind::countdown, TaskKind::arithmetic, TaskKind::equation}) {
    const auto items = generate_task(t, Difficulty::medium, config::overrides_map({}), 300, 9);
    size_t checks = 0, shortest = SIZE_MAX, longest = 0;
    for (const auto& item : items) {
      std::smatch m;
      ASSERT_TRUE(std::regex_match(item.response, m, shape)) << item.response;
      if (t != TaskKind::countdown) {
        EXPECT_EQ(m[2].str(), item.answer);
      }
      checks += item.response.find("Let me verify") != std::string::npos ? 1 : 0;
      shortest = std::min(shortest, item.response.size());
      longest = std::max(longest, item.response.size());
      const auto j = item.to_json(true);
      EXPECT_EQ(j["task"], item.task);
      EXPECT_EQ(j["response"], item.response);
      EXPECT_FALSE(item.to_json(false).contains("response"));
    }
    // self_check_rate 0.3 of 300: 90 expected, sd ~8.
    EXPECT_GT(checks, 50u);
    EXPECT_LT(checks, 130u);
    EXPECT_LT(shortest * 2, longest);
  }
  // No self-checks at rate 0; all at rate 1.
  for (const char* rate : {"self_check_rate=0", "self_check_rate=1"}) {
    const auto items =
        generate_task(TaskKind::equation, Difficulty::easy, config::overrides_map({rate}), 50, 1);
    const bool want = std::string(rate).back() == '1';
    for (const auto& item : items)
      EXPECT_EQ(item.response.find("Let me verify") != std::string::npos, want);
  }
}

// The worked solution of a pinned item, made before direct_rate, multiplication and chain
// existed: those knobs at their defaults draw nothing, so old datasets stay byte-identical.
TEST(Tasks, PinnedSolutionUnchangedByLaterKnobs) {
  const auto ar =
      generate_task(TaskKind::arithmetic, Difficulty::easy, config::overrides_map({}), 1, 0);
  EXPECT_EQ(ar[0].prompt, "Calculate 7 * 6 - 6.");
  EXPECT_EQ(ar[0].response,
            "<think> Work it out one operation at a time, respecting parentheses and doing * and "
            "/ before + and -. First, 7 * 6 = 42. Finally, 42 - 6 = 36. So the result is 36. "
            "</think> <answer> 36 </answer>");
}

// chain: ((a op b) op c) op d with + and - only; the working is the running result, one
// operation per sentence, checked against a running total computed here from the prompt.
TEST(ArithmeticTask, ChainsRunLeftToRight) {
  const auto items =
      generate_task(TaskKind::arithmetic, Difficulty::medium,
                    config::overrides_map({"ops=4", "max_operand=9", "max_value=40",
                                           "multiplication=false", "division=false", "chain=true",
                                           "max_verbosity=0", "self_check_rate=0"}),
                    200, 3);
  for (const auto& item : items) {
    const std::string expr = arithmetic_expression(item.prompt);
    EXPECT_EQ(expr.find_first_of("*/()"), std::string::npos) << expr;
    std::vector<std::string> words;
    for (size_t pos = 0; pos <= expr.size();) {
      const size_t space = std::min(expr.find(' ', pos), expr.size());
      words.push_back(expr.substr(pos, space - pos));
      pos = space + 1;
    }
    ASSERT_EQ(words.size(), 9u) << expr;  // 5 numbers and 4 operators
    long total = std::stol(words[0]);
    std::string think;
    for (size_t k = 1; k < words.size(); k += 2) {
      const long x = std::stol(words[k + 1]);
      const long next = words[k] == "+" ? total + x : total - x;
      EXPECT_GE(next, 0) << expr;
      EXPECT_LE(next, 40) << expr;
      think += (think.empty() ? "" : " ") + std::to_string(total) + " " + words[k] + " " +
               words[k + 1] + " = " + std::to_string(next) + ".";
      total = next;
    }
    EXPECT_EQ(item.answer, std::to_string(total));
    EXPECT_EQ(item.response,
              "<think> " + think + " </think> <answer> " + item.answer + " </answer>");
  }
}

TEST(ArithmeticTask, MultiplicationCanBeTurnedOff) {
  const auto items = generate_task(TaskKind::arithmetic, Difficulty::hard,
                                   config::overrides_map({"multiplication=false"}), 100, 5);
  size_t divisions = 0;
  for (const auto& item : items) {
    EXPECT_EQ(item.prompt.find('*'), std::string::npos) << item.prompt;
    divisions += item.prompt.find('/') != std::string::npos ? 1 : 0;
  }
  EXPECT_GT(divisions, 0u);  // only * went away
}

// direct_rate: the thinking states the result without working, in each task's form.
TEST(Tasks, DirectRateSkipsTheWorking) {
  const auto ar = generate_task(TaskKind::arithmetic, Difficulty::easy,
                                config::overrides_map({"direct_rate=1"}), 30, 7);
  for (const auto& item : ar) {
    EXPECT_EQ(item.response, "<think> " + arithmetic_expression(item.prompt) + " = " + item.answer +
                                 ". </think> <answer> " + item.answer + " </answer>");
  }
  const auto eq = generate_task(TaskKind::equation, Difficulty::easy,
                                config::overrides_map({"direct_rate=1"}), 30, 7);
  for (const auto& item : eq) {
    EXPECT_EQ(item.response,
              "<think> x = " + item.answer + ". </think> <answer> " + item.answer + " </answer>");
  }
  const auto cd = generate_task(TaskKind::countdown, Difficulty::easy,
                                config::overrides_map({"direct_rate=1"}), 30, 7);
  for (const auto& item : cd) {
    const std::string solution = item.extra.at("solution").get<std::string>();
    EXPECT_EQ(item.response, "<think> " + solution + " = " +
                                 std::to_string(item.extra.at("target").get<int>()) +
                                 ". </think> <answer> " + solution + " </answer>");
  }
  // A rate of 0.5 of 400: 200 expected, sd 10.
  const auto half = generate_task(TaskKind::arithmetic, Difficulty::medium,
                                  config::overrides_map({"direct_rate=0.5"}), 400, 8);
  size_t direct = 0;
  for (const auto& item : half) {
    direct += item.response == "<think> " + arithmetic_expression(item.prompt) + " = " +
                                   item.answer + ". </think> <answer> " + item.answer + " </answer>"
                  ? 1
                  : 0;
  }
  EXPECT_GT(direct, 150u);
  EXPECT_LT(direct, 250u);
}

}  // namespace
}  // namespace grpo::data
