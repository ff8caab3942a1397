// Countdown: reach a target from given numbers with + - * / and parentheses. The generator
// builds only solvable instances (a random expression over the numbers gives the target); the
// verifier scores a completion's answer exactly (rationals, no eval) and is the `countdown`
// reward function's engine (the reward layer wraps score_countdown).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "grpo/core/config_bind.h"
#include "grpo/data/tasks.h"

namespace grpo::data {

// One instance. Its dataset `answer` field is spec(): {"numbers":[3,5,7],"target":22}.
struct CountdownProblem {
  std::vector<int64_t> numbers;
  int64_t target = 0;

  std::string spec() const;
  // Parses spec(); throws grpo::Error naming `where` when malformed (a data error, not the
  // model's).
  static CountdownProblem parse_spec(const std::string& spec, const std::string& where = "");
};

// How answers are judged (the `countdown` reward's options).
struct CountdownOptions {
  bool use_all_numbers = false;        // false: each number at most once; true: exactly once
  bool integer_intermediates = false;  // true: every sub-result must be whole (the TV rules)
  bool require_answer_tags = true;     // false: without <answer> tags, judge the whole text
  double format_score = 0.0;  // score of a parsed expression that misses (TinyZero used 0.1)

  template <class V>
  void visit(V& v) {
    v("use_all_numbers", use_all_numbers);
    v("integer_intermediates", integer_intermediates);
    v("require_answer_tags", require_answer_tags);
    v("format_score", format_score, config::in_range(0.0, 1.0));
  }
};

struct CountdownVerdict {
  double score = 0.0;  // 1 when correct, format_score for a parsed miss, else 0
  // correct | no_answer | parse_error | division_by_zero | unknown_number | number_reuse |
  // unused_number | non_integer_intermediate | wrong_value
  std::string verdict;
  std::string detail;  // for people: "uses 5 twice", "= 21, target 22", ...
};

// The text of the last <answer>...</answer> block, trimmed; `found` says whether there was one.
std::string last_answer_block(std::string_view completion, bool* found);

// Judges an expression, optionally followed by "= <number>" (which must then be the target).
CountdownVerdict check_countdown(std::string_view expression, const CountdownProblem& problem,
                                 const CountdownOptions& options);

// Judges a whole completion: extracts the answer block and checks it against `spec`.
CountdownVerdict score_countdown(std::string_view completion, const std::string& spec,
                                 const CountdownOptions& options);

// Generator knobs (`grpo data make --task countdown --set key=value`).
struct CountdownTaskOptions {
  int count = 4;  // numbers per instance
  int min_number = 1;
  int max_number = 25;
  int max_target = 100;  // targets lie in [1, max_target]
  bool use_all = true;   // the hidden solution uses every number (else a random subset, >= 2)
  SolutionStyle style;

  template <class V>
  void visit(V& v) {
    v("count", count, config::in_range(2, 8));
    v("min_number", min_number, config::at_least(1));
    v("max_number", max_number, config::at_least(1));
    v("max_target", max_target, config::at_least(1));
    v("use_all", use_all);
    style.visit(v);
  }
};

CountdownTaskOptions countdown_preset(Difficulty difficulty);

// Item `index` of the sequence for `seed`: the same (seed, index) always gives the same item.
TaskItem make_countdown(const CountdownTaskOptions& options, uint64_t seed, uint64_t index);

}  // namespace grpo::data
