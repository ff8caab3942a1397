// HumanEval through code_tests (function-call mode): every canonical solution is AC and a
// broken variant of each (body replaced by `return None`) is WA or RE. Reads
// ../shared/data/benchmarks/HumanEval.jsonl.gz next to the repository; skipped when absent.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include "../support/jsonl.h"
#include "grpo/reward/code_tests.h"

namespace grpo::reward {
namespace {

const std::string kPath =
    std::string(GRPO_SOURCE_DIR) + "/../shared/data/benchmarks/HumanEval.jsonl.gz";

std::vector<nlohmann::json> load_humaneval() { return grpo::testing::read_jsonl_gz(kPath); }

std::vector<Sample> samples(const std::vector<nlohmann::json>& rows, bool broken) {
  std::vector<Sample> out;
  for (const auto& row : rows) {
    Sample s;
    std::string body = broken ? "    return None\n" : row["canonical_solution"].get<std::string>();
    s.completion = "Here is the implementation:\n```python\n" + body + "```\n";
    s.tests = {
        {"prefix", row["prompt"]}, {"check", row["test"]}, {"entry_point", row["entry_point"]}};
    out.push_back(std::move(s));
  }
  return out;
}

TEST(HumanEval, CanonicalSolutionsPassAndBrokenOnesFail) {
  struct stat st;
  if (stat(kPath.c_str(), &st) != 0) GTEST_SKIP() << kPath << " not present";
  std::vector<nlohmann::json> rows = load_humaneval();
  ASSERT_EQ(rows.size(), 164u);
  CodeTestsOptions o;
  o.sandbox.timeout_s = 20.0;
  CodeTests runner(o);

  auto t0 = std::chrono::steady_clock::now();
  std::vector<RewardResult> good = runner.score_batch(samples(rows, false));
  double good_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int ac = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    bool ok = good[i].details["verdict"] == "AC";
    ac += ok;
    EXPECT_TRUE(ok) << rows[i]["task_id"] << ": " << good[i].details.dump();
  }

  t0 = std::chrono::steady_clock::now();
  std::vector<RewardResult> bad = runner.score_batch(samples(rows, true));
  double bad_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int failed = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string v = bad[i].details["verdict"];
    failed += v == "WA" || v == "RE";
    EXPECT_TRUE(v == "WA" || v == "RE") << rows[i]["task_id"] << ": " << bad[i].details.dump();
  }
  std::printf(
      "[humaneval] canonical: %d/164 AC in %.1f s; broken: %d/164 WA or RE in %.1f s "
      "(concurrency %d)\n",
      ac, good_s, failed, bad_s, runner.concurrency());
}

}  // namespace
}  // namespace grpo::reward
