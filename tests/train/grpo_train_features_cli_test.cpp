// `grpo train` end to end, continued (the fixture is grpo_train_fixture.h): held-out validation
// against grpo eval, and LoRA adapters.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "../support/jsonl.h"
#include "../support/run_cli.h"
#include "grpo/core/safetensors.h"
#include "grpo_train_fixture.h"

namespace fs = std::filesystem;
using grpo::testing::GrpoTrain;
using grpo::testing::read_jsonl;
using grpo::testing::run_cli;
using grpo::testing::shell_quote;
using grpo::testing::slurp;

namespace {

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

// With several validation sources each gets its own figures, val/<source>/<figure>. The first
// source's are those of a run validating on it alone (its items sample the same numbers), and
// the whole set's pass@1 is the item-weighted mean of the sources'.
TEST_F(GrpoTrain, ValidationReportsEachSource) {
  std::vector<std::string> lines;
  {
    std::ifstream in(root_ / "arithmetic.jsonl");
    for (std::string line; std::getline(in, line) && lines.size() < 16;) lines.push_back(line);
  }
  const auto a = root_ / "val_a.jsonl", b = root_ / "val_b.jsonl";
  {
    std::ofstream out_a(a), out_b(b);
    for (size_t i = 0; i < lines.size(); ++i) (i < 10 ? out_a : out_b) << lines[i] << "\n";
  }
  const std::string common =
      " --set validation.n=2 --set validation.max_new_tokens=16 --set trainer.lr=0.02";
  const auto alone = root_ / "val_source_alone", several = root_ / "val_sources";
  auto r = run_cli(
      run_args(alone, 1, common + " --set validation.files=[" + shell_quote(a.string()) + "]"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_cli(run_args(several, 1,
                       common + " --set validation.files=[" + shell_quote(a.string()) + "," +
                           shell_quote(b.string()) +
                           "] --set 'validation.synthetic=[{task: arithmetic, n: 4, seed: 9, "
                           "difficulty: easy}]'"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto one = read_jsonl(alone / "metrics.jsonl");
  const auto all = read_jsonl(several / "metrics.jsonl");
  ASSERT_EQ(one.size(), 2u);  // before training and after step 1
  ASSERT_EQ(all.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_FALSE(one[i].contains("val/val_a/pass@1"));  // one source: no breakdown
    for (const char* figure : {"pass@1", "pass@2", "response_length/mean", "reward/mean"}) {
      EXPECT_NEAR(all[i].at(std::string("val/val_a/") + figure).get<double>(),
                  one[i].at(std::string("val/") + figure).get<double>(), 1e-12)
          << figure << ", record " << i;
    }
    for (const std::string figure : {"pass@1", "response_length/mean", "reward/mean"}) {
      const double weighted = (10 * all[i].at("val/val_a/" + figure).get<double>() +
                               6 * all[i].at("val/val_b/" + figure).get<double>() +
                               4 * all[i].at("val/arithmetic/" + figure).get<double>()) /
                              20;
      EXPECT_NEAR(all[i].at("val/" + figure).get<double>(), weighted, 1e-9)
          << figure << ", record " << i;
    }
  }

  // validation.suite: the same two files as benchmarks, the second with its own field names
  // (question, final), named by the suite; each gets the figures its file got above.
  const auto b_renamed = root_ / "val_b_renamed.jsonl";
  {
    std::ofstream out(b_renamed);
    for (size_t i = 10; i < lines.size(); ++i) {
      const auto o = nlohmann::json::parse(lines[i]);
      out << nlohmann::json{{"question", o.at("prompt")}, {"final", o.at("answer")}}.dump() << "\n";
    }
  }
  const auto suite_file = root_ / "val_suite.yaml";
  std::ofstream(suite_file) << "root: " << root_.string() << "\nbenchmarks:\n"
                            << "  - {name: first, file: val_a.jsonl}\n"
                            << "  - {name: second, file: val_b_renamed.jsonl, prompt_field: "
                               "question, answer_field: final}\n";
  const auto with_suite = root_ / "val_suite_run";
  r = run_cli(run_args(with_suite, 1,
                       common + " --set validation.suite=" + shell_quote(suite_file.string())));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto by_suite = read_jsonl(with_suite / "metrics.jsonl");
  ASSERT_EQ(by_suite.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    for (const std::string figure : {"pass@1", "response_length/mean", "reward/mean"}) {
      EXPECT_NEAR(by_suite[i].at("val/first/" + figure).get<double>(),
                  all[i].at("val/val_a/" + figure).get<double>(), 1e-12)
          << figure;
      EXPECT_NEAR(by_suite[i].at("val/second/" + figure).get<double>(),
                  all[i].at("val/val_b/" + figure).get<double>(), 1e-12)
          << figure;
    }
  }
}

// Every training prompt is rendered and tokenized at setup: one over data.max_prompt_tokens is
// an error before step 1 naming its file and line and how many there are, or, with
// data.drop_overlong_prompts, the run trains without them.
// A first step where every group is flat says so, with what to check: here the answers are read
// from a field the file lacks, so every completion scores 0 on math_boxed. Lengths that do not
// fit in the model's context are a warning at setup.
TEST_F(GrpoTrain, NoLearningSignalAndOverContextLengthsWarn) {
  const auto run = root_ / "no_signal";
  const auto r = run_cli(run_args(run, 1,
                                  "--set data.answer_field=gold --set 'reward.functions=[{name: "
                                  "math_boxed}]' --set algorithm.overlong_buffer=0"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string out = r.out + r.err;
  EXPECT_NE(out.find("every completion scored the same (mean reward 0)"), std::string::npos) << out;
  EXPECT_NE(out.find("check data.answer_field"), std::string::npos) << out;
  EXPECT_EQ(out.find("context"), std::string::npos) << out;  // 96 + 32 fit in 256 positions

  // Prompts of up to 96 tokens and 200 new ones do not fit in the model's 256 positions.
  const auto long_run =
      run_cli(run_args(root_ / "over_context", 1, "--set rollout.max_new_tokens=200"));
  ASSERT_EQ(long_run.exit_code, 0) << long_run.err;
  EXPECT_NE((long_run.out + long_run.err)
                .find("data.max_prompt_tokens + rollout.max_new_tokens = 296 exceeds the model's "
                      "context of 256 positions"),
            std::string::npos)
      << long_run.out << long_run.err;
}

TEST_F(GrpoTrain, OverlongPromptsFailAtSetupOrAreDropped) {
  const auto prompts = root_ / "overlong.jsonl";
  {
    std::ofstream out(prompts);
    std::string sum = "1";
    for (int i = 0; i < 60; ++i) sum += " + 1";
    for (int line = 1; line <= 6; ++line) {
      const std::string q = line == 3 ? "What is " + sum + "?" : "What is 2 + 3?";
      out << nlohmann::json{{"prompt", q}, {"answer", line == 3 ? "61" : "5"}}.dump() << "\n";
    }
  }
  const std::string data = " --set data.train_files=[" + shell_quote(prompts.string()) +
                           "] --set data.max_prompt_tokens=64 --set trainer.prompts_per_step=2";
  const auto failed = root_ / "overlong_error";
  auto r = run_cli(run_args(failed, 1) + data);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("1 of 6 prompts render to more than data.max_prompt_tokens = 64 tokens "
                       "(the first: " +
                       prompts.string() + ":3)"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(failed / "metrics.jsonl"));

  const auto dropped = root_ / "overlong_dropped";
  r = run_cli(run_args(dropped, 3) + data + " --set data.drop_overlong_prompts=true");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE((r.out + r.err).find("left out 1 of 6 prompts over 64 tokens"), std::string::npos)
      << r.out << r.err;
  const auto samples = read_jsonl(dropped / "samples.jsonl");
  ASSERT_FALSE(samples.empty());
  for (const auto& s : samples) {
    EXPECT_EQ(s.at("prompt").get<std::string>().find("1 + 1 + 1"), std::string::npos);
  }
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

// A LoRA checkpoint's adapter folder on its base model folder (generate and eval --adapter)
// gives what the checkpoint's merged policy folder gives.
TEST_F(GrpoTrain, AdapterOnTheBaseModelActsAsTheMergedPolicy) {
  const auto base_run = root_ / "adapter_base";  // a base model folder: a 1-step run's policy
  ASSERT_EQ(run_cli(run_args(base_run, 1)).exit_code, 0);
  const auto base = policy_weights(base_run, 1).parent_path();
  const auto lora = root_ / "adapter_lora";
  auto r = run_cli(
      run_args(lora, 4,
               "--set model.init=pretrained --set model.path=" + shell_quote(base.string()) +
                   " --set model.lora.rank=4 --set trainer.lr=0.02"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto checkpoint = lora / "checkpoints" / "step_000004";
  const std::string prompts =
      " --prompt 'Calculate 1 + 2.' --prompt 'Calculate 7 - (4 + 2).' --n 2 --max-new-tokens 16"
      " --temperature 0";
  const auto completions = [&](const std::string& model) {
    const auto g = run_cli("--log-level warn generate --model " + model + prompts);
    EXPECT_EQ(g.exit_code, 0) << g.err;
    std::vector<std::string> out;
    std::istringstream lines(g.out);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) out.push_back(nlohmann::json::parse(line).at("completion"));
    }
    return out;
  };
  const auto merged = completions(shell_quote((checkpoint / "policy").string()));
  const auto adapted = completions(shell_quote(base.string()) + " --adapter " +
                                   shell_quote((checkpoint / "adapter").string()));
  ASSERT_EQ(merged.size(), 4u);
  EXPECT_EQ(adapted, merged);
  EXPECT_NE(completions(shell_quote(base.string())), merged);  // the adapters matter

  // eval --adapter: the same figures as eval of the merged folder.
  const auto data = shell_quote((root_ / "arithmetic.jsonl").string());
  const auto eval = [&](const std::string& model) {
    const auto e = run_cli("--log-level warn eval --model " + model + " --data " + data +
                           " --config " + shell_quote((root_ / "tiny.yaml").string()) +
                           " --n 2 --limit 6 --max-new-tokens 16");
    EXPECT_EQ(e.exit_code, 0) << e.err;
    return e.exit_code == 0 ? nlohmann::json::parse(e.out) : nlohmann::json();
  };
  const auto a = eval(shell_quote((checkpoint / "policy").string()));
  const auto b = eval(shell_quote(base.string()) + " --adapter " +
                      shell_quote((checkpoint / "adapter").string()));
  for (const char* key : {"pass@1", "reward/mean", "response_length/mean"}) {
    EXPECT_EQ(a.at(key), b.at(key)) << key;
  }
  // Not an adapter folder: one clear error.
  r = run_cli("generate --model " + shell_quote(base.string()) + " --adapter " +
              shell_quote(base.string()) + " --prompt x");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not a LoRA adapter folder"), std::string::npos) << r.err;
}

}  // namespace
