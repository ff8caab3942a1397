// An evaluation suite for `grpo eval --suite FILE`: several benchmark files, each with its own
// field names (the public math sets spell the prompt `problem` or `question`, the answer
// `answer`, `final_answer` or a `solution` ending in a box), evaluated in one run of one model
// with the same sampling, and averaged (docs/evaluation.md, "Suites").
#pragma once

#include <map>
#include <string>
#include <vector>

#include "grpo/core/config_bind.h"

namespace grpo::config {

struct SuiteBenchmark {
  std::string name;  // the key of its figures in the summary, and its per-item file's name
  std::string file;  // JSONL; relative: to the suite's root
  std::string prompt_field = "prompt";
  std::string answer_field = "answer";
  std::string tests_field = "tests";
  std::string id_field;  // copied into the per-item results as id when set
  // The code_tests tests as an object built from several fields, key -> field (HumanEval:
  // {prefix: prompt, check: test, entry_point: entry_point}); empty: tests_field.
  std::map<std::string, std::string> tests_from;
  int limit = 0;           // the first `limit` items; 0: all (--limit, when given, wins)
  int n = 0;               // samples per item; 0: the command's --n
  int max_new_tokens = 0;  // 0: the command's --max-new-tokens

  template <class V>
  void visit(V& v) {
    v("name", name, non_empty());
    v("file", file, non_empty());
    v("prompt_field", prompt_field, non_empty());
    v("answer_field", answer_field);
    v("tests_field", tests_field);
    v("id_field", id_field);
    v("tests_from", tests_from);
    v("limit", limit, at_least(0));
    v("n", n, at_least(0));
    v("max_new_tokens", max_new_tokens, at_least(0));
  }
};

struct EvalSuiteConfig {
  // Where the benchmark files are; relative: to the working directory ("" = it). The command's
  // --data-root wins.
  std::string root;
  std::vector<SuiteBenchmark> benchmarks;

  template <class V>
  void visit(V& v) {
    v("root", root);
    v("benchmarks", benchmarks);
  }
  void check(Checker& c) const;
  // Where benchmark `b`'s file is: its path as written when absolute, else under the root
  // (`root_override` when not empty, else `root`).
  std::string path_of(const SuiteBenchmark& b, const std::string& root_override = "") const;
};

// Reads a suite file (`extends:` allowed, as for run configs); errors name file:line and key.
EvalSuiteConfig load_eval_suite(const std::string& path);

}  // namespace grpo::config
