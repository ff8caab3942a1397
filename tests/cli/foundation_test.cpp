// The foundation verbs end to end through the grpo executable: exit codes (0 ok, 2 usage or
// config error), one-line errors, every shipped config valid, `config show` round-tripping.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "support/run_cli.h"

namespace {

namespace fs = std::filesystem;
using grpo::testing::run_cli;
using grpo::testing::shell_quote;

std::string temp_file(const std::string& name, const std::string& text) {
  fs::path p = fs::temp_directory_path() / ("grpo_cli_" + std::to_string(getpid()) + "_" + name);
  std::ofstream(p) << text;
  return p.string();
}

TEST(Cli, VersionReportsLibtorchAndCuda) {
  auto r = run_cli("version");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("grpo 0."), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("libtorch "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cuda available: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fused cpu attention: "), std::string::npos) << r.out;
}

// `grpo bench cpu-ops` at tiny sizes: every row, fused and reference, and a usage error (exit 2,
// naming the options) for heads that do not group.
TEST(Cli, BenchCpuOpsPrintsEveryRowAndRejectsBadHeads) {
  auto r = run_cli(
      "bench cpu-ops --repeat 1 --batch 2 --seq 8 --decode-batch 2 --decode-len 8 --threads 1");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const char* what : {"attention fwd ", "attention fwd+bwd", "decode attention",
                           "rmsnorm fwd+bwd", "rope fwd+bwd"}) {
    const auto at = r.out.find(what);
    ASSERT_NE(at, std::string::npos) << what << " missing:\n" << r.out;
    // Each measurement prints a fused line, then a reference line.
    const auto fused = r.out.find("fused", at);
    EXPECT_NE(fused, std::string::npos) << what << ":\n" << r.out;
    EXPECT_NE(r.out.find("reference", fused), std::string::npos) << what << ":\n" << r.out;
  }
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 11) << r.out;  // header + 10 rows
  auto bad = run_cli("bench cpu-ops --heads 3 --kv-heads 2");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--kv-heads"), std::string::npos) << bad.err;
}

// `grpo bench train` on a tiny random model: groups of completions share their prompt (run once
// each) unless trainer.share_prompts is off; trainer.gradient_checkpointing runs and says so; a
// group that does not divide the batch is a usage error naming --group.
TEST(Cli, BenchTrainSharesPromptsOfAGroup) {
  const std::string config = temp_file("bench_train.yaml", R"(model:
  init: random
  architecture: {model_type: qwen2, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
                 num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64}
algorithm: {beta: 0.01}
trainer: {micro_batch_size: 4, device: cpu}
)");
  const std::string base = "bench train --config " + shell_quote(config) +
                           " --vocab 64 --batch 8 --prompt-len 8 --response-len 4 --steps 1";
  auto r = run_cli(base + " --group 4");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("prompts               2, 4 completions each, run once each"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("update (fwd+bwd+step)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("reference forward"), std::string::npos) << r.out;
  r = run_cli(base + " --group 4 --set trainer.share_prompts=false");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("2, 4 completions each, run with every completion"), std::string::npos)
      << r.out;
  r = run_cli(base + " --group 4 --set trainer.gradient_checkpointing=true");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("beta 0.01, gradient checkpointing on"), std::string::npos) << r.out;
  r = run_cli(base + " --group 3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--group 3"), std::string::npos) << r.err;
  fs::remove(config);
}

