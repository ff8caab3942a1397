// Data-parallel GRPO end to end on the CPU with Gloo (grpo launch, two ranks on this host): two
// ranks with 2 prompts each end where one process with 4 prompts does; every rank resumes from
// rank 0's checkpoints; a killed rank makes the other exit with a clear error. Plus the metric
// reduction rules and the single-process identity, in-process.
#include "grpo/train/data_parallel.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <tuple>

#include "../support/gloo.h"
#include "../support/run_cli.h"
#include "../support/spawn.h"
#include "grpo/model/checkpoint.h"
#include "grpo/train/checkpoint.h"

namespace fs = std::filesystem;
using grpo::testing::run_cli;
using grpo::testing::shell_quote;

namespace {

// A tiny qwen2 from scratch; the reward is a pure function of each sample's text (an awk
// one-liner through the external reward), so groups have differing rewards and the policy moves
// from its first step on. AdamW's step lr * m / (sqrt(v) + eps) has sensitivity lr / eps to a
// gradient near zero; the two runs' gradients differ by fp32 summation-order round-off
// (~1e-9 here), which the default eps 1e-8 would amplify to ~1e-4 (3e-6 measured), so eps is
// 1e-5: lr / eps * 1e-9 = 1e-7 (3e-8 measured) under the 1e-6 the test asserts.
const char* kConfig = R"(model:
  init: random
  seed: 0
  architecture:
    model_type: qwen2
    hidden_size: 32
    intermediate_size: 64
    num_hidden_layers: 2
    num_attention_heads: 4
    num_key_value_heads: 2
    max_position_embeddings: 128
tokenizer:
  path: tok
  template: plain
data:
  train_files: [arith.jsonl]
  max_prompt_tokens: 96
rollout:
  n: 4
  max_new_tokens: 16
reward:
  functions:
    - name: external
      options: {command: "awk '{print length($0) % 7}'"}
algorithm:
  beta: 0.001
  loss_aggregation: token_mean
trainer:
  steps: 2
  prompts_per_step: 4
  micro_batch_size: 4
  lr: 1.0e-3
  adam_eps: 1.0e-5
  seed: 0
  device: cpu
logging:
  samples_per_step: 2
  tensorboard: false
distributed:
  timeout_s: 30
checkpoint:
  every: 1
  keep_last: 5
)";

// A tiny SFT run (and SFT stage): 3 steps of 5 examples in micro-batches of 2, with a
// tokenizer the run trains.
const char* kSftConfig = R"(model:
  init: random
  architecture: {hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
                 num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128}
tokenizer:
  template: plain
  train: {vocab_size: 500}
data: {train_files: [arith.jsonl], prompt_field: prompt}
sft: {batch_size: 5}
trainer: {steps: 3, micro_batch_size: 2, lr: 1.0e-3, adam_eps: 1.0e-5, device: cpu}
logging: {tensorboard: false}
checkpoint: {every: 1, keep_last: 5}
)";

