// `data:` section: the JSONL prompt datasets and how their fields map onto samples.
#pragma once

#include <string>
#include <vector>

#include "grpo/core/config_bind.h"

namespace grpo::config {

struct DataConfig {
  std::vector<std::string> train_files;  // JSONL, one prompt per line
  std::string prompt_field = "prompt";
  std::string answer_field = "answer";  // gold answer for math rewards
  std::string tests_field = "tests";    // test cases for code rewards
  bool shuffle = true;
  int seed = 0;
  int max_prompt_tokens = 512;  // longer prompts are an error, never silently cut

  template <class V>
  void visit(V& v) {
    v("train_files", train_files);
    v("prompt_field", prompt_field, non_empty());
    v("answer_field", answer_field);
    v("tests_field", tests_field);
    v("shuffle", shuffle);
    v("seed", seed, at_least(0));
    v("max_prompt_tokens", max_prompt_tokens, at_least(1));
  }
};

}  // namespace grpo::config
