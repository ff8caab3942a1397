// `sft:` section: supervised fine-tuning (`grpo sft`) on JSONL records, either prompt + response
// (the loss counts response tokens only) or plain text. Steps, learning rate, schedule, seed and
// device come from `trainer:`, the files and their order from `data:` (docs/training.md).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "grpo/core/config_bind.h"

namespace grpo::config {

enum class SftFormat { prompt_response, text };
inline const std::vector<std::pair<SftFormat, std::string>>& enum_names(SftFormat) {
  static const std::vector<std::pair<SftFormat, std::string>> k{
      {SftFormat::prompt_response, "prompt_response"}, {SftFormat::text, "text"}};
  return k;
}

struct SftConfig {
  SftFormat format = SftFormat::prompt_response;
  std::string response_field = "response";  // prompt_response: the target text
  std::string text_field = "text";          // text: the whole training text
  bool loss_on_prompt = false;  // prompt_response: also learn the (templated) prompt tokens
  bool append_eos = true;       // end every example with the tokenizer's eos token
  int batch_size = 16;          // sequences per optimizer step
  int max_seq_len = 0;  // longer examples are cut (counted in truncated_frac); 0: model's max
  double epochs = 0;    // > 0: steps = ceil(epochs * examples / batch_size), not trainer.steps

  template <class V>
  void visit(V& v) {
    v("format", format);
    v("response_field", response_field, non_empty());
    v("text_field", text_field, non_empty());
    v("loss_on_prompt", loss_on_prompt);
    v("append_eos", append_eos);
    v("batch_size", batch_size, at_least(1));
    v("max_seq_len", max_seq_len, at_least(0));
    v("epochs", epochs, at_least(0));
  }
  void check(Checker& c) const {
    c.require(max_seq_len == 0 || max_seq_len >= 2, "max_seq_len",
              "must be 0 (the model's maximum) or at least 2 tokens");
  }
};

}  // namespace grpo::config
