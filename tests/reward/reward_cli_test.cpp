// `grpo reward` end to end on a small JSONL: output lines carry the input plus reward, rewards
// and details; malformed lines fail with their line number or are skipped and counted.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "support/run_cli.h"

namespace {

using grpo::testing::run_cli;
using grpo::testing::shell_quote;

class RewardCli : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/grpo_reward_cli_XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override { std::system(("rm -rf " + shell_quote(dir_)).c_str()); }

  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::vector<nlohmann::json> read_lines(const std::string& path) {
    std::ifstream in(path);
    std::vector<nlohmann::json> rows;
    for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
    return rows;
  }

  std::string dir_;
};

const char* kInput =
    R"({"id": 1, "completion": "<think>2+2</think><answer>\\boxed{4}</answer>", "answer": "4"})"
    "\n"
    R"({"id": 2, "completion": "<think>hm</think> \\boxed{\\frac{1}{2}}", "answer": "0.5"})"
    "\n"
    R"({"id": 3, "completion": "no box", "answer": 27.0})"
    "\n";

TEST_F(RewardCli, ScoresWithNamedRewards) {
  std::string in = write("in.jsonl", kInput), out = dir_ + "/out.jsonl";
  auto r = run_cli("reward --input " + in + " --output " + out +
                   " --reward math_boxed --reward format_think_answer");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rows = read_lines(out);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0]["id"], 1);  // the input is kept
  EXPECT_EQ(rows[0]["reward"], 2.0);
  EXPECT_EQ(rows[0]["rewards"]["math_boxed"], 1.0);
  EXPECT_EQ(rows[0]["rewards"]["format_think_answer"], 1.0);
  EXPECT_EQ(rows[1]["reward"], 1.0);  // right answer, text outside the blocks
  EXPECT_EQ(rows[1]["details"]["math_boxed"]["extracted"], "\\frac{1}{2}");
  EXPECT_EQ(rows[2]["reward"], 0.0);
  EXPECT_NE(r.out.find("scored 3 lines"), std::string::npos) << r.out;
}

TEST_F(RewardCli, ConfigWeightsOptionsAndFieldNames) {
  std::string in = write("in.jsonl", R"({"completion": "<answer>50%</answer>", "gold": "0.5"})"
                                     "\n");
  std::string cfg = write("r.yaml",
                          "data:\n  answer_field: gold\n"
                          "reward:\n  functions:\n"
                          "    - name: math_boxed\n      weight: 2.0\n"
                          "      options: {location: answer_tag, percent: fraction}\n"
                          "    - {name: format_think_answer, weight: 0.5, options: {mode: "
                          "tag_count}}\n");
  std::string out = dir_ + "/out.jsonl";
  auto r = run_cli("reward --input " + in + " --output " + out + " --config " + cfg);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rows = read_lines(out);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_DOUBLE_EQ(rows[0]["reward"].get<double>(), 2.0 * 1.0 + 0.5 * 0.5);
}

TEST_F(RewardCli, BadLinesFailWithLineNumberOrAreSkipped) {
  std::string in =
      write("in.jsonl", std::string(kInput) + "{not json\n" + R"({"answer": "1"})" + "\n");
  std::string out = dir_ + "/out.jsonl";
  auto r = run_cli("reward --input " + in + " --output " + out + " --reward math_boxed");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("in.jsonl:4: not valid JSON"), std::string::npos) << r.err;
  EXPECT_FALSE(std::ifstream(out).good());  // no partial output
  r = run_cli("reward --input " + in + " --output " + out +
              " --reward math_boxed --skip-bad-lines");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_lines(out).size(), 3u);
  EXPECT_NE(r.out.find("(2 skipped)"), std::string::npos) << r.out;
}

TEST_F(RewardCli, CodeVerdictsAtTopLevel) {
  std::string in = write(
      "in.jsonl",
      R"({"completion": "```python\nprint(int(input())*2)\n```", "tests": [{"input": "3\n", "output": "6\n"}, {"input": "5\n", "output": "10\n"}]})"
      "\n"
      R"({"completion": "```python\nprint(1)\n```", "tests": [{"input": "3\n", "output": "6\n"}]})"
      "\n");
  std::string out = dir_ + "/out.jsonl";
  auto r = run_cli("reward --input " + in + " --output " + out + " --reward code_tests");
  if (r.exit_code != 0 && r.err.find("code sandbox") != std::string::npos) {
    GTEST_SKIP() << "no sandbox on this machine: " << r.err;
  }
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rows = read_lines(out);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["verdict"], "AC");
  EXPECT_EQ(rows[0]["tests_passed"], 2);
  EXPECT_EQ(rows[0]["tests_total"], 2);
  EXPECT_EQ(rows[0]["reward"], 1.0);
  EXPECT_EQ(rows[1]["verdict"], "WA");
  EXPECT_EQ(rows[1]["tests_passed"], 0);
  EXPECT_EQ(rows[1]["reward"], 0.0);
}

TEST_F(RewardCli, UsageErrors) {
  std::string in = write("in.jsonl", kInput), out = dir_ + "/out.jsonl";
  auto r = run_cli("reward --input " + in + " --output " + out);  // no reward named
  EXPECT_EQ(r.exit_code, 2);
  r = run_cli("reward --input " + in + " --output " + out + " --reward no_such_reward");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no_such_reward"), std::string::npos) << r.err;
  r = run_cli("reward --input " + dir_ + "/missing.jsonl --output " + out + " --reward math_boxed");
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
