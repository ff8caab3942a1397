// Format and language rewards: `format_think_answer` (R1-Zero's <think>...</think>
// <answer>...</answer> layout, strict / lenient / tag_count) and `language_consistency` (R1
// stage 2: the share of the chain of thought written in the target script). No LibTorch.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "grpo/core/config_bind.h"
#include "grpo/reward/reward_function.h"

namespace grpo::reward {

// strict: exactly one <think> block then exactly one <answer> block, nothing else around them;
// lenient: a <think> block followed later by an <answer> block, anything else allowed;
// tag_count: 0.25 for each of the four tags that appears exactly once (partial credit).
enum class FormatMode { strict, lenient, tag_count };
const std::vector<std::pair<FormatMode, std::string>>& enum_names(FormatMode);

struct FormatOptions {
  FormatMode mode = FormatMode::strict;
  bool think_in_prompt = false;  // the prompt ends with "<think>": the completion starts inside it
  bool require_nonempty = true;  // strict/lenient: the think and answer blocks hold some text

  template <class V>
  void visit(V& v) {
    v("mode", mode);
    v("think_in_prompt", think_in_prompt);
    v("require_nonempty", require_nonempty);
  }
};

// The score in [0, 1] of one completion.
double format_score(std::string_view completion, const FormatOptions& options);

class FormatThinkAnswer : public RewardFunction {
 public:
  explicit FormatThinkAnswer(FormatOptions options) : options_(options) {}
  const std::string& name() const override { return name_; }
  RewardResult score(const Sample& sample) const override;

 private:
  std::string name_ = "format_think_answer";
  FormatOptions options_;
};

// Writing systems, told apart by Unicode block. chinese = Han; japanese = Han + kana.
enum class Script {
  latin,
  cyrillic,
  greek,
  arabic,
  hebrew,
  devanagari,
  thai,
  chinese,
  japanese,
  korean
};
const std::vector<std::pair<Script, std::string>>& enum_names(Script);

enum class TextSegment { think, completion };
const std::vector<std::pair<TextSegment, std::string>>& enum_names(TextSegment);

struct LanguageOptions {
  Script target = Script::latin;
  TextSegment segment = TextSegment::think;  // think: the text inside the <think> block
  double empty_score = 0.0;                  // score of a segment without any word

  template <class V>
  void visit(V& v) {
    v("target", target);
    v("segment", segment);
    v("empty_score", empty_score, config::in_range(0.0, 1.0));
  }
};

struct WordCounts {
  int target = 0;
  int total = 0;
};
// Words of `text` by script: a run of letters of one alphabetic script is one word, each Han or
// kana character is one; LaTeX commands and single Latin letters (variables) are not words.
WordCounts count_words(std::string_view text, Script target);

class LanguageConsistency : public RewardFunction {
 public:
  explicit LanguageConsistency(LanguageOptions options) : options_(options) {}
  const std::string& name() const override { return name_; }
  RewardResult score(const Sample& sample) const override;

 private:
  std::string name_ = "language_consistency";
  LanguageOptions options_;
};

}  // namespace grpo::reward
