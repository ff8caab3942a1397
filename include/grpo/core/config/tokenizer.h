// `tokenizer:` section: where the tokenizer comes from and how prompts are rendered.
#pragma once

#include <string>

#include "grpo/core/config_bind.h"

namespace grpo::config {

struct TokenizerConfig {
  std::string path;                       // tokenizer folder; empty: the model's folder
  std::string template_name = "r1_zero";  // r1_zero, plain, chatml, llama3, or custom
  std::string custom_template;            // used when template is custom; must contain {prompt}
  std::string system;                     // text substituted for {system}

  template <class V>
  void visit(V& v) {
    v("path", path);
    v("template", template_name, one_of({"r1_zero", "plain", "chatml", "llama3", "custom"}));
    v("custom_template", custom_template);
    v("system", system);
  }
  void check(Checker& c) const {
    c.require(template_name != "custom" || custom_template.find("{prompt}") != std::string::npos,
              "custom_template", "must contain {prompt} when template is custom");
  }
};

}  // namespace grpo::config
