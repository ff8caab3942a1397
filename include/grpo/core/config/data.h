// `data:` section: the JSONL prompt datasets and how their fields map onto samples.
#pragma once

#include <string>
#include <vector>

#include "grpo/core/config_bind.h"

namespace grpo::config {

// A synthetic task generated in memory at load time (the tasks of `grpo data make`, docs/data.md):
// item i depends only on (seed, i), so nothing is written and nothing goes stale.
struct SyntheticTaskConfig {
  std::string task;  // countdown, arithmetic or equation
  int n = 1000;      // items
  int seed = 0;
  std::string difficulty = "medium";  // the preset the options apply over
  Node options;                       // the task's knobs, as `grpo data make --set`

  template <class V>
  void visit(V& v) {
    v("task", task, one_of({"countdown", "arithmetic", "equation"}));
    v("n", n, at_least(1));
    v("seed", seed, at_least(0));
    v("difficulty", difficulty, one_of({"easy", "medium", "hard"}));
    v("options", options);
  }
  void check(Checker& c) const {
    c.require(!task.empty(), "task", "is required: countdown, arithmetic or equation");
  }
};

struct DataConfig {
  std::vector<std::string> train_files;        // JSONL, one prompt per line
  std::vector<SyntheticTaskConfig> synthetic;  // generated items, after the files
  std::string prompt_field = "prompt";
  std::string answer_field = "answer";  // gold answer for math rewards
  std::string tests_field = "tests";    // test cases for code rewards
  bool shuffle = true;
  int seed = 0;
  int max_prompt_tokens = 512;  // longer prompts are an error, never silently cut
  bool drop_overlong_prompts =
      false;  // grpo train: leave them out at start instead (verl's filter)

  template <class V>
  void visit(V& v) {
    v("train_files", train_files);
    v("synthetic", synthetic);
    v("prompt_field", prompt_field, non_empty());
    v("answer_field", answer_field);
    v("tests_field", tests_field);
    v("shuffle", shuffle);
    v("seed", seed, at_least(0));
    v("max_prompt_tokens", max_prompt_tokens, at_least(1));
    v("drop_overlong_prompts", drop_overlong_prompts);
  }
};

}  // namespace grpo::config
