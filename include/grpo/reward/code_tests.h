// code_tests: runs the last fenced code block of a completion against the sample's tests in the
// Sandbox (stdin/stdout cases or a HumanEval-style check function) and scores the verdict.
// Options and verdicts: docs/sandbox.md and docs/configuration.md (code_tests).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "grpo/core/config_bind.h"
#include "grpo/reward/reward_function.h"
#include "grpo/reward/sandbox.h"

namespace grpo::reward {

struct CodeTestsOptions {
  SandboxOptions sandbox;                   // its keys sit at the same level (timeout_s, ...)
  std::string language = "python";          // fence tag to extract; also picks the runner
  std::string python = "/usr/bin/python3";  // interpreter, must be visible in the sandbox
  double float_tolerance = 0.0;             // 0: tokens compare as text
  bool partial_credit = false;              // score = passed/total (runs every case) instead of 0/1
  int64_t concurrency = 0;                  // programs run at once; 0 = hardware threads

  template <class V>
  void visit(V& v) {
    sandbox.visit(v);
    v("language", language, config::one_of({"python"}));
    v("python", python, config::non_empty());
    v("float_tolerance", float_tolerance, config::at_least(0.0));
    v("partial_credit", partial_credit);
    v("concurrency", concurrency, config::in_range(0, 1024));
  }
};

enum class Verdict { AC, WA, TLE, MLE, RE, OLE, CE };
const char* verdict_name(Verdict v);

// The body of the last fenced block tagged with `language` (or an alias such as py), else of
// the last untagged block; nullopt when there is none. An unclosed last fence runs to the end.
std::optional<std::string> extract_code_block(const std::string& text, const std::string& language);

// Program output against the expected output: same number of non-blank lines, and per line
// the same whitespace-separated tokens; with tolerance > 0, tokens that both parse as numbers
// may differ by tolerance * max(1, |expected|).
bool outputs_match(const std::string& got, const std::string& expected, double float_tolerance);

class CodeTests : public RewardFunction {
 public:
  explicit CodeTests(CodeTestsOptions options);
  const std::string& name() const override;
  // details: verdict, tests_passed, tests_total, failed_test (index of the first failing case,
  // or -1), message, and time_s.
  RewardResult score(const Sample& sample) const override;
  // Runs up to `concurrency` programs at once.
  std::vector<RewardResult> score_batch(const std::vector<Sample>& samples) const override;
  const CodeTestsOptions& options() const { return options_; }
  int concurrency() const { return concurrency_; }
  // The host uid that slot `slot`'s programs run under (-1 when not root); tests use it to
  // check that no process survives a run.
  int64_t sandbox_host_uid(int slot) const { return sandbox_.host_uid(slot); }

 private:
  RewardResult score_in_slot(const Sample& sample, int slot) const;
  int acquire_slot() const;
  void release_slot(int slot) const;

  CodeTestsOptions options_;
  int concurrency_;
  Sandbox sandbox_;
  mutable std::mutex mutex_;
  mutable std::condition_variable slot_free_;
  mutable std::vector<bool> busy_;
};

}  // namespace grpo::reward
