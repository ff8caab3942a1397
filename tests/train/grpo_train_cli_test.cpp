// `grpo train` end to end on a tiny model built from scratch: the run directory's outputs,
// resume after SIGKILL ending bit-identical to an uninterrupted run, SIGTERM's final
// checkpoint, the config-hash check, dynamic sampling, the reference reset and shared prompts.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../support/jsonl.h"
#include "../support/run_cli.h"
#include "grpo/core/safetensors.h"

namespace fs = std::filesystem;
using grpo::testing::read_jsonl;
using grpo::testing::run_cli;
using grpo::testing::shell_quote;

namespace {

std::string slurp(const fs::path& path) {
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

  static fs::path policy_weights(const fs::path& run_dir, int step) {
    std::ostringstream name;
    name << "step_" << std::string(6 - std::to_string(step).size(), '0') << step;
    return run_dir / "checkpoints" / name.str() / "policy" / "model.safetensors";
  }

  static fs::path root_;
};

fs::path GrpoTrain::root_;

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

// Held-out validation (validation:): its figures and per-item results are those of `grpo eval`
// on the checkpoint of the same step with the same sampling settings, and it leaves training
// alone (the training metrics equal a run without it).
TEST_F(GrpoTrain, ValidationEqualsGrpoEvalOfTheCheckpointAndLeavesTrainingAlone) {
  const auto data = root_ / "arithmetic.jsonl";
  const auto plain = root_ / "val_off", validated = root_ / "val_on";
  // A large learning rate, so that the samples of step 0 and step 4 differ.
  const std::string lr = " --set trainer.lr=0.02 ";
  ASSERT_EQ(run_cli(run_args(plain, 4, lr)).exit_code, 0);
  const auto r =
      run_cli(run_args(validated, 4,
                       lr + "--set validation.files=[" + shell_quote(data.string()) +
                           "] --set validation.max_items=12 --set validation.n=3"
                           " --set validation.every=2 --set validation.max_new_tokens=24"));
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // Validation before training (step 0) and every 2 steps.
  const auto off = read_jsonl(plain / "metrics.jsonl");
  const auto on = read_jsonl(validated / "metrics.jsonl");
  ASSERT_EQ(off.size(), 4u);
  ASSERT_EQ(on.size(), 5u);
  EXPECT_EQ(on[0].at("step").get<int>(), 0);
  EXPECT_FALSE(on[0].contains("reward/mean"));  // no training figures at step 0
  for (int step = 0; step <= 4; ++step) {
    const auto& m = on[static_cast<size_t>(step)];
    EXPECT_EQ(m.contains("val/pass@1"), step % 2 == 0) << "step " << step;
  }
  for (size_t i = 0; i < off.size(); ++i) {
    for (const auto& [key, value] : off[i].items()) {
      if (key.rfind("time/", 0) == 0 || key.rfind("throughput/", 0) == 0 ||
          key.rfind("memory/", 0) == 0) {
        continue;
      }
      EXPECT_EQ(on[i + 1].at(key), value) << "step " << i + 1 << " " << key;
    }
  }

  // grpo eval on the step-4 checkpoint with validation's settings (temperature 0.6 and top-p
  // 0.95 are both verbs' defaults; the config gives the rewards, fields and template).
  const auto policy = policy_weights(validated, 4).parent_path();
  const auto items = root_ / "val_eval_items.jsonl", summary = root_ / "val_eval_summary.json";
  const auto e = run_cli(
      "--log-level warn eval --model " + shell_quote(policy.string()) + " --data " +
      shell_quote(data.string()) + " --config " + shell_quote((root_ / "tiny.yaml").string()) +
      " --n 3 --limit 12 --max-new-tokens 24 --seed 0 --output " + shell_quote(items.string()) +
      " --summary " + shell_quote(summary.string()));
  ASSERT_EQ(e.exit_code, 0) << e.err;
  const auto figures = nlohmann::json::parse(slurp(summary));
  for (const char* key : {"pass@1", "pass@2", "pass@3", "cons@3", "reward/mean",
                          "reward/math_boxed/mean", "response_length/mean", "truncated_fraction"}) {
    ASSERT_TRUE(figures.contains(key)) << key;
    EXPECT_EQ(on[4].at(std::string("val/") + key), figures.at(key)) << key;
  }
  const auto expected = read_jsonl(items);
  const auto got = read_jsonl(validated / "validation" / "step_000004.jsonl");
  ASSERT_EQ(expected.size(), 12u);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], expected[i]) << "item " << i;
  EXPECT_TRUE(fs::exists(validated / "validation" / "step_000002.jsonl"));
  // The policy moved between validations: step 0's samples are not step 4's.
  EXPECT_NE(read_jsonl(validated / "validation" / "step_000000.jsonl"), got);
}

