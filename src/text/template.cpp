// Prompt templates. Placeholders are replaced in one pass over the template, so a prompt that
// itself contains "{system}" or "{prompt}" is inserted verbatim.
#include "grpo/text/template.h"

#include "grpo/core/error.h"

namespace grpo::text {

namespace {

// DeepSeek-R1 paper, Table 1 (the R1-Zero training template); the assistant turn opens with
// <think> so that every completion starts inside the reasoning block.
constexpr const char* kR1Zero =
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process and answer are enclosed within "
    "<think> </think> and <answer> </answer> tags, respectively, i.e., <think> reasoning process "
    "here </think> <answer> answer here </answer>. User: {prompt}. Assistant: <think>";

constexpr const char* kChatmlSystem = "<|im_start|>system\n{system}<|im_end|>\n";
constexpr const char* kChatml = "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n";

constexpr const char* kLlama3Begin = "<|begin_of_text|>";
constexpr const char* kLlama3System =
    "<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>";
constexpr const char* kLlama3 =
    "<|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n";

}  // namespace

const std::vector<std::string>& PromptTemplate::names() {
  static const std::vector<std::string> names = {"r1_zero", "plain", "chatml", "llama3", "custom"};
  return names;
}

PromptTemplate::PromptTemplate(const TemplateConfig& config) : system_(config.system) {
  const bool has_system = !config.system.empty();
  if (config.name == "r1_zero") {
    pattern_ = kR1Zero;
  } else if (config.name == "plain") {
    pattern_ = "{prompt}";
  } else if (config.name == "chatml") {
    pattern_ = std::string(has_system ? kChatmlSystem : "") + kChatml;
  } else if (config.name == "llama3") {
    pattern_ = std::string(kLlama3Begin) + (has_system ? kLlama3System : "") + kLlama3;
  } else if (config.name == "custom") {
    GRPO_CHECK_KIND(config, config.custom.find("{prompt}") != std::string::npos,
                    "template.custom must contain {prompt}; got '", config.custom, "'");
    pattern_ = config.custom;
  } else {
    GRPO_CHECK_KIND(config, false, "template.name '", config.name,
                    "' is unknown; expected one of r1_zero, plain, chatml, llama3, custom");
  }
  GRPO_CHECK_KIND(config, config.name == "custom" || config.custom.empty(),
                  "template.custom is set but template.name is '", config.name, "', not custom");
}

std::string PromptTemplate::render(const std::string& prompt) const {
  static const std::string kPrompt = "{prompt}", kSystem = "{system}";
  std::string out;
  out.reserve(pattern_.size() + prompt.size() + system_.size());
  for (std::size_t pos = 0; pos < pattern_.size();) {
    if (pattern_.compare(pos, kPrompt.size(), kPrompt) == 0) {
      out += prompt;
      pos += kPrompt.size();
    } else if (pattern_.compare(pos, kSystem.size(), kSystem) == 0) {
      out += system_;
      pos += kSystem.size();
    } else {
      out += pattern_[pos++];
    }
  }
  return out;
}

}  // namespace grpo::text
