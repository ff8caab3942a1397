// The `math_boxed` reward: pulls the final answer out of a completion (last \boxed{}, or the
// <answer> block) and decides whether it equals the gold answer: numbers, fractions, radicals,
// percent, units, tuples, sets, intervals, equations, matrices and symbolic expressions.
// Every policy choice is an option below, documented in docs/rewards.md. No LibTorch.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "grpo/core/config_bind.h"
#include "grpo/reward/reward_function.h"

namespace grpo::reward {

// Where the answer must be for the completion to be graded.
enum class AnswerLocation { boxed, answer_tag, any };
const std::vector<std::pair<AnswerLocation, std::string>>& enum_names(AnswerLocation);

// What `50\%` means: `either` matches 50 and 0.5, `fraction` only 0.5, `number` only 50.
enum class PercentPolicy { either, fraction, number };
const std::vector<std::pair<PercentPolicy, std::string>>& enum_names(PercentPolicy);

// Whether `(1,2)` (an ordered tuple) may equal `\{1,2\}` (an unordered set).
enum class TupleSetPolicy { strict, lenient };
const std::vector<std::pair<TupleSetPolicy, std::string>>& enum_names(TupleSetPolicy);

struct MathOptions {
  AnswerLocation location = AnswerLocation::boxed;
  bool after_think = false;  // grade only the text after the last </think>
  PercentPolicy percent = PercentPolicy::either;
  TupleSetPolicy tuple_vs_set = TupleSetPolicy::strict;
  bool allow_unreduced_fractions = true;  // false: \frac{2}{4} is wrong when 1/2 is expected
  bool mixed_numbers = true;              // 2\frac{1}{2} reads as 2 + 1/2
  bool equation_rhs = true;               // `x=3` equals `3` (a bare variable on one side)
  double rel_tol = 1e-6;                  // |a-b| <= rel_tol * max(|a|,|b|)
  int max_answer_chars = 1000;            // longer answers are wrong without parsing
  int max_nodes = 2000;                   // expression size guard
  double time_limit_ms = 50.0;            // per comparison; over budget = not equal
  double correct_score = 1.0;
  double wrong_score = 0.0;

  template <class V>
  void visit(V& v) {
    v("location", location);
    v("after_think", after_think);
    v("percent", percent);
    v("tuple_vs_set", tuple_vs_set);
    v("allow_unreduced_fractions", allow_unreduced_fractions);
    v("mixed_numbers", mixed_numbers);
    v("equation_rhs", equation_rhs);
    v("rel_tol", rel_tol, config::in_range(0.0, 0.5));
    v("max_answer_chars", max_answer_chars, config::at_least(1));
    v("max_nodes", max_nodes, config::at_least(1));
    v("time_limit_ms", time_limit_ms, config::greater_than(0.0));
    v("correct_score", correct_score);
    v("wrong_score", wrong_score);
  }
};

// Content of the last complete \boxed{...} / \fbox{...} (or `\boxed 5`), if any.
std::optional<std::string> last_boxed(std::string_view text);
// The answer text the options say to grade, or nullopt when the completion has none.
std::optional<std::string> extract_math_answer(std::string_view completion,
                                               const MathOptions& options);
// Canonical LaTeX after the string-level clean-up (spaces, \left, \dfrac, units markup...).
std::string normalize_latex(std::string_view latex);
// True when `prediction` (an extracted answer) equals `gold` under the options. Never throws
// on bad input (unparseable answers fall back to a normalised string comparison).
bool math_answers_equal(std::string_view gold, std::string_view prediction,
                        const MathOptions& options);

class MathBoxedReward : public RewardFunction {
 public:
  explicit MathBoxedReward(MathOptions options);
  const std::string& name() const override { return name_; }
  RewardResult score(const Sample& sample) const override;
  const MathOptions& options() const { return options_; }

 private:
  std::string name_ = "math_boxed";
  MathOptions options_;
};

}  // namespace grpo::reward
