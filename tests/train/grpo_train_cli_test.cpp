// `grpo train` end to end on a tiny model built from scratch: the run directory's outputs,
// resume after SIGKILL ending bit-identical to an uninterrupted run, SIGTERM's final
// checkpoint, the config-hash check, dynamic sampling, the reference reset, shared prompts,
// gradient checkpointing and autocast (validation and LoRA: grpo_train_features_cli_test.cpp).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../support/jsonl.h"
#include "../support/run_cli.h"
#include "grpo_train_fixture.h"

namespace fs = std::filesystem;
using grpo::testing::GrpoTrain;
using grpo::testing::read_jsonl;
using grpo::testing::run_cli;
using grpo::testing::shell_quote;
using grpo::testing::slurp;

namespace {

TEST_F(GrpoTrain, TinyRunWritesEveryOutput) {
  const auto run = root_ / "tiny";
  const auto r = run_cli(run_args(run, 3));
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // The resolved config is a complete, valid config of its own.
  const auto resolved = run / "config.resolved.yaml";
  ASSERT_TRUE(fs::exists(resolved));
  EXPECT_EQ(run_cli("config check " + shell_quote(resolved.string())).exit_code, 0);

  const auto metrics = read_jsonl(run / "metrics.jsonl");
  ASSERT_EQ(metrics.size(), 3u);
  for (size_t i = 0; i < metrics.size(); ++i) {
    const auto& m = metrics[i];
    EXPECT_EQ(m.at("step").get<int>(), static_cast<int>(i) + 1);
    for (const char* key : {"reward/mean",
                            "reward/std",
                            "accuracy",
                            "format_rate",
                            "response_length/mean",
                            "response_length/max",
                            "response_length/truncated_fraction",
                            "kl/mean",
                            "entropy/mean",
                            "clip_frac/low",
                            "clip_frac/high",
                            "grad_norm",
                            "lr",
                            "loss",
                            "time/step",
                            "time/generate",
                            "time/reward",
                            "time/ref",
                            "time/update",
                            "throughput/tokens_per_s",
                            "memory/peak_rss_mb",
                            "zero_variance_groups",
                            "reflection/per_completion",
                            "reward/overlong_penalty/mean"}) {
      EXPECT_TRUE(m.contains(key)) << "step " << i + 1 << " lacks " << key;
    }
    EXPECT_LE(m.at("response_length/max").get<double>(), 32.0);  // rollout.max_new_tokens
    // The first ratio of a step is exactly the recorded behaviour log-prob's (mu = 1).
    EXPECT_NEAR(m.at("ratio/mean").get<double>(), 1.0, 1e-5);
  }
  // The untrained model is mostly cut at max_new_tokens, so the overlong penalty is positive.
  EXPECT_GT(metrics[0].at("reward/overlong_penalty/mean").get<double>(), 0.0);

  const auto samples = read_jsonl(run / "samples.jsonl");
  ASSERT_EQ(samples.size(), 3u * 2u);  // logging.samples_per_step = 2
  for (const char* key : {"step", "prompt", "completion", "reward", "advantage", "finish_reason"}) {
    EXPECT_TRUE(samples[0].contains(key)) << key;
  }

  bool has_events = false;
  for (const auto& entry : fs::directory_iterator(run)) {
    has_events |= entry.path().filename().string().rfind("events.out.tfevents.", 0) == 0;
  }
  EXPECT_TRUE(has_events);

  // Checkpoints at step 2 (every: 2) and the final step 3; the policy folder is a model that
  // grpo generate loads with its tokenizer.
  EXPECT_TRUE(fs::exists(policy_weights(run, 2)));
  ASSERT_TRUE(fs::exists(policy_weights(run, 3)));
  const auto policy = policy_weights(run, 3).parent_path();
  EXPECT_TRUE(fs::exists(policy / "config.json"));
  EXPECT_TRUE(fs::exists(policy.parent_path() / "trainer_state.json"));
  const auto g = run_cli("generate --model " + shell_quote(policy.string()) +
                         " --prompt 'Calculate 1 + 2.' --max-new-tokens 4 --seed 1");
  EXPECT_EQ(g.exit_code, 0) << g.err;
  EXPECT_NE(g.out.find("completion"), std::string::npos) << g.out;
}

TEST_F(GrpoTrain, ResumeFromACheckpointEndsBitIdentical) {
  const auto full = root_ / "full";
  ASSERT_EQ(run_cli(run_args(full, 6)).exit_code, 0);

  // A run that only has the uninterrupted run's step-2 checkpoint continues from it.
  const auto resumed = root_ / "resumed";
  fs::create_directories(resumed / "checkpoints");
  fs::copy(full / "checkpoints" / "step_000002", resumed / "checkpoints" / "step_000002",
           fs::copy_options::recursive);
  const auto r = run_cli(run_args(resumed, 6, "--resume auto"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(fs::exists(policy_weights(resumed, 6)));
  EXPECT_EQ(slurp(policy_weights(resumed, 6)), slurp(policy_weights(full, 6)));
  EXPECT_NE(slurp(policy_weights(full, 2)), slurp(policy_weights(full, 6)));  // it did train

  // The resumed run's metrics continue at step 3 with the same rewards.
  const auto a = read_jsonl(full / "metrics.jsonl");
  const auto b = read_jsonl(resumed / "metrics.jsonl");
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(b.front().at("step").get<int>(), 3);
  for (size_t i = 0; i < b.size(); ++i) {
    EXPECT_EQ(b[i].at("reward/mean").get<double>(), a[i + 2].at("reward/mean").get<double>());
    EXPECT_EQ(b[i].at("loss").get<double>(), a[i + 2].at("loss").get<double>());
  }
}

// Starts `grpo <args>` (shell words) in the background; returns its pid.
pid_t spawn_cli(const std::string& args) {
  const std::string command = "exec " + std::string(GRPO_CLI_PATH) + " " + args + " 2>/dev/null";
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// Waits until `path` exists or the process exits; true when it exists.
bool wait_for(const fs::path& path, pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  while (std::chrono::steady_clock::now() < deadline) {
    if (fs::exists(path)) return true;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return fs::exists(path);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

TEST_F(GrpoTrain, SigkillThenResumeAutoMatchesTheUninterruptedRun) {
  const int steps = 10;
  const auto full = root_ / "kill_full";
  ASSERT_EQ(run_cli(run_args(full, steps)).exit_code, 0);

  const auto killed = root_ / "killed";
  const pid_t pid = spawn_cli(run_args(killed, steps));
  ASSERT_GT(pid, 0);
  const bool reached = wait_for(killed / "checkpoints" / "step_000002", pid);
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(reached) << "the run never wrote its first checkpoint";

  const auto r = run_cli(run_args(killed, steps, "--resume auto"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(slurp(policy_weights(killed, steps)), slurp(policy_weights(full, steps)));
  const auto metrics = read_jsonl(killed / "metrics.jsonl");
  ASSERT_EQ(metrics.size(), static_cast<size_t>(steps));  // no step twice, none missing
  for (int i = 0; i < steps; ++i) EXPECT_EQ(metrics[i].at("step").get<int>(), i + 1);
}

// SIGTERM finishes the step and writes a checkpoint. While the run goes, a second grpo train on
// its directory stops at once naming it (the run directory's lock), and leaves its files alone.
TEST_F(GrpoTrain, SigtermFinishesTheStepAndCheckpoints) {
  const auto run = root_ / "term";
  const pid_t pid = spawn_cli(run_args(run, 1000));
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(wait_for(run / "metrics.jsonl", pid));
  const std::string config_before = slurp(run / "config.resolved.yaml");
  const auto second = run_cli(run_args(run, 1000, "--set trainer.lr=0.5"));
  EXPECT_EQ(second.exit_code, 2) << second.err;
  EXPECT_NE(second.err.find("run directory " + run.string() +
                            " is in use by another grpo run (pid " + std::to_string(pid) + " on "),
            std::string::npos)
      << second.err;
  EXPECT_EQ(slurp(run / "config.resolved.yaml"), config_before);
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  const auto metrics = read_jsonl(run / "metrics.jsonl");
  ASSERT_FALSE(metrics.empty());
  const int last = metrics.back().at("step").get<int>();
  EXPECT_LT(last, 1000);
  EXPECT_TRUE(fs::exists(policy_weights(run, last))) << "no checkpoint at step " << last;
}

TEST_F(GrpoTrain, ResumeWithAnotherConfigIsAConfigError) {
  const auto run = root_ / "hash";
  ASSERT_EQ(run_cli(run_args(run, 2)).exit_code, 0);
  const auto r = run_cli(run_args(run, 2, "--resume auto --set trainer.lr=0.5"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("config"), std::string::npos) << r.err;
}

TEST_F(GrpoTrain, DynamicSamplingDropsFlatGroups) {
  // Without the overlong penalty the untrained model scores 0 everywhere: every group is flat,
  // dynamic sampling spends its rounds, keeps nothing and skips the update.
  const auto flat = root_ / "ds_flat";
  auto r =
      run_cli(run_args(flat, 1,
                       "--set algorithm.overlong_buffer=0 --set algorithm.dynamic_sampling=true "
                       "--set algorithm.max_sampling_rounds=3"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto m = read_jsonl(flat / "metrics.jsonl").at(0);
  EXPECT_EQ(m.at("dynamic_sampling/rounds").get<double>(), 3.0);
  EXPECT_EQ(m.at("dynamic_sampling/kept_groups").get<double>(), 0.0);
  EXPECT_EQ(m.at("zero_variance_groups").get<double>(), 1.0);
  EXPECT_FALSE(m.contains("loss"));

  // With the penalty, lengths differ inside groups: a full batch of groups is kept.
  const auto varied = root_ / "ds_varied";
  r = run_cli(run_args(varied, 1, "--set algorithm.dynamic_sampling=true"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  m = read_jsonl(varied / "metrics.jsonl").at(0);
  EXPECT_EQ(m.at("dynamic_sampling/kept_groups").get<double>(), 4.0);  // prompts_per_step
  EXPECT_TRUE(m.contains("loss"));
}

TEST_F(GrpoTrain, RecomputedOldLogprobsMatchTheRecordedOnes) {
  const auto run = root_ / "recompute";
  const auto r = run_cli(run_args(run, 2, "--set algorithm.old_logprobs=recompute"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const auto& m : read_jsonl(run / "metrics.jsonl")) {
    // Same module, same weights: the KV-cache decode and the full forward agree to rounding.
    EXPECT_LT(m.at("logprob/recorded_vs_recomputed_max_abs_diff").get<double>(), 1e-4);
  }
}

// From the same weights and samples, running each prompt once (the default) gives whole rows'
// loss, gradient norm and entropy up to rounding, and reports that it shared. Compared up to
// the first step that moves the weights (the untrained model's first groups can be flat);
// after it, rounding may change the samples.
TEST_F(GrpoTrain, SharedPromptsTrainLikeWholeRows) {
  const auto runs = four_step_runs("trainer.share_prompts", {"true", "false"});
  expect_same_updates(runs, {"loss", "grad_norm", "entropy/mean"},
                      [](const nlohmann::json& shared, const nlohmann::json& whole, size_t step) {
                        EXPECT_EQ(shared.at("shared_prompts").get<double>(), 1.0) << step;
                        EXPECT_EQ(whole.at("shared_prompts").get<double>(), 0.0) << step;
                      });
}

// trainer.gradient_checkpointing (with shared prompts, whose recorded keys and values come out
// of recomputed layers) gives ordinary autograd's loss, gradient norm and entropy up to
// rounding; compared as SharedPromptsTrainLikeWholeRows is.
TEST_F(GrpoTrain, GradientCheckpointingTrainsLikeOrdinaryAutograd) {
  const auto runs = four_step_runs("trainer.gradient_checkpointing", {"false", "true"});
  expect_same_updates(runs, {"loss", "grad_norm", "entropy/mean", "kl/mean"},
                      [](const nlohmann::json& plain, const nlohmann::json& ckpt, size_t step) {
                        EXPECT_EQ(ckpt.at("shared_prompts"), plain.at("shared_prompts")) << step;
                      });
}

// trainer.max_tokens_per_micro_batch splits each minibatch into more, smaller micro-batches (48
// tokens each at most, padding included; the rows run 20-60 tokens) with the same loss, gradient
// norm and entropy up to rounding.
TEST_F(GrpoTrain, TokenBudgetMicroBatchesTrainLikeFixedOnes) {
  const auto runs = four_step_runs("trainer.max_tokens_per_micro_batch", {"0", "48"});
  expect_same_updates(runs, {"loss", "grad_norm", "entropy/mean", "kl/mean"},
                      [](const nlohmann::json& fixed, const nlohmann::json& budget, size_t step) {
                        EXPECT_EQ(fixed.at("micro_batches").get<double>(), 2.0) << step;
                        EXPECT_GT(budget.at("micro_batches").get<double>(), 2.0) << step;
                      });
}

TEST_F(GrpoTrain, ReferenceResetIsCheckpointedAndResumed) {
  const std::string reset = "--set algorithm.ref_reset_every=2 --set algorithm.beta=0.5";
  const auto full = root_ / "ref_full";
  ASSERT_EQ(run_cli(run_args(full, 6, reset)).exit_code, 0);
  // Before the first reset (step index 2) the checkpoint has no reference; after it, it does.
  EXPECT_FALSE(fs::exists(full / "checkpoints" / "step_000002" / "reference"));
  EXPECT_TRUE(fs::exists(full / "checkpoints" / "step_000004" / "reference" / "model.safetensors"));
  // A reset reference is the policy: KL is exactly 0 on the step after a reset (3 and 5) and
  // grows again once the policy moves.
  const auto metrics = read_jsonl(full / "metrics.jsonl");
  ASSERT_EQ(metrics.size(), 6u);
  EXPECT_EQ(metrics[2].at("kl/mean").get<double>(), 0.0);
  EXPECT_EQ(metrics[4].at("kl/mean").get<double>(), 0.0);
  EXPECT_GT(metrics[3].at("kl/mean").get<double>() + metrics[5].at("kl/mean").get<double>(), 0.0);

  const auto resumed = root_ / "ref_resumed";
  fs::create_directories(resumed / "checkpoints");
  fs::copy(full / "checkpoints" / "step_000004", resumed / "checkpoints" / "step_000004",
           fs::copy_options::recursive);
  ASSERT_EQ(run_cli(run_args(resumed, 6, reset + " --resume auto")).exit_code, 0);
  EXPECT_EQ(slurp(policy_weights(resumed, 6)), slurp(policy_weights(full, 6)));
}

TEST_F(GrpoTrain, AutocastKeepsFloat32MasterWeights) {
  const auto run = root_ / "autocast";
  const auto r = run_cli(run_args(run, 2, "--set trainer.autocast=bfloat16"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The safetensors header names every tensor's dtype: the saved policy is float32.
  const std::string weights = slurp(policy_weights(run, 2));
  ASSERT_GT(weights.size(), 8u);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | static_cast<uint8_t>(weights[i]);
  const auto header = nlohmann::json::parse(weights.substr(8, header_size));
  for (const auto& item : header.items()) {
    if (item.key() != "__metadata__") {
      EXPECT_EQ(item.value().at("dtype"), "F32") << item.key();
    }
  }
  // Low-precision parameters have no master copy to keep: a config error.
  const auto bad = run_cli(run_args(root_ / "autocast_bad", 1,
                                    "--set trainer.autocast=bfloat16 --set model.dtype=bfloat16"));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("autocast"), std::string::npos) << bad.err;
}

}  // namespace