TEST(Cli, EveryShippedConfigChecks) {
  int checked = 0;
  for (const auto& entry :
       fs::recursive_directory_iterator(std::string(GRPO_SOURCE_DIR) + "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    if (entry.path().parent_path().filename() == "eval") continue;  // suites: LoadEvalItems
    auto r = run_cli("config check " + shell_quote(entry.path().string()));
    EXPECT_EQ(r.exit_code, 0) << entry.path() << ": " << r.err;
    EXPECT_NE(r.out.find(": ok (config hash "), std::string::npos) << r.out;
    ++checked;
  }
  EXPECT_GT(checked, 0) << "no configs found";
}

TEST(Cli, MalformedConfigExitsTwoWithOneLine) {
  std::string path = temp_file("bad.yaml", "model:\n  init: random\nrollout:\n  top_p: 3\n");
  auto r = run_cli("config check " + shell_quote(path));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find(":4:10: rollout.top_p: got '3', expected a number in [0.0, 1.0]"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  fs::remove(path);
}

TEST(Cli, MissingFileAndBadUsageExitTwo) {
  EXPECT_EQ(run_cli("config check /nonexistent/grpo.yaml").exit_code, 2);
  EXPECT_EQ(run_cli("no-such-verb").exit_code, 2);
  EXPECT_EQ(run_cli("config").exit_code, 2);
  EXPECT_EQ(run_cli("--log-level loud version").exit_code, 2);
  std::string path = temp_file("ok.yaml", "model:\n  init: random\n");
  auto r = run_cli("config check " + shell_quote(path) + " --set trainer.lr");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--set expects key.path=value"), std::string::npos) << r.err;
  fs::remove(path);
}

TEST(Cli, ShowResolvesOverridesAndRoundTrips) {
  std::string path = temp_file("show.yaml", "model:\n  init: random\n");
  auto r = run_cli("config show " + shell_quote(path) +
                   " --set trainer.lr=2e-6 --set algorithm.kl_estimator=k1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("lr: 2e-06"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("kl_estimator: k1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("reflection_words:"), std::string::npos) << r.out;  // defaults filled in

  std::string resolved = temp_file("resolved.yaml", r.out);
  auto again = run_cli("config show " + shell_quote(resolved));
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, r.out);
  auto h1 = run_cli("config check " + shell_quote(resolved)).out;
  auto h2 = run_cli("config check " + shell_quote(path) +
                    " --set trainer.lr=2e-6 --set algorithm.kl_estimator=k1")
                .out;
  EXPECT_EQ(h1.substr(h1.find("hash")), h2.substr(h2.find("hash")));
  fs::remove(path);
  fs::remove(resolved);
}

// Bare key=value arguments override like --set (Hydra-style), after the --set ones; anything
// else in their place is a usage error naming it.
TEST(Cli, BareOverridesApplyAfterSet) {
  std::string path = temp_file("bare.yaml", "model:\n  init: random\n");
  auto r = run_cli("config show " + shell_quote(path) +
                   " trainer.lr=3e-6 --set trainer.lr=2e-6 rollout.n=4");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("lr: 3e-06"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  n: 4\n"), std::string::npos) << r.out;
  auto bad = run_cli("config check " + shell_quote(path) + " trainer.lr");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("'trainer.lr' is not an override (key.path=value)"), std::string::npos)
      << bad.err;
  fs::remove(path);
}

// `config diff A B`: the resolved keys that differ, B's overrides applied; the defaults a file
// leaves out compare equal to the same value written out.
TEST(Cli, DiffNamesTheChangedKeys) {
  std::string a = temp_file("diff_a.yaml", "model:\n  init: random\ntrainer:\n  lr: 1e-6\n");
  std::string b = temp_file("diff_b.yaml", "model:\n  init: random\nrollout:\n  n: 4\n");
  auto r = run_cli("config diff " + shell_quote(a) + " " + shell_quote(b) +
                   " --set algorithm.beta=0.04");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "rollout.n: 8 -> 4\nalgorithm.beta: 0.001 -> 0.04\n");
  auto same = run_cli("config diff " + shell_quote(a) + " " + shell_quote(a));
  EXPECT_EQ(same.out, "no differences\n");
  EXPECT_EQ(run_cli("config diff " + shell_quote(a) + " /nonexistent/grpo.yaml").exit_code, 2);
  fs::remove(a);
  fs::remove(b);
}

}  // namespace
