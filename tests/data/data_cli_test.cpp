// `grpo data make` end to end: files written, identical for a seed, every worked solution
// verified, and usage/config errors with exit code 2.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "../support/run_cli.h"
#include "grpo/core/jsonl.h"
#include "grpo/data/countdown.h"
#include "grpo/data/expression.h"

namespace fs = std::filesystem;
using grpo::testing::run_cli;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class DataCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("grpo_data_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(DataCliTest, MakesCountdownWithVerifiedSolutions) {
  const std::string out = path("cd.jsonl");
  auto r = run_cli(
      "data make --task countdown --n 50 --seed 3 --difficulty easy --with-solutions "
      "--out " +
      out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("wrote 50 countdown items"), std::string::npos) << r.out;
  const auto lines = grpo::jsonl::read_objects(out);
  ASSERT_EQ(lines.size(), 50u);
  for (const auto& j : lines) {
    EXPECT_EQ(j["task"], "countdown");
    ASSERT_TRUE(j["prompt"].is_string() && j["answer"].is_string() && j["response"].is_string());
    EXPECT_EQ(grpo::data::score_countdown(j["response"].get<std::string>(),
                                          j["answer"].get<std::string>(), {})
                  .verdict,
              "correct")
        << j.dump();
  }
  // Same seed, same bytes; no temp file left behind.
  const std::string again = path("cd2.jsonl");
  ASSERT_EQ(run_cli("data make --task countdown --n 50 --seed 3 --difficulty easy "
                    "--with-solutions --out " +
                    again)
                .exit_code,
            0);
  EXPECT_EQ(slurp(out), slurp(again));
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) files += e.is_regular_file() ? 1 : 0;
  EXPECT_EQ(files, 2u);
}

TEST_F(DataCliTest, MakesArithmeticAndEquationsWithoutSolutions) {
  const std::string out = path("ar.jsonl");
  ASSERT_EQ(
      run_cli("data make --task arithmetic --n 20 --seed 1 --set ops=4 --out " + out).exit_code, 0);
  for (const auto& j : grpo::jsonl::read_objects(out)) {
    EXPECT_FALSE(j.contains("response"));
    std::string prompt = j["prompt"];
    auto e = grpo::data::evaluate(prompt.substr(10, prompt.size() - 11));
    EXPECT_EQ(e.numbers.size(), 5u);
    EXPECT_EQ(j["answer"], grpo::data::to_string(e.value));
  }
  ASSERT_EQ(
      run_cli("data make --task equation --n 20 --seed 1 --out " + path("eq.jsonl")).exit_code, 0);
  EXPECT_EQ(grpo::jsonl::read_objects(path("eq.jsonl")).size(), 20u);
}

TEST_F(DataCliTest, BadArgumentsExitTwoWithOneLine) {
  auto bad_task = run_cli("data make --task sudoku --n 5 --seed 1 --out " + path("x.jsonl"));
  EXPECT_EQ(bad_task.exit_code, 2);
  EXPECT_NE(bad_task.err.find("unknown task 'sudoku'"), std::string::npos) << bad_task.err;
  auto bad_knob =
      run_cli("data make --task countdown --n 5 --seed 1 --set count=1 --out " + path("x.jsonl"));
  EXPECT_EQ(bad_knob.exit_code, 2);
  EXPECT_NE(bad_knob.err.find("countdown.count"), std::string::npos) << bad_knob.err;
  auto unknown_knob =
      run_cli("data make --task equation --n 5 --seed 1 --set forms2=1 --out " + path("x.jsonl"));
  EXPECT_EQ(unknown_knob.exit_code, 2);
  EXPECT_NE(unknown_knob.err.find("forms2"), std::string::npos) << unknown_knob.err;
  EXPECT_FALSE(fs::exists(path("x.jsonl")));
  auto no_dir =
      run_cli("data make --task equation --n 5 --seed 1 --out " + path("missing/dir/x.jsonl"));
  EXPECT_EQ(no_dir.exit_code, 1);
}

}  // namespace
