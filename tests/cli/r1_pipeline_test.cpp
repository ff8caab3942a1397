// scripts/r1_pipeline.sh end to end at its test scale (a 0.1M-parameter model, two-number
// countdown, a few steps per stage): every stage runs and leaves a policy, the summary names the
// four stages, and every kept rejection-sampling example is right by the countdown checker,
// scored again here through `grpo reward` (an independent pass over the kept file), and the
// evaluation problems are held out (none is among the rejection-sampling prompts).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "support/run_cli.h"

namespace fs = std::filesystem;
using grpo::testing::run_cli;
using grpo::testing::shell_quote;

TEST(R1Pipeline, TinyEndToEnd) {
  const fs::path out =
      fs::temp_directory_path() / ("grpo_r1_pipeline_" + std::to_string(::getpid()));
  fs::remove_all(out);
  const std::string command =
      "SCALE=test OMP_NUM_THREADS=1 GRPO=" + shell_quote(GRPO_CLI_PATH) +
      " OUT=" + shell_quote(out.string()) + " bash " +
      shell_quote(std::string(GRPO_SOURCE_DIR) + "/scripts/r1_pipeline.sh") + " > " +
      shell_quote((out.string() + ".log")) + " 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << "see " << out << ".log";

  std::ifstream summary_file(out / "summary.json");
  const auto summary = nlohmann::json::parse(summary_file);
  for (const char* stage : {"1_cold_start", "2_rl", "3_rs_sft", "4_rl"}) {
    const auto& s = summary.at("stages").at(stage);
    EXPECT_GE(s.at("pass@1").get<double>(), 0.0) << stage;
    EXPECT_LE(s.at("pass@1").get<double>(), 1.0) << stage;
    EXPECT_GT(s.at("response_length").get<double>(), 0.0) << stage;
  }
  const int64_t kept = summary.at("kept");
  ASSERT_GT(kept, 0);

  auto problems = [](const fs::path& file) {
    std::set<std::string> answers;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);)
      answers.insert(nlohmann::json::parse(line).at("answer").get<std::string>());
    return answers;
  };
  const auto held_out = problems(out / "held_out.jsonl");
  ASSERT_FALSE(held_out.empty());
  for (const auto& p : problems(out / "rs_prompts.jsonl"))
    EXPECT_EQ(held_out.count(p), 0u) << p << " is both a held-out and a training prompt";

  // Every kept example, as a completion with its problem, through the countdown checker.
  const fs::path scored_in = out / "kept_as_completions.jsonl";
  {
    std::ifstream in(out / "3_rejection_sampling" / "kept.jsonl");
    std::ofstream f(scored_in);
    int64_t lines = 0;
    for (std::string line; std::getline(in, line); ++lines) {
      const auto j = nlohmann::json::parse(line);
      EXPECT_NE(j.at("response").get<std::string>().find("</answer>"), std::string::npos);
      f << nlohmann::json({{"completion", j.at("response")}, {"answer", j.at("answer")}}).dump()
        << "\n";
    }
    EXPECT_EQ(lines, kept);
  }
  const fs::path scored = out / "kept_scored.jsonl";
  const auto r = run_cli("reward --reward countdown --input " + shell_quote(scored_in.string()) +
                         " --output " + shell_quote(scored.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::ifstream in(scored);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j.at("rewards").at("countdown"), 1.0) << line;
  }
  fs::remove_all(out);
  fs::remove(out.string() + ".log");
}
