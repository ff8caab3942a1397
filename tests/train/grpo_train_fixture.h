// The `grpo train` CLI tests' shared fixture: a suite folder with generated arithmetic prompts,
// a trained tokenizer and a tiny from-scratch config (tiny.yaml), and helpers to run it
// (grpo_train_cli_test.cpp: outputs, resume, signals, algorithm options;
// grpo_train_features_cli_test.cpp: validation and LoRA).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "../support/jsonl.h"
#include "../support/run_cli.h"

namespace grpo::testing {

namespace fs = std::filesystem;

inline std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class GrpoTrain : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("grpo_train_cli_" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
    const auto data = root_ / "arithmetic.jsonl";
    auto r = run_cli(
        "data make --task arithmetic --n 128 --seed 3 --difficulty easy "
        "--with-solutions --out " +
        shell_quote(data.string()));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_cli("tokenizer train --input " + shell_quote(data.string()) +
                " --field response --vocab-size 400 --model-type bpe --out " +
                shell_quote((root_ / "tokenizer").string()));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // The pipeline on an untrained model (configs/smoke_cpu.yaml is the SFT + GRPO recipe).
    std::ofstream(root_ / "tiny.yaml") << R"(model:
  init: random
  architecture: {hidden_size: 64, intermediate_size: 192, num_hidden_layers: 2,
                 num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 256}
tokenizer: {template: plain}
data: {max_prompt_tokens: 96}
rollout: {n: 4, max_new_tokens: 32, temperature: 1.0}
reward:
  functions:
    - {name: math_boxed, weight: 1.0, options: {location: answer_tag}}
    - {name: format_think_answer, weight: 0.1}
algorithm: {advantage: grpo, beta: 0.001, loss_aggregation: token_mean}
trainer: {steps: 6, prompts_per_step: 4, micro_batch_size: 8, lr: 1.0e-4, warmup_steps: 1,
          seed: 0, device: cpu}
logging: {samples_per_step: 2}
)";
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }

  // Arguments of a short deterministic run of tiny.yaml on the suite's assets.
  // The overlong penalty makes rewards differ inside groups, so even the untrained model
  // gets non-zero advantages and its weights move every step.
  static std::string run_args(const fs::path& run_dir, int steps, const std::string& extra = "") {
    return "--log-level warn train --config " + shell_quote((root_ / "tiny.yaml").string()) +
           " --run-dir " + shell_quote(run_dir.string()) +
           " --set tokenizer.path=" + shell_quote((root_ / "tokenizer").string()) +
           " --set data.train_files=[" + shell_quote((root_ / "arithmetic.jsonl").string()) +
           "] --set trainer.steps=" + std::to_string(steps) +
           " --set checkpoint.every=2 --set checkpoint.keep_last=10"
           " --set trainer.deterministic=true --set algorithm.overlong_buffer=16 " +
           extra;
  }

  // The metrics of 4-step runs that differ only in `--set key=value`, one per value (none when
  // a run fails).
  static std::vector<std::vector<nlohmann::json>> four_step_runs(
      const std::string& key, const std::vector<std::string>& values) {
    std::vector<std::vector<nlohmann::json>> runs;
    for (const auto& value : values) {
      const auto run = root_ / (key + "_" + value);
      const auto r = run_cli(run_args(run, 4, "--set " + key + "=" + value));
      EXPECT_EQ(r.exit_code, 0) << r.err;
      auto metrics = read_jsonl(run / "metrics.jsonl");
      EXPECT_EQ(metrics.size(), 4u) << key << "=" << value;
      if (r.exit_code != 0 || metrics.size() != 4u) return {};
      runs.push_back(std::move(metrics));
    }
    return runs;
  }

  // Two four_step_runs train alike: step by step until the first with a gradient, the same
  // rewards and `keys` within 1e-5 relative; `also(a, b, step)` adds the caller's checks.
  template <class Also>
  static void expect_same_updates(const std::vector<std::vector<nlohmann::json>>& runs,
                                  const std::vector<const char*>& keys, Also also) {
    ASSERT_EQ(runs.size(), 2u);
    bool moved = false;
    for (size_t step = 0; step < 4 && !moved; ++step) {
      const auto &a = runs[0][step], &b = runs[1][step];
      EXPECT_EQ(a.at("reward/mean"), b.at("reward/mean")) << "step " << step + 1;
      for (const char* key : keys) {
        const double x = a.at(key).get<double>(), y = b.at(key).get<double>();
        EXPECT_NEAR(x, y, 1e-5 * (1 + std::abs(y))) << key << ", step " << step + 1;
      }
      also(a, b, step + 1);
      moved = a.at("grad_norm").get<double>() > 0;
    }
    EXPECT_TRUE(moved) << "no step with a gradient in 4 steps";
  }

  static fs::path policy_weights(const fs::path& run_dir, int step) {
    std::ostringstream name;
    name << "step_" << std::string(6 - std::to_string(step).size(), '0') << step;
    return run_dir / "checkpoints" / name.str() / "policy" / "model.safetensors";
  }

  static inline fs::path root_;
};

}  // namespace grpo::testing
