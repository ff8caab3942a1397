// `tokenizer:` section: where the tokenizer comes from and how prompts are rendered.
#pragma once

#include <string>
#include <vector>

#include "grpo/core/config_bind.h"

namespace grpo::config {

// A SentencePiece tokenizer trained by `grpo sft` on its own data (tiny models from scratch).
struct TokenizerTrainConfig {
  int vocab_size = 0;              // > 0: train into <run-dir>/tokenizer; 0: off
  std::string model_type = "bpe";  // bpe or unigram
  std::vector<std::string> user_symbols{"<think>", "</think>", "<answer>", "</answer>"};
  bool split_digits = true;  // false: frequent numbers become single pieces

  template <class V>
  void visit(V& v) {
    v("vocab_size", vocab_size, at_least(0));
    v("model_type", model_type, one_of({"bpe", "unigram"}));
    v("user_symbols", user_symbols);
    v("split_digits", split_digits);
  }
};

struct TokenizerConfig {
  std::string path;                       // tokenizer folder; empty: the model's folder
  std::string template_name = "r1_zero";  // r1_zero, plain, chatml, llama3, or custom
  std::string custom_template;            // used when template is custom; must contain {prompt}
  std::string system;                     // text substituted for {system}
  TokenizerTrainConfig train;             // grpo sft only: train one instead of loading path

  template <class V>
  void visit(V& v) {
    v("path", path);
    v("template", template_name, one_of({"r1_zero", "plain", "chatml", "llama3", "custom"}));
    v("custom_template", custom_template);
    v("system", system);
    v("train", train);
  }
  void check(Checker& c) const {
    c.require(template_name != "custom" || custom_template.find("{prompt}") != std::string::npos,
              "custom_template", "must contain {prompt} when template is custom");
    c.require(train.vocab_size == 0 || path.empty(), "path",
              "must be empty when train.vocab_size is set (the trained tokenizer is used)");
  }
};

}  // namespace grpo::config
