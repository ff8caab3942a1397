// `validation:` section: held-out evaluation during `grpo train` and `grpo sft`
// (docs/training.md). The items come from JSONL files (fields as in `data:`) and/or synthetic
// tasks; the policy samples n completions per item, the run's reward pipeline scores them, and
// val/* metrics (pass@k, cons@n, rewards, lengths) join metrics.jsonl and TensorBoard.
#pragma once

#include <string>
#include <vector>

#include "grpo/core/config/data.h"
#include "grpo/core/config_bind.h"

namespace grpo::config {

struct ValidationConfig {
  std::vector<std::string> files;  // JSONL benchmark files, read as grpo eval does
  // An evaluation suite (grpo/core/config/eval_suite.h): its benchmarks, each with its own field
  // names and limit, after the files.
  std::string suite;
  std::vector<SyntheticTaskConfig> synthetic;  // generated items, after the files
  // The files' field names; "": data's (prompt_field, answer_field, tests_field).
  std::string prompt_field, answer_field, tests_field;
  int every = 0;             // steps between validations; 0: only before training and at the end
  bool before_train = true;  // also at step 0 (a fresh run only), the base model's figures
  int max_items = 0;         // the first max_items items; 0: all
  int n = 1;                 // samples per item (pass@1 is their mean)
  int max_new_tokens = 0;    // 0: rollout.max_new_tokens
  double temperature = 0.6;  // 0: greedy
  double top_p = 0.95;
  int seed = 0;             // the validation's sampling seed (the same at every validation)
  std::string pass_reward;  // marks a sample correct; "": the first correctness reward
  bool save_items = true;   // per-item results in <run-dir>/validation/step_NNNNNN.jsonl

  bool enabled() const { return !files.empty() || !suite.empty() || !synthetic.empty(); }

  template <class V>
  void visit(V& v) {
    v("files", files);
    v("suite", suite);
    v("synthetic", synthetic);
    v("prompt_field", prompt_field);
    v("answer_field", answer_field);
    v("tests_field", tests_field);
    v("every", every, at_least(0));
    v("before_train", before_train);
    v("max_items", max_items, at_least(0));
    v("n", n, at_least(1));
    v("max_new_tokens", max_new_tokens, at_least(0));
    v("temperature", temperature, at_least(0));
    v("top_p", top_p, in_range(0, 1));
    v("seed", seed, at_least(0));
    v("pass_reward", pass_reward);
    v("save_items", save_items);
  }
  void check(Checker& c) const {
    c.require(top_p > 0, "top_p", "must be > 0 (1.0 disables nucleus sampling)");
  }
};

}  // namespace grpo::config
