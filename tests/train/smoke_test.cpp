// The CPU smoke recipe through the grpo executable, as a user runs it: `grpo train --config
// configs/smoke_cpu.yaml` trains its SFT base (configs/smoke_sft.yaml) and then runs GRPO. Three
// GRPO seeds share one SFT stage (the first run trains it, the others reuse it). The bar
// (docs/recipes.md): the accuracy reward rises by at least 0.3 absolute between the first and
// the last steps, here the means of the first and the last five steps of each seed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../support/jsonl.h"
#include "../support/run_cli.h"

namespace fs = std::filesystem;
using grpo::testing::read_jsonl;
using grpo::testing::run_cli;
using grpo::testing::shell_quote;

namespace {

double mean_of(const std::vector<nlohmann::json>& rows, size_t begin, size_t end, const char* key) {
  double sum = 0;
  for (size_t i = begin; i < end; ++i) sum += rows[i].at(key).get<double>();
  return sum / static_cast<double>(end - begin);
}

TEST(SmokeRecipe, AccuracyRisesByAtLeast0p3ForThreeSeeds) {
  const fs::path root = fs::temp_directory_path() / ("grpo_smoke_" + std::to_string(getpid()));
  fs::remove_all(root);
  // The recipe's paths (configs/smoke_sft.yaml) are relative to the repository root.
  fs::current_path(GRPO_SOURCE_DIR);
  const auto sft_dir = root / "sft";
  constexpr size_t kWindow = 5;
  for (int seed = 0; seed < 3; ++seed) {
    const auto run = root / ("seed" + std::to_string(seed));
    const auto start = std::chrono::steady_clock::now();
    const auto r =
        run_cli("train --config configs/smoke_cpu.yaml --run-dir " + shell_quote(run.string()) +
                " --set trainer.seed=" + std::to_string(seed) +
                " --set model.sft_run_dir=" + shell_quote(sft_dir.string()));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ASSERT_EQ(r.exit_code, 0) << r.err;
    if (seed > 0) {
      EXPECT_NE((r.out + r.err).find("reusing the SFT stage"), std::string::npos) << r.out;
    }
    const auto metrics = read_jsonl(run / "metrics.jsonl");
    ASSERT_GE(metrics.size(), 2 * kWindow);
    const size_t n = metrics.size();
    const double first = mean_of(metrics, 0, kWindow, "accuracy");
    const double last = mean_of(metrics, n - kWindow, n, "accuracy");
    const double len_first = mean_of(metrics, 0, kWindow, "response_length/mean");
    const double len_last = mean_of(metrics, n - kWindow, n, "response_length/mean");
    std::printf(
        "seed %d: accuracy %.3f -> %.3f (+%.3f), response length %.1f -> %.1f, %zu steps, "
        "%.0f s%s\n",
        seed, first, last, last - first, len_first, len_last, n, seconds,
        seed == 0 ? " (SFT stage included)" : "");
    EXPECT_GE(last - first, 0.3) << "seed " << seed << ": accuracy " << first << " -> " << last;
  }
  fs::remove_all(root);
}

}  // namespace