TEST_F(GrpoTrain, BadValidationSettingsFailBeforeTraining) {
  const std::string files =
      " --set validation.files=[" + shell_quote((root_ / "arithmetic.jsonl").string()) + "]";
  const auto no_reward = root_ / "val_bad_reward";
  auto r = run_cli(run_args(no_reward, 2, files + " --set validation.pass_reward=countdown"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("'countdown' is not among: math_boxed, format_think_answer"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(no_reward / "metrics.jsonl"));

  // A prompt over data.max_prompt_tokens names the validation file and line at setup.
  const auto long_prompt = root_ / "val_long_prompt";
  r = run_cli(run_args(long_prompt, 2, files + " --set data.max_prompt_tokens=3"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("validation: " + (root_ / "arithmetic.jsonl").string() + " item 1:"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(long_prompt / "metrics.jsonl"));
}

// Validation files are read as grpo eval reads benchmarks: their own field names, and GSM8K's
// gold answer is the text after ####, not the rationale.
TEST_F(GrpoTrain, ValidationReadsBenchmarkFilesAsGrpoEvalDoes) {
  const auto gsm = root_ / "gsm8k_like.jsonl";
  std::ofstream(gsm) << R"({"question": "Calculate 1 + 2.", "answer": "1 + 2 = 3.\n#### 3"})"
                     << "\n"
                     << R"({"question": "Calculate 2 * 4.", "answer": "2 * 4 = 8.\n#### 8"})"
                     << "\n";
  const auto run = root_ / "val_gsm";
  const auto r = run_cli(run_args(run, 1,
                                  "--set validation.files=[" + shell_quote(gsm.string()) +
                                      "] --set validation.prompt_field=question"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto items = read_jsonl(run / "validation" / "step_000000.jsonl");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].at("prompt"), "Calculate 1 + 2.");
  EXPECT_EQ(items[0].at("answer"), "3");
  EXPECT_EQ(items[1].at("answer"), "8");
  EXPECT_EQ(items[1].at("index"), 1);
}

// LoRA (model.lora): only the adapters train (every other tensor of the merged policy folders
// stays what it was), the reference is the base (KL exactly 0 while the adapters are fresh),
// checkpoints hold PEFT adapter folders, and a resumed run ends bit-identical.
TEST_F(GrpoTrain, LoraTrainsOnlyTheAdaptersAndResumesBitIdentical) {
  const std::string lora =
      " --set model.lora.rank=4 --set model.lora.target_modules=[q_proj,v_proj,down_proj]"
      " --set trainer.lr=0.02 ";
  const auto full = root_ / "lora_full";
  auto r = run_cli(run_args(full, 4, lora));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto adapter = full / "checkpoints" / "step_000004" / "adapter";
  ASSERT_TRUE(fs::exists(adapter / "adapter_model.safetensors"));
  const auto config = nlohmann::json::parse(slurp(adapter / "adapter_config.json"));
  EXPECT_EQ(config.at("peft_type"), "LORA");
  EXPECT_EQ(config.at("r"), 4);
  EXPECT_EQ(config.at("target_modules"), nlohmann::json({"down_proj", "q_proj", "v_proj"}));
  // 2 layers x 3 projections x (A, B).
  EXPECT_EQ(
      grpo::safetensors::File((adapter / "adapter_model.safetensors").string()).tensors().size(),
      12u);

  // The merged policy folders of steps 2 and 4: only the adapted projections differ.
  const grpo::safetensors::File a(policy_weights(full, 2).string()),
      b(policy_weights(full, 4).string());
  int changed = 0, same = 0;
  for (const auto& info : a.tensors()) {
    const auto& other = b.at(info.name);
    ASSERT_EQ(info.nbytes(), other.nbytes()) << info.name;
    const bool equal = std::memcmp(a.data(info), b.data(other), info.nbytes()) == 0;
    const bool adapted = info.name.find("q_proj.weight") != std::string::npos ||
                         info.name.find("v_proj.weight") != std::string::npos ||
                         info.name.find("down_proj.weight") != std::string::npos;
    EXPECT_EQ(equal, !adapted) << info.name;
    (equal ? same : changed) += 1;
  }
  EXPECT_EQ(changed, 6);
  EXPECT_GT(same, 10);

  const auto m = read_jsonl(full / "metrics.jsonl");
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0].at("kl/mean").get<double>(), 0.0);  // fresh adapters: the policy is the base
  EXPECT_GT(m[3].at("kl/mean").get<double>(), 0.0);

  // Resume from the step-2 checkpoint: the same adapters and merged weights at step 4.
  const auto resumed = root_ / "lora_resumed";
  fs::create_directories(resumed / "checkpoints");
  fs::copy(full / "checkpoints" / "step_000002", resumed / "checkpoints" / "step_000002",
           fs::copy_options::recursive);
  r = run_cli(run_args(resumed, 4, lora + "--resume auto"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(slurp(policy_weights(resumed, 4)), slurp(policy_weights(full, 4)));
  EXPECT_EQ(
      slurp(resumed / "checkpoints" / "step_000004" / "adapter" / "adapter_model.safetensors"),
      slurp(adapter / "adapter_model.safetensors"));

  // The base never moves, so a reference reset has nothing to copy: refused before starting.
  r = run_cli(run_args(root_ / "lora_reset", 2, lora + "--set algorithm.ref_reset_every=1"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("ref_reset_every"), std::string::npos) << r.err;
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

TEST_F(GrpoTrain, SigtermFinishesTheStepAndCheckpoints) {
  const auto run = root_ / "term";
  const pid_t pid = spawn_cli(run_args(run, 1000));
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(wait_for(run / "metrics.jsonl", pid));
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
  ASSERT_EQ(runs.size(), 2u);
  bool moved = false;
  for (size_t step = 0; step < 4 && !moved; ++step) {
    const auto &shared = runs[0][step], &whole = runs[1][step];
    EXPECT_EQ(shared.at("shared_prompts").get<double>(), 1.0) << "step " << step + 1;
    EXPECT_EQ(whole.at("shared_prompts").get<double>(), 0.0) << "step " << step + 1;
    EXPECT_EQ(shared.at("reward/mean"), whole.at("reward/mean")) << "step " << step + 1;
    for (const char* key : {"loss", "grad_norm", "entropy/mean"}) {
      const double a = shared.at(key).get<double>(), b = whole.at(key).get<double>();
      EXPECT_NEAR(a, b, 1e-5 * (1 + std::abs(b))) << key << ", step " << step + 1;
    }
    moved = whole.at("grad_norm").get<double>() > 0;
  }
  EXPECT_TRUE(moved) << "no step with a gradient in 4 steps";
}

// trainer.gradient_checkpointing (with shared prompts, whose recorded keys and values come out
// of recomputed layers) gives ordinary autograd's loss, gradient norm and entropy up to
// rounding; compared as SharedPromptsTrainLikeWholeRows is.
TEST_F(GrpoTrain, GradientCheckpointingTrainsLikeOrdinaryAutograd) {
  const auto runs = four_step_runs("trainer.gradient_checkpointing", {"false", "true"});
  ASSERT_EQ(runs.size(), 2u);
  bool moved = false;
  for (size_t step = 0; step < 4 && !moved; ++step) {
    const auto &plain = runs[0][step], &ckpt = runs[1][step];
    EXPECT_EQ(ckpt.at("shared_prompts"), plain.at("shared_prompts")) << "step " << step + 1;
    EXPECT_EQ(ckpt.at("reward/mean"), plain.at("reward/mean")) << "step " << step + 1;
    for (const char* key : {"loss", "grad_norm", "entropy/mean", "kl/mean"}) {
      const double a = ckpt.at(key).get<double>(), b = plain.at(key).get<double>();
      EXPECT_NEAR(a, b, 1e-5 * (1 + std::abs(b))) << key << ", step " << step + 1;
    }
    moved = plain.at("grad_norm").get<double>() > 0;
  }
  EXPECT_TRUE(moved) << "no step with a gradient in 4 steps";
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