class DataParallelTrain : public ::testing::Test {
 protected:
  void SetUp() override { GRPO_REQUIRE_GLOO(); }
  static void SetUpTestSuite() {
    dir_ = fs::temp_directory_path() / ("grpo_dp_train_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    const std::string d = shell_quote(dir_.string());
    auto r = run_cli(
        "data make --task arithmetic --n 64 --seed 0 --difficulty easy "
        "--with-solutions --out " +
        d + "/arith.jsonl");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = run_cli("tokenizer train --input " + d +
                "/arith.jsonl --field response --vocab-size 400 "
                "--model-type bpe --user-symbols '<think>,</think>,<answer>,</answer>' --out " +
                d + "/tok");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::ofstream(dir_ / "cfg.yaml") << kConfig;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  // `grpo [launch ... --] train` in the suite's folder (relative paths in the config).
  static grpo::testing::CliResult train(const std::string& launch, const std::string& run_dir,
                                        const std::string& extra = "") {
    return run_cli("--log-level warn " + launch + " train --config cfg.yaml --run-dir " + run_dir +
                   " " + extra);
  }

  static fs::path dir_;
};
fs::path DataParallelTrain::dir_;

// cd into the suite folder for the CLI runs (the config's paths are relative).
struct InDir {
  explicit InDir(const fs::path& d) : previous(fs::current_path()) { fs::current_path(d); }
  ~InDir() { fs::current_path(previous); }
  fs::path previous;
};

std::map<std::string, at::Tensor> policy(const fs::path& checkpoint) {
  auto model = grpo::model::load_hf((checkpoint / "policy").string(), at::kFloat);
  std::map<std::string, at::Tensor> out;
  for (const auto& item : model->named_parameters()) out[item.key()] = item.value().detach();
  return out;
}

double max_diff(const std::map<std::string, at::Tensor>& a,
                const std::map<std::string, at::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double m = 0;
  for (const auto& [name, t] : a) {
    m = std::max(m, (t - b.at(name)).abs().max().item<double>());
  }
  return m;
}

// Mean |a - b| over every parameter element.
double mean_diff(const std::map<std::string, at::Tensor>& a,
                 const std::map<std::string, at::Tensor>& b) {
  double sum = 0, n = 0;
  for (const auto& [name, t] : a) {
    sum += (t - b.at(name)).abs().sum().item<double>();
    n += static_cast<double>(t.numel());
  }
  return sum / n;
}

std::vector<nlohmann::json> metrics(const fs::path& run) {
  std::vector<nlohmann::json> out;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::vector<std::string> read_lines(const fs::path& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

TEST_F(DataParallelTrain, TwoRanksEqualOneRankOnTheWholeBatchAndResume) {
  InDir in(dir_);
  auto one = train("", "one");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto two = train("launch --nproc-per-node 2 --", "two");
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;

  // The same prompts and samples: every step's reward statistics agree exactly.
  const auto m1 = metrics(dir_ / "one"), m2 = metrics(dir_ / "two");
  ASSERT_EQ(m1.size(), 2u);
  ASSERT_EQ(m2.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(m1[i]["reward/mean"], m2[i]["reward/mean"]) << "step " << i + 1;
    EXPECT_EQ(m1[i]["reward/std"], m2[i]["reward/std"]) << "step " << i + 1;
    EXPECT_NEAR(m1[i]["grad_norm"].get<double>(), m2[i]["grad_norm"].get<double>(), 1e-5);
  }
  // The policy moved, and both runs moved it to the same place.
  const auto p1 = policy(dir_ / "one/checkpoints/step_000002");
  const auto p2 = policy(dir_ / "two/checkpoints/step_000002");
  EXPECT_GT(max_diff(p1, policy(dir_ / "one/checkpoints/step_000001")), 1e-4);
  const double diff = max_diff(p1, p2);
  std::cout << "max |2 ranks - 1 rank| over the parameters after 2 steps: " << diff << "\n";
  EXPECT_LT(diff, 1e-6);
  // Only rank 0 writes: one line per step, no rank-1 files.
  EXPECT_FALSE(fs::exists(dir_ / "two/checkpoints/step_000002.tmp"));

  // Every rank resumes from rank 0's step-1 checkpoint and redoes step 2 exactly.
  fs::copy(dir_ / "two", dir_ / "resumed", fs::copy_options::recursive);
  fs::remove_all(dir_ / "resumed/checkpoints/step_000002");
  auto resumed = train("launch --nproc-per-node 2 --", "resumed", "--resume auto");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_LT(max_diff(p2, policy(dir_ / "resumed/checkpoints/step_000002")), 1e-6);
  const auto m3 = metrics(dir_ / "resumed");
  ASSERT_EQ(m3.size(), 2u);
  EXPECT_EQ(m3[1]["reward/mean"], m2[1]["reward/mean"]);
}

// Validation over two ranks (each samples a contiguous share of the items with the seeds one
// process would use, and the sums are added) gives the figures and samples of one process. 7
// items: the shares are unequal (3 and 4), and the second rank's holds items of both sources
// (4 + 3 items), whose own figures (val/<source>/*) are summed over the ranks too.
TEST_F(DataParallelTrain, ValidationOverTwoRanksEqualsOneProcess) {
  InDir in(dir_);
  {
    const auto lines = read_lines(dir_ / "arith.jsonl");
    std::ofstream first(dir_ / "val1.jsonl"), second(dir_ / "val2.jsonl");
    for (size_t i = 0; i < 7; ++i) (i < 4 ? first : second) << lines[i] << "\n";
  }
  const std::string val =
      "--set trainer.steps=1 --set validation.files=[val1.jsonl,val2.jsonl] "
      "--set validation.n=2 --set validation.pass_reward=external";
  auto one = train("", "val_one", val);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto two = train("launch --nproc-per-node 2 --", "val_two", val);
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
  const auto m1 = metrics(dir_ / "val_one"), m2 = metrics(dir_ / "val_two");
  ASSERT_EQ(m1.size(), 2u);  // step 0 (before training) and step 1 (the last)
  ASSERT_EQ(m2.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    int figures = 0;
    for (const auto& [key, value] : m1[i].items()) {
      if (key.rfind("val/", 0) != 0) continue;
      ++figures;
      ASSERT_TRUE(m2[i].contains(key)) << key;
      EXPECT_NEAR(m2[i].at(key).get<double>(), value.get<double>(), 1e-12) << key;
    }
    EXPECT_GE(figures, 18) << "step " << i;  // the whole set's, val1's and val2's
    EXPECT_TRUE(m1[i].contains("val/val2/pass@1")) << "step " << i;
  }
  // The external reward (length % 7 >= 1) passes some samples and fails others.
  EXPECT_GT(m1[0].at("val/pass@1").get<double>(), 0.0);
  EXPECT_LT(m1[0].at("val/pass@1").get<double>(), 1.0);
  // Each rank wrote its share of the per-item results; together they are one process's.
  for (const char* step : {"step_000000", "step_000001"}) {
    auto whole = read_lines(dir_ / "val_one/validation" / (std::string(step) + ".jsonl"));
    auto first = read_lines(dir_ / "val_two/validation" / (std::string(step) + ".rank0.jsonl"));
    const auto second =
        read_lines(dir_ / "val_two/validation" / (std::string(step) + ".rank1.jsonl"));
    EXPECT_EQ(first.size(), 3u);
    EXPECT_EQ(second.size(), 4u);
    first.insert(first.end(), second.begin(), second.end());
    EXPECT_EQ(first, whole) << step;
  }
}

// With trainer.gradient_checkpointing the parameters' gradients come out of the recomputed layers'
// backward; two ranks still step as one rank on the whole batch does. (That the accumulator hooks,
// which start bucket all-reduces during the backward, see those gradients is checked in
// tests/model/recompute_test.cpp.)
TEST_F(DataParallelTrain, TwoRanksWithGradientCheckpointingEqualOneRankWithout) {
  InDir in(dir_);
  auto one = train("", "ckpt_one");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto two = train("launch --nproc-per-node 2 --", "ckpt_two",
                   "--set trainer.gradient_checkpointing=true");
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
  const auto p1 = policy(dir_ / "ckpt_one/checkpoints/step_000002");
  EXPECT_GT(max_diff(p1, policy(dir_ / "ckpt_one/checkpoints/step_000001")), 1e-4);
  EXPECT_LT(max_diff(p1, policy(dir_ / "ckpt_two/checkpoints/step_000002")), 1e-6);
}

// distributed.shard_optimizer: each rank keeps half of the AdamW moments and steps its half, and
// the run ends where the unsharded two-rank run does. The checkpoints are interchangeable: the
// sharded run's step-1 checkpoint resumed without sharding, and the unsharded run's with it,
// both redo step 2 (distributed.* is among the keys a resume may change: no --force-resume).
TEST_F(DataParallelTrain, ShardedOptimizerStepsAsWholeAndSharesCheckpoints) {
  InDir in(dir_);
  const std::string launch = "launch --nproc-per-node 2 --";
  const std::string shard = "--set distributed.shard_optimizer=true";
  auto whole = train(launch, "zero_whole");
  ASSERT_EQ(whole.exit_code, 0) << whole.out << whole.err;
  auto sharded = train(launch, "zero_sharded", shard);
  ASSERT_EQ(sharded.exit_code, 0) << sharded.out << sharded.err;
  const auto p_whole = policy(dir_ / "zero_whole/checkpoints/step_000002");
  const auto p_sharded = policy(dir_ / "zero_sharded/checkpoints/step_000002");
  EXPECT_GT(max_diff(p_whole, policy(dir_ / "zero_whole/checkpoints/step_000001")), 1e-4);
  const double diff = max_diff(p_whole, p_sharded);
  std::cout << "max |sharded - whole optimizer| over the parameters after 2 steps: " << diff
            << "\n";
  EXPECT_LT(diff, 1e-6);

  const std::vector<std::tuple<std::string, std::string, std::string>> resumes{
      {"zero_sharded", "zero_to_whole", ""}, {"zero_whole", "zero_to_sharded", shard}};
  for (const auto& [from, to, extra] : resumes) {
    fs::copy(dir_ / from, dir_ / to, fs::copy_options::recursive);
    fs::remove_all(dir_ / to / "checkpoints/step_000002");
    auto resumed = train(launch, to, extra + " --resume auto");
    ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
    const auto p_from = from == "zero_whole" ? p_whole : p_sharded;
    EXPECT_LT(max_diff(p_from, policy(dir_ / to / "checkpoints/step_000002")), 1e-6) << to;
  }
}

// algorithm.top_entropy_quantile ranks the tokens over the whole step's batch (every rank's
// share): two ranks select the same tokens, with the same threshold, as one process, and end
// where it does.
TEST_F(DataParallelTrain, TopEntropyTokensAreChosenOverAllRanks) {
  InDir in(dir_);
  const std::string quantile = "--set algorithm.top_entropy_quantile=0.3";
  auto one = train("", "entropy_one", quantile);
  ASSERT_EQ(one.exit_code, 0) << one.out << one.err;
  auto two = train("launch --nproc-per-node 2 --", "entropy_two", quantile);
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
  const auto m1 = metrics(dir_ / "entropy_one"), m2 = metrics(dir_ / "entropy_two");
  ASSERT_EQ(m1.size(), 2u);
  ASSERT_EQ(m2.size(), 2u);
  // The same tokens are sampled; their entropies may differ in the last bits (a decode batch of
  // other rows rounds the logits differently), and so may the threshold.
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(m1[i]["entropy/threshold"].get<double>(), m2[i]["entropy/threshold"].get<double>(),
                1e-5);
    EXPECT_NEAR(m1[i]["entropy/selected_fraction"].get<double>(),
                m2[i]["entropy/selected_fraction"].get<double>(), 1e-3);
    const double fraction = m1[i]["entropy/selected_fraction"].get<double>();
    EXPECT_GE(fraction, 0.3);
    EXPECT_LT(fraction, 0.4);  // ties at the threshold add a few
  }
  const double diff = max_diff(policy(dir_ / "entropy_one/checkpoints/step_000002"),
                               policy(dir_ / "entropy_two/checkpoints/step_000002"));
  std::cout << "top_entropy_quantile 0.3: max |2 ranks - 1 rank| after 2 steps " << diff << "\n";
  EXPECT_LT(diff, 1e-6);
  // The selection changes the update: the plain run ends elsewhere.
  auto plain = train("", "entropy_plain");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_GT(max_diff(policy(dir_ / "entropy_one/checkpoints/step_000002"),
                     policy(dir_ / "entropy_plain/checkpoints/step_000002")),
            1e-5);
}

// bfloat16 weights over Gloo, which has no bfloat16 collectives (the process group sends them as
// float32): two ranks with sharded optimizer state train as one process does, up to bfloat16
// rounding of the summed gradients.
TEST_F(DataParallelTrain, BfloatOverTwoRanksTrainsAsOneProcess) {
  InDir in(dir_);
  const std::string bf16 = "--set model.dtype=bfloat16";
  auto one = train("", "bf16_one", bf16);
  ASSERT_EQ(one.exit_code, 0) << one.out << one.err;
  auto two = train("launch --nproc-per-node 2 --", "bf16_two",
                   bf16 + " --set distributed.shard_optimizer=true");
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
  const auto m1 = metrics(dir_ / "bf16_one"), m2 = metrics(dir_ / "bf16_two");
  ASSERT_EQ(m2.size(), 2u);
  EXPECT_EQ(m1[0]["reward/mean"], m2[0]["reward/mean"]);  // the same first rollouts
  const auto p1 = policy(dir_ / "bf16_one/checkpoints/step_000002");
  const auto p2 = policy(dir_ / "bf16_two/checkpoints/step_000002");
  const auto p1_step1 = policy(dir_ / "bf16_one/checkpoints/step_000001");
  const double moved = mean_diff(p1, p1_step1);
  const double diff = mean_diff(p1, p2);
  std::cout << "bfloat16: mean |2 ranks - 1 rank| after 2 steps " << diff << " (max "
            << max_diff(p1, p2) << "); step 2 moved the parameters by " << moved << " (max "
            << max_diff(p1, p1_step1) << ")\n";
  EXPECT_GT(moved, 1e-5);
  EXPECT_LT(diff, moved / 10);
}

// grpo sft over two ranks: each encodes a contiguous share of every batch (2 and 3 of 5
// examples), the loss is normalised by the whole batch's token count and the gradients summed,
// so the run ends where one process does; rank 0 trains the tokenizer (tokenizer.train) and
// both use it. The checkpoints resume on two ranks, and with a sharded optimizer the run is
// the same again.
TEST_F(DataParallelTrain, SftOverTwoRanksEqualsOneProcess) {
  InDir in(dir_);
  std::ofstream(dir_ / "sft.yaml") << kSftConfig;
  auto sft = [](const std::string& launch, const std::string& run_dir,
                const std::string& extra = "") {
    return run_cli("--log-level warn " + launch + " sft --config sft.yaml --run-dir " + run_dir +
                   " " + extra);
  };
  auto one = sft("", "sft_one");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto two = sft("launch --nproc-per-node 2 --", "sft_two");
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
  const auto read = [](const fs::path& p) {
    std::ifstream file(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(file)), {});
  };
  EXPECT_EQ(read(dir_ / "sft_one/tokenizer/tokenizer.model"),
            read(dir_ / "sft_two/tokenizer/tokenizer.model"));
  const auto m1 = metrics(dir_ / "sft_one"), m2 = metrics(dir_ / "sft_two");
  ASSERT_EQ(m1.size(), 3u);
  ASSERT_EQ(m2.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(m1[i]["tokens"], m2[i]["tokens"]) << "step " << i + 1;
    EXPECT_NEAR(m1[i]["loss"].get<double>(), m2[i]["loss"].get<double>(), 1e-6);
    EXPECT_NEAR(m1[i]["token_accuracy"].get<double>(), m2[i]["token_accuracy"].get<double>(),
                1e-12);
  }
  const auto p1 = policy(dir_ / "sft_one/checkpoints/step_000003");
  EXPECT_GT(max_diff(p1, policy(dir_ / "sft_one/checkpoints/step_000002")), 1e-4);
  const auto p2 = policy(dir_ / "sft_two/checkpoints/step_000003");
  const double diff = max_diff(p1, p2);
  std::cout << "grpo sft, max |2 ranks - 1 process| over the parameters after 3 steps: " << diff
            << "\n";
  EXPECT_LT(diff, 1e-6);

  fs::copy(dir_ / "sft_two", dir_ / "sft_resumed", fs::copy_options::recursive);
  fs::remove_all(dir_ / "sft_resumed/checkpoints/step_000003");
  auto resumed = sft("launch --nproc-per-node 2 --", "sft_resumed", "--resume auto");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_LT(max_diff(p2, policy(dir_ / "sft_resumed/checkpoints/step_000003")), 1e-6);

  auto sharded =
      sft("launch --nproc-per-node 2 --", "sft_sharded", "--set distributed.shard_optimizer=true");
  ASSERT_EQ(sharded.exit_code, 0) << sharded.out << sharded.err;
  EXPECT_LT(max_diff(p2, policy(dir_ / "sft_sharded/checkpoints/step_000003")), 1e-6);
}

// grpo train whose base model is an SFT stage (model.init: sft) under two ranks: the ranks train
// the stage together in their process group (ending where one process's grpo sft does), find
// rank 0's final checkpoint, and go on to GRPO from it in the same group.
TEST_F(DataParallelTrain, TwoRanksTrainTheSftStageThenGrpo) {
  InDir in(dir_);
  std::ofstream(dir_ / "stage.yaml") << kSftConfig;
  std::string rl = kConfig;
  const size_t model = rl.find("model:"), tokenizer = rl.find("tokenizer:");
  rl.replace(model, tokenizer - model, "model:\n  init: sft\n  sft_config: stage.yaml\n");
  rl.replace(rl.find("  path: tok\n"), std::string("  path: tok\n").size(), "");
  std::ofstream(dir_ / "rl.yaml") << rl;

  auto one = run_cli("--log-level warn sft --config stage.yaml --run-dir stage_one");
  ASSERT_EQ(one.exit_code, 0) << one.err;
  auto two = run_cli(
      "--log-level warn launch --nproc-per-node 2 -- train --config rl.yaml "
      "--run-dir rl_two");
  ASSERT_EQ(two.exit_code, 0) << two.out << two.err;
  EXPECT_LT(max_diff(policy(dir_ / "stage_one/checkpoints/step_000003"),
                     policy(dir_ / "rl_two/sft/checkpoints/step_000003")),
            1e-6);
  EXPECT_EQ(metrics(dir_ / "rl_two/sft").size(), 3u);
  EXPECT_EQ(metrics(dir_ / "rl_two").size(), 2u);
  EXPECT_TRUE(fs::exists(dir_ / "rl_two/checkpoints/step_000002/policy"));
}

// A rank that dies mid-run (SIGKILL, no launcher to clean up): the other one's next collective
// fails and it exits 1 with one line naming the collective and its rank, well within the
// timeout, instead of hanging.
TEST_F(DataParallelTrain, KilledRankMakesTheOtherExitWithAnError) {
  InDir in(dir_);
  const int port = grpo::testing::free_port();
  std::vector<grpo::testing::Child> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.push_back(
        grpo::testing::spawn({GRPO_CLI_PATH, "train", "--config", "cfg.yaml", "--run-dir", "killed",
                              "--set", "trainer.steps=100000", "--set", "checkpoint.every=0"},
                             grpo::testing::rank_env(r, 2, port),
                             (dir_ / ("killed" + std::to_string(r) + ".log")).string()));
  }
  // Wait until rank 0 has finished a step (metrics.jsonl has a line), then kill rank 1.
  const auto start = std::chrono::steady_clock::now();
  while (metrics(dir_ / "killed").empty() &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(60)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(metrics(dir_ / "killed").empty()) << ranks[0].log();
  kill(ranks[1].pid, SIGKILL);
  const auto killed_at = std::chrono::steady_clock::now();
  grpo::testing::wait_child(ranks[1], 10);
  grpo::testing::wait_child(ranks[0], 60);
  const double after_kill =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  const std::string log = ranks[0].log();
  std::cout << "rank 0 exited " << after_kill << " s after rank 1 was killed\n";
  EXPECT_FALSE(ranks[0].timed_out);
  EXPECT_EQ(ranks[0].exit_code, 1) << log;
  EXPECT_NE(log.find("grpo: error: distributed "), std::string::npos) << log;
  EXPECT_NE(log.find("failed on rank 0 of 2 (gloo, distributed.timeout_s = 30)"), std::string::npos)
      << log;
  EXPECT_LT(after_kill, 30 + 10);
}

// SIGINT to grpo launch reaches every rank once: they agree to stop after the same step, rank 0
// writes that step's checkpoint, and everything exits 0.
TEST_F(DataParallelTrain, LauncherForwardsAStopSignal) {
  InDir in(dir_);
  auto launcher = grpo::testing::spawn(
      {GRPO_CLI_PATH, "launch", "--nproc-per-node", "2", "--", "train", "--config", "cfg.yaml",
       "--run-dir", "stopped", "--set", "trainer.steps=100000", "--set", "checkpoint.every=0"},
      {}, (dir_ / "stopped.log").string());
  const auto start = std::chrono::steady_clock::now();
  while (metrics(dir_ / "stopped").empty() &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(60)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(metrics(dir_ / "stopped").empty()) << launcher.log();
  kill(launcher.pid, SIGINT);
  grpo::testing::wait_child(launcher, 60);
  const std::string log = launcher.log();
  EXPECT_EQ(launcher.exit_code, 0) << log;
  EXPECT_NE(log.find("launch: forwarding signal 2 to the ranks"), std::string::npos) << log;
  EXPECT_NE(log.find("[rank 1] "), std::string::npos) << log;
  // The checkpoint of the last step written, on rank 0 only.
  const auto steps = metrics(dir_ / "stopped").size();
  EXPECT_TRUE(fs::exists(dir_ / "stopped/checkpoints" /
                         grpo::train::checkpoint_dir_name(static_cast<int64_t>(steps))))
      << log;
}

TEST(DataParallel, MetricReductions) {
  using grpo::dist::Reduction;
  using grpo::train::metric_reduction;
  EXPECT_EQ(metric_reduction("reward/mean"), Reduction::mean);
  EXPECT_EQ(metric_reduction("accuracy"), Reduction::mean);
  EXPECT_EQ(metric_reduction("response_length/max"), Reduction::max);
  EXPECT_EQ(metric_reduction("logprob/recorded_vs_recomputed_max_abs_diff"), Reduction::max);
  EXPECT_EQ(metric_reduction("time/generate"), Reduction::max);
  EXPECT_EQ(metric_reduction("memory/peak_rss_mb"), Reduction::max);
  EXPECT_EQ(metric_reduction("throughput/tokens_per_s"), Reduction::sum);
  EXPECT_EQ(metric_reduction("dynamic_sampling/kept_groups"), Reduction::sum);
  EXPECT_EQ(metric_reduction("kl/min"), Reduction::min);
  EXPECT_EQ(metric_reduction("maximum/thing"), Reduction::mean);  // a word, not a prefix
}

// World size 1: no process group, and every call hands its input back.
TEST(DataParallel, OneProcessIsTheIdentity) {
  grpo::config::DistributedConfig config;
  grpo::train::DataParallel dp(config, grpo::dist::Env{}, at::kCPU);
  EXPECT_FALSE(dp.active());
  EXPECT_TRUE(dp.is_main());
  EXPECT_EQ(dp.world_size(), 1);
  EXPECT_EQ(dp.sum({1.5, 2}, "x"), (std::vector<double>{1.5, 2}));
  EXPECT_EQ(dp.gather({3, 4}, "x"), (std::vector<double>{3, 4}));
  EXPECT_EQ(dp.min(7, "x"), 7);
  EXPECT_TRUE(dp.any(true, "x"));
  EXPECT_FALSE(dp.any(false, "x"));
  grpo::metrics::StepMetrics m(1);
  m.set("reward/mean", 0.5);
  m.set("reward/std", 0.25);
  dp.reduce_metrics(m);
  EXPECT_EQ(m.get("reward/std"), 0.25);
  auto t = at::tensor({1.0, 2.0}, at::kDouble);
  dp.sum_(t, "x");
  EXPECT_EQ(t[1].item<double>(), 2.0);
}
