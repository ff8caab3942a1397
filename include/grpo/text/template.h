// Prompt templates: how a dataset prompt becomes the text the policy continues. Built in:
// r1_zero (DeepSeek-R1 paper, Table 1), plain, chatml (Qwen) and llama3; or a custom string.
#pragma once

#include <string>
#include <vector>

namespace grpo::text {

// What a template is made of. The YAML keys are tokenizer.template, tokenizer.custom_template
// and tokenizer.system (grpo/core/config/tokenizer.h); the trainer copies them here.
struct TemplateConfig {
  std::string name = "r1_zero";  // r1_zero, plain, chatml, llama3 or custom
  std::string custom;            // name == custom: text with {prompt} and optionally {system}
  std::string system;            // system message for chatml/llama3/custom; empty: none
};

class PromptTemplate {
 public:
  // Throws a config error for an unknown name or a custom template without {prompt}.
  explicit PromptTemplate(const TemplateConfig& config);

  // The full text up to where the model starts writing (r1_zero ends with "<think>").
  std::string render(const std::string& prompt) const;

  static const std::vector<std::string>& names();

 private:
  std::string pattern_;  // with {prompt} and {system} placeholders
  std::string system_;
};

}  // namespace grpo::text
