// Agreement with math-verify on tests/fixtures/reward/math_verify_pairs.jsonl (written by
// scripts/make_math_fixtures.py with math-verify's verdicts). Every pair must get math-verify's
// verdict, or be listed with our verdict and the reason in math_verify_exceptions.json.
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "grpo/reward/math_answer.h"

namespace grpo::reward {
namespace {

const std::string kDir = std::string(GRPO_SOURCE_DIR) + "/tests/fixtures/reward/";

TEST(MathAgreement, MatchesMathVerifyOrDocumentedException) {
  std::ifstream exceptions_file(kDir + "math_verify_exceptions.json");
  ASSERT_TRUE(exceptions_file) << "missing math_verify_exceptions.json";
  nlohmann::json exceptions = nlohmann::json::parse(exceptions_file);
  std::ifstream pairs(kDir + "math_verify_pairs.jsonl");
  ASSERT_TRUE(pairs) << "missing math_verify_pairs.jsonl (scripts/make_math_fixtures.py)";
  MathOptions options;
  int total = 0, agree = 0, true_pairs = 0;
  std::string line;
  while (std::getline(pairs, line)) {
    nlohmann::json row = nlohmann::json::parse(line);
    std::string gold = row["gold"], pred = row["pred"];
    bool expected = row["math_verify"];
    bool ours = math_answers_equal(gold, pred, options);
    ++total;
    true_pairs += expected ? 1 : 0;
    if (ours == expected) {
      ++agree;
      continue;
    }
    bool documented = false;
    for (const auto& e : exceptions) {
      if (e["gold"] == gold && e["pred"] == pred && e["ours"] == ours) documented = true;
    }
    EXPECT_TRUE(documented) << "undocumented disagreement: gold '" << gold << "' pred '" << pred
                            << "': math-verify " << expected << ", ours " << ours;
  }
  EXPECT_GE(total, 300);
  EXPECT_GT(true_pairs, 50);
  EXPECT_GT(total - true_pairs, 50);
  std::cout << "math-verify agreement: " << agree << "/" << total << " pairs ("
            << 100.0 * agree / total << "%), " << total - agree << " documented exceptions\n";
}

// MATH-500's `answer` is, by construction, its solution's last \boxed{}: extracting the box
// from the solution and comparing must accept all 500 (the answers are written the same way,
// so this checks extraction of nested braces more than equivalence).
TEST(MathBenchmarks, Math500AnswersMatchTheirSolutions) {
  std::ifstream in(std::string(GRPO_SOURCE_DIR) +
                   "/../shared/data/benchmarks/simplerl_math500_test.jsonl");
  if (!in) GTEST_SKIP() << "../shared/data/benchmarks not present";
  MathOptions options;
  int total = 0, ok = 0;
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json row = nlohmann::json::parse(line);
    Sample s;
    s.completion = row["solution"].get<std::string>();
    s.answer = row["answer"].get<std::string>();
    ++total;
    if (MathBoxedReward(options).score(s).score == 1.0) {
      ++ok;
    } else {
      ADD_FAILURE() << "answer '" << s.answer << "' vs extracted "
                    << MathBoxedReward(options).score(s).details["extracted"];
    }
  }
  EXPECT_EQ(total, 500);
  std::cout << "MATH-500 solutions graded correct: " << ok << "/" << total << "\n";
}

// GSM8K's final answers follow `####`, some with thousands commas: the number without commas,
// and the same with its commas, are both accepted; the number plus one is not.
TEST(MathBenchmarks, Gsm8kFinalAnswers) {
  std::ifstream in(std::string(GRPO_SOURCE_DIR) +
                   "/../shared/data/benchmarks/qwen25math_gsm8k_test.jsonl");
  if (!in) GTEST_SKIP() << "../shared/data/benchmarks not present";
  MathOptions options;
  int total = 0;
  std::string line;
  while (std::getline(in, line)) {
    std::string rationale = nlohmann::json::parse(line)["answer"];
    std::string gold = rationale.substr(rationale.rfind("####") + 4);
    std::string plain;
    for (char c : gold) {
      if (c != ',' && c != ' ') plain += c;
    }
    ++total;
    EXPECT_TRUE(math_answers_equal(gold, plain, options)) << gold;
    EXPECT_TRUE(math_answers_equal(plain, gold, options)) << gold;
    EXPECT_FALSE(math_answers_equal(gold, std::to_string(std::stoll(plain) + 1), options)) << gold;
  }
  EXPECT_EQ(total, 1319);
}

}  // namespace
}  // namespace grpo::reward
