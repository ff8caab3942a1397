// `grpo sft` end to end on a tiny model built from scratch (synthetic data, a tokenizer trained
// by the run), plain-text SFT from a JSONL file, and the `model.init: sft` stage of grpo train:
// trained once, reused while its config is the same, refused when it changed, cycles refused.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "../support/jsonl.h"
#include "../support/run_cli.h"

namespace fs = std::filesystem;
using grpo::testing::read_jsonl;
using grpo::testing::run_cli;
using grpo::testing::shell_quote;

namespace {

void write(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A tiny SFT stage: 4 steps on generated arithmetic with a tokenizer trained by the run.
std::string sft_yaml(double lr) {
  return R"(model:
  init: random
  architecture: {hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1,
                 num_attention_heads: 2, num_key_value_heads: 1, max_position_embeddings: 128}
tokenizer:
  template: plain
  train: {vocab_size: 400, split_digits: false}
data:
  synthetic:
    - {task: arithmetic, n: 64, seed: 0, difficulty: easy}
sft: {batch_size: 8}
trainer: {steps: 4, lr: )" +
         std::to_string(lr) + R"(, device: cpu}
logging: {tensorboard: false}
checkpoint: {every: 0, keep_last: 1}
)";
}

class Sft : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("grpo_sft_cli_" + std::to_string(getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string q(const fs::path& p) const { return shell_quote(p.string()); }
  fs::path root_;
};

TEST_F(Sft, TrainsFromSyntheticDataWithItsOwnTokenizer) {
  write(root_ / "sft.yaml", sft_yaml(1e-3));
  const auto run = root_ / "run";
  const auto r =
      run_cli("--log-level warn sft --config " + q(root_ / "sft.yaml") + " --run-dir " + q(run));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(run / "tokenizer" / "tokenizer.model"));
  EXPECT_FALSE(fs::exists(run / "tokenizer_corpus.jsonl"));  // removed after training
  const auto metrics = read_jsonl(run / "metrics.jsonl");
  ASSERT_EQ(metrics.size(), 4u);
  for (const auto& m : metrics) {
    for (const char* key : {"loss", "token_accuracy", "grad_norm", "lr", "epoch", "tokens",
                            "truncated_frac", "throughput/tokens_per_s", "time/step"})
      EXPECT_TRUE(m.contains(key)) << key;
    EXPECT_GT(m.at("tokens").get<double>(), 0);
    EXPECT_GE(m.at("token_accuracy").get<double>(), 0);
    EXPECT_LE(m.at("token_accuracy").get<double>(), 1);
  }
  EXPECT_DOUBLE_EQ(metrics.back().at("epoch").get<double>(), 0.5);  // 4 x 8 of 64
  const auto policy = run / "checkpoints" / "step_000004" / "policy";
  EXPECT_TRUE(fs::exists(policy / "config.json"));
  EXPECT_TRUE(fs::exists(policy / "model.safetensors"));
  EXPECT_TRUE(fs::exists(policy / "tokenizer.model"));  // the trained tokenizer travels along
  // The policy folder is a model of its own: sampling from it works.
  const auto gen = run_cli("--log-level warn generate --model " + q(policy) +
                           " --prompt 'Calculate 2 + 3.' --n 1 --max-new-tokens 4");
  EXPECT_EQ(gen.exit_code, 0) << gen.err;
}

// validation: in grpo sft samples held-out items with the model being trained, before the
// first step and every 2 steps; the last figures equal grpo eval of the final checkpoint. With
// model.lora the stage trains adapters and its checkpoint has the PEFT adapter folder.
TEST_F(Sft, ValidatesDuringTrainingAndTrainsLoraAdapters) {
  write(root_ / "sft.yaml",
        sft_yaml(3e-3) +
            "reward: {functions: [{name: math_boxed}]}\n"
            "validation:\n"
            "  synthetic: [{task: arithmetic, n: 6, seed: 9, difficulty: easy}]\n"
            "  every: 2\n  n: 2\n  max_new_tokens: 12\n");
  const auto run = root_ / "run";
  auto r =
      run_cli("--log-level warn sft --config " + q(root_ / "sft.yaml") + " --run-dir " + q(run));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto metrics = read_jsonl(run / "metrics.jsonl");
  ASSERT_EQ(metrics.size(), 5u);  // step 0 and the 4 steps
  for (size_t i = 0; i < metrics.size(); ++i) {
    EXPECT_EQ(metrics[i].contains("val/pass@1"), i % 2 == 0) << "step " << i;
    EXPECT_EQ(metrics[i].contains("loss"), i > 0) << "step " << i;
  }
  const auto checkpoint = run / "checkpoints" / "step_000004";
  const auto summary = root_ / "summary.json";
  // grpo eval reads items from a file: the validation items as the data verb makes them.
  r = run_cli("data make --task arithmetic --n 6 --seed 9 --difficulty easy --out " +
              q(root_ / "val.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli("--log-level warn eval --model " + q(checkpoint / "policy") + " --data " +
              q(root_ / "val.jsonl") + " --config " + q(root_ / "sft.yaml") +
              " --n 2 --max-new-tokens 12 --summary " + q(summary));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto figures = nlohmann::json::parse(slurp(summary));
  for (const char* key : {"pass@1", "pass@2", "response_length/mean", "reward/mean"}) {
    EXPECT_EQ(metrics.back().at(std::string("val/") + key), figures.at(key)) << key;
  }

  const auto lora = root_ / "lora";
  r = run_cli("--log-level warn sft --config " + q(root_ / "sft.yaml") + " --run-dir " + q(lora) +
              " --set model.lora.rank=2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(lora / "checkpoints/step_000004/adapter/adapter_model.safetensors"));
  EXPECT_TRUE(read_jsonl(lora / "metrics.jsonl").back().contains("val/pass@1"));
}

// trainer.gradient_checkpointing recomputes each layer in the backward: the same losses and
// gradient norms, step after step (SFT samples nothing, so every step compares).
// Gradient checkpointing, and micro-batches cut by a token budget (40 tokens, padding included)
// instead of 4 rows, give the plain split's losses, gradient norms and token accuracies up to
// rounding.
TEST_F(Sft, CheckpointingAndTokenBudgetTrainLikeThePlainSplit) {
  write(root_ / "sft.yaml", sft_yaml(1e-3));
  std::vector<std::vector<nlohmann::json>> runs;
  const std::vector<std::string> variants{"", " --set trainer.gradient_checkpointing=true",
                                          " --set trainer.max_tokens_per_micro_batch=40"};
  for (size_t v = 0; v < variants.size(); ++v) {
    const auto run = root_ / ("variant_" + std::to_string(v));
    const auto r =
        run_cli("--log-level warn sft --config " + q(root_ / "sft.yaml") + " --run-dir " + q(run) +
                " --set model.architecture.num_hidden_layers=2"
                " --set trainer.micro_batch_size=4" +
                variants[v]);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    runs.push_back(read_jsonl(run / "metrics.jsonl"));
    ASSERT_EQ(runs.back().size(), 4u) << variants[v];
  }
  for (size_t step = 0; step < 4; ++step) {
    EXPECT_EQ(runs[0][step].at("micro_batches").get<double>(), 2.0);
    EXPECT_GT(runs[2][step].at("micro_batches").get<double>(), 2.0);
    for (size_t v = 1; v < variants.size(); ++v) {
      for (const char* key : {"loss", "grad_norm", "token_accuracy"}) {
        const double a = runs[v][step].at(key).get<double>();
        const double b = runs[0][step].at(key).get<double>();
        EXPECT_NEAR(a, b, 1e-5 * (1 + std::abs(b)))
            << variants[v] << " " << key << ", step " << step + 1;
      }
    }
  }
}

TEST_F(Sft, PlainTextFromJsonl) {
  write(root_ / "sft.yaml", sft_yaml(1e-3));
  ASSERT_EQ(run_cli("--log-level warn sft --config " + q(root_ / "sft.yaml") + " --run-dir " +
                    q(root_ / "base"))
                .exit_code,
            0);
  write(root_ / "text.jsonl", "{\"text\": \"2 + 2 = 4.\"}\n{\"text\": \"3 + 4 = 7.\"}\n");
  write(root_ / "text.yaml", "model: {init: pretrained, path: " +
                                 (root_ / "base/checkpoints/step_000004/policy").string() +
                                 "}\ndata: {train_files: [" + (root_ / "text.jsonl").string() +
                                 "]}\nsft: {format: text, batch_size: 2}\n"
                                 "trainer: {steps: 2, lr: 1.0e-3, device: cpu}\n"
                                 "logging: {tensorboard: false}\n");
  const auto r = run_cli("--log-level warn sft --config " + q(root_ / "text.yaml") + " --run-dir " +
                         q(root_ / "text"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto metrics = read_jsonl(root_ / "text" / "metrics.jsonl");
  ASSERT_EQ(metrics.size(), 2u);
  EXPECT_GT(metrics[0].at("tokens").get<double>(), 10);  // every token of both texts counts

  // A record without the field is an error naming the file and line.
  write(root_ / "bad.jsonl", "{\"text\": \"ok\"}\n{\"txt\": \"typo\"}\n");
  const auto bad = run_cli("--log-level warn sft --config " + q(root_ / "text.yaml") +
                           " --set data.train_files=[" + q(root_ / "bad.jsonl") + "] --run-dir " +
                           q(root_ / "bad"));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("bad.jsonl:2"), std::string::npos) << bad.err;
}

TEST_F(Sft, GrpoTrainRunsTheStageOnceAndReusesIt) {
  write(root_ / "sft.yaml", sft_yaml(1e-3));
  write(root_ / "grpo.yaml", "model: {init: sft, sft_config: " + (root_ / "sft.yaml").string() +
                                 "}\ntokenizer: {template: plain}\n"
                                 "data:\n  synthetic:\n"
                                 "    - {task: arithmetic, n: 16, seed: 1, difficulty: easy}\n"
                                 "rollout: {n: 2, max_new_tokens: 8}\n"
                                 "reward:\n  functions:\n    - {name: math_boxed}\n"
                                 "trainer: {steps: 1, prompts_per_step: 2, device: cpu}\n"
                                 "logging: {tensorboard: false}\n");
  const auto run = root_ / "run";
  const std::string train = "train --config " + q(root_ / "grpo.yaml") + " --run-dir " + q(run);
  const auto first = run_cli(train);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE((first.out + first.err).find("training the SFT stage"), std::string::npos) << first.err;
  const auto stage = run / "sft" / "checkpoints" / "step_000004" / "policy";
  EXPECT_TRUE(fs::exists(stage / "model.safetensors"));
  // The run's resolved config names the stage's policy as its model (and tokenizer).
  EXPECT_NE(slurp(run / "config.resolved.yaml").find(stage.string()), std::string::npos);

  const auto second = run_cli(train);
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE((second.out + second.err).find("reusing the SFT stage"), std::string::npos)
      << second.err;
  EXPECT_EQ((second.out + second.err).find("training the SFT stage"), std::string::npos)
      << second.err;

  // The stage's config changed: its output no longer matches, and nothing is overwritten.
  write(root_ / "sft.yaml", sft_yaml(2e-3));
  const auto changed = run_cli(train);
  EXPECT_EQ(changed.exit_code, 2);
  EXPECT_NE(changed.err.find("trained with another config"), std::string::npos) << changed.err;
  EXPECT_NE(changed.err.find("trainer.lr 0.001 -> 0.002"), std::string::npos) << changed.err;
  // ... unless the stage runs elsewhere.
  const auto elsewhere = run_cli(train + " --set model.sft_run_dir=" + q(root_ / "sft2"));
  EXPECT_EQ(elsewhere.exit_code, 0) << elsewhere.err;
  EXPECT_TRUE(fs::exists(root_ / "sft2" / "checkpoints" / "step_000004"));
}

TEST_F(Sft, StageErrors) {
  // A stage naming itself.
  write(root_ / "loop.yaml",
        "model: {init: sft, sft_config: " + (root_ / "loop.yaml").string() + "}\n");
  const auto loop =
      run_cli("sft --config " + q(root_ / "loop.yaml") + " --run-dir " + q(root_ / "loop"));
  EXPECT_EQ(loop.exit_code, 2);
  EXPECT_NE(loop.err.find("cycle"), std::string::npos) << loop.err;
  // init: sft without a stage config, and a stage config that does not exist.
  const auto none = run_cli("config check /dev/null --set model.init=sft");
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err.find("model.sft_config"), std::string::npos) << none.err;
  write(root_ / "missing.yaml",
        "model: {init: sft, sft_config: " + (root_ / "nope.yaml").string() + "}\n");
  const auto missing =
      run_cli("sft --config " + q(root_ / "missing.yaml") + " --run-dir " + q(root_ / "missing"));
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.err.find("nope.yaml"), std::string::npos) << missing.err;
}

}  // namespace
