// The gold answer text of a record's answer field, the same for training prompts
// (data::load_prompt_file), validation and `grpo eval` (train::load_eval_items).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace grpo::data {

// A string as is, except that the text after its last `####` is taken when it has one (GSM8K's
// rationale); a number or boolean as its JSON spelling (AMC's 27.0); a list (OlympiadBench's
// final_answer) as its items joined by ", "; null: "". Throws grpo::Error for objects and nested
// lists. A gold that ends in \boxed{} (a full solution) is reduced to its box by math_boxed itself.
std::string gold_answer_text(const nlohmann::json& value);

}  // namespace grpo::data
