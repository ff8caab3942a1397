// `grpo bench reward`: checks per second of the rule-based rewards on one thread (the issue's
// goal: 10,000 math_boxed checks/s/core on typical answers), and of the pipeline on N threads.
// Workload: a JSONL file (e.g. MATH solutions and their answers) or built-in typical answers.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "grpo/core/error.h"
#include "grpo/reward/format_rewards.h"
#include "grpo/reward/math_answer.h"
#include "grpo/reward/pipeline.h"
#include "verbs.h"

namespace grpo::cli {
namespace {

struct BenchRewardArgs {
  std::string input;
  std::string completion_field = "completion";
  std::string answer_field = "answer";
  double seconds = 2.0;
  int threads = 0;
};

// Gold answers of the kinds MATH-style datasets hold, each graded against a right and a wrong
// prediction inside a few hundred characters of reasoning.
std::vector<reward::Sample> builtin_samples() {
  const std::vector<std::pair<std::string, std::string>> answers = {
      {"42", "42"},
      {"\\frac{3}{4}", "0.75"},
      {"3\\sqrt{13}", "\\sqrt{117}"},
      {"(3, \\frac{\\pi}{2})", "\\left(3,\\frac{\\pi}{2}\\right)"},
      {"\\frac{14}{3}", "\\dfrac{14}{3}"},
      {"x^2+2x+1", "(x+1)^2"},
      {"1,-2", "-2, 1"},
      {"6 - 5i", "6-5i"},
      {"2220", "2,220"},
      {"[1, 5)", "[1,5)"},
      {"\\text{Evelyn}", "Evelyn"},
      {"90^\\circ", "90"},
  };
  const std::string reasoning =
      "<think>We first rewrite the condition. Since the sum of the roots is 4 and their product "
      "is 3, the quadratic is $x^2 - 4x + 3 = 0$, so $x = 1$ or $x = 3$. Substituting back gives "
      "the value we need; checking the boundary cases confirms it.</think>\n<answer>The answer is ";
  std::vector<reward::Sample> samples;
  for (const auto& [gold, pred] : answers) {
    reward::Sample right, wrong;
    right.answer = wrong.answer = gold;
    right.completion = reasoning + "$\\boxed{" + pred + "}$</answer>";
    wrong.completion = reasoning + "$\\boxed{" + pred + "+1}$</answer>";
    samples.push_back(right);
    samples.push_back(wrong);
  }
  return samples;
}

std::vector<reward::Sample> file_samples(const BenchRewardArgs& a) {
  std::ifstream in(a.input);
  GRPO_CHECK_KIND(usage, in.good(), "--input '", a.input, "' cannot be read");
  std::vector<reward::Sample> samples;
  std::string line;
  long n = 0;
  while (std::getline(in, line)) {
    ++n;
    auto row = nlohmann::json::parse(line, nullptr, false);
    GRPO_CHECK(row.is_object() && row.contains(a.completion_field) &&
                   row[a.completion_field].is_string() && row.contains(a.answer_field),
               a.input, ":", n, ": expected an object with \"", a.completion_field, "\" and \"",
               a.answer_field, "\"");
    reward::Sample s;
    s.completion = row[a.completion_field].get<std::string>();
    const auto& ans = row[a.answer_field];
    s.answer = ans.is_string() ? ans.get<std::string>() : ans.dump();
    samples.push_back(std::move(s));
  }
  GRPO_CHECK_KIND(usage, !samples.empty(), "--input '", a.input, "' has no lines");
  return samples;
}

// Calls fn over the samples, round after round, for about `seconds`; returns calls per second.
template <class Fn>
double rate(const std::vector<reward::Sample>& samples, double seconds, Fn fn, double& hits) {
  using clock = std::chrono::steady_clock;
  auto start = clock::now();
  size_t calls = 0;
  hits = 0;
  double elapsed = 0;
  do {
    for (const auto& s : samples) hits += fn(s);
    calls += samples.size();
    elapsed = std::chrono::duration<double>(clock::now() - start).count();
  } while (elapsed < seconds);
  hits /= static_cast<double>(calls);
  return static_cast<double>(calls) / elapsed;
}

void run(const BenchRewardArgs& a) {
  auto samples = a.input.empty() ? builtin_samples() : file_samples(a);
  std::printf("workload: %zu samples (%s)\n", samples.size(),
              a.input.empty() ? "built-in typical answers" : a.input.c_str());
  reward::MathBoxedReward math{reward::MathOptions{}};
  double mean = 0;
  double r = rate(
      samples, a.seconds, [&](const reward::Sample& s) { return math.score(s).score; }, mean);
  std::printf("math_boxed            %10.0f checks/s  (1 thread; mean score %.3f)\n", r, mean);
  reward::FormatThinkAnswer format{reward::FormatOptions{}};
  r = rate(
      samples, a.seconds, [&](const reward::Sample& s) { return format.score(s).score; }, mean);
  std::printf("format_think_answer   %10.0f checks/s  (1 thread; mean score %.3f)\n", r, mean);

  config::RewardConfig rc;
  for (const char* name : {"math_boxed", "format_think_answer"}) {
    config::RewardFunctionConfig f;
    f.name = name;
    rc.functions.push_back(f);
  }
  reward::RewardPipeline pipeline(rc, a.threads);
  std::vector<reward::Sample> batch;
  while (batch.size() < 8192) batch.insert(batch.end(), samples.begin(), samples.end());
  auto start = std::chrono::steady_clock::now();
  size_t scored = 0;
  double elapsed = 0;
  do {
    scored += pipeline.score(batch).size();
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  } while (elapsed < a.seconds);
  std::printf("pipeline (both)       %10.0f samples/s (%s threads, batches of %zu)\n",
              static_cast<double>(scored) / elapsed,
              a.threads > 0 ? std::to_string(a.threads).c_str() : "all", batch.size());
}

}  // namespace

void add_bench_reward(CLI::App& bench) {
  auto a = std::make_shared<BenchRewardArgs>();
  CLI::App* cmd = bench.add_subcommand("reward", "Reward checks per second (math_boxed, format)");
  cmd->add_option("--input", a->input, "JSONL workload; default: built-in typical answers");
  cmd->add_option("--completion-field", a->completion_field, "Field graded as the completion")
      ->capture_default_str();
  cmd->add_option("--answer-field", a->answer_field, "Field holding the gold answer")
      ->capture_default_str();
  cmd->add_option("--seconds", a->seconds, "Time per measurement")->capture_default_str();
  cmd->add_option("--threads", a->threads, "Pipeline threads; 0 = one per core")
      ->capture_default_str();
  cmd->callback([a] { run(*a); });
}

}  // namespace grpo::cli
