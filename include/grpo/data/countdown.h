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
  // Search form (docs/data.md, "countdown"): the target is the value of a chain trial over every
  // number and the worked solution tries chains one at a time, checking each against the
  // target, until one hits or it gives up and guesses.
  bool search = false;
  double give_up_rate = 0.5;  // search: after each failed trial, chance of giving up
  int max_trials = 8;         // search: trials at most before giving up
  int max_value = 50;         // search: bound on every intermediate result of a trial
  bool in_order = false;      // search: trials take the numbers in the order given
  bool fixed_order = false;   // search: the next trial is the first untried one, in a fixed
                              // order, that heads for the target (else a random one)
  // Held-out split: a problem (numbers as a multiset, and target) is in the held-out part iff
  // countdown_in_holdout(problem, holdout). 0: no split. Else `split` picks the part generated
  // ("train": problems outside it, "holdout": problems inside it); items are redrawn until in it.
  double holdout = 0.0;
  std::string split = "train";

  template <class V>
  void visit(V& v) {
    v("count", count, config::in_range(2, 8));
    v("min_number", min_number, config::at_least(1));
    v("max_number", max_number, config::at_least(1));
    v("max_target", max_target, config::at_least(1));
    v("use_all", use_all);
    style.visit(v);
    v("search", search);
    v("give_up_rate", give_up_rate, config::in_range(0.0, 1.0));
    v("max_trials", max_trials, config::in_range(1, 64));
    v("max_value", max_value, config::at_least(2));
    v("in_order", in_order);
    v("fixed_order", fixed_order);
    v("holdout", holdout, config::in_range(0.0, 1.0));
    v("split", split, config::one_of({"train", "holdout"}));
  }
};

// One trial of the search form: the numbers combined left to right, each step "x op n" (or
// "n - x"), every intermediate whole, positive and at most max_value. `steps` are "7 + 9 = 16"
// sentences, `expression` the answer text ("(7 + 9) + 10", "10 - (9 - 7)").
struct CountdownTrial {
  std::vector<std::string> steps;
  std::string expression;
  int64_t value = 0;
  int64_t before_last = 0;  // the running result before the last step
  char last_op = 0;         // '+', '-', '*', or 'r' for "n - x"
};

// Every distinct chain trial over all of `numbers` (the first step writes + and * with the
// smaller number first and - with the larger first; later steps may also subtract the running
// result from the next number), in a fixed order. `in_order`: only the chains that take the
// numbers in the order given (the first step joins the first two, + and * written in that order,
// - still with the larger first; each later step takes the next number).
std::vector<CountdownTrial> countdown_chain_trials(const std::vector<int64_t>& numbers,
                                                   int64_t max_value, bool in_order = false);

// The trials sorted by the first step's operation (+, -, *), then the last step's (+, -, *,
// "n - x"), ties in the order given (a stable sort): the order a fixed_order search tries them.
std::vector<CountdownTrial> countdown_fixed_order(std::vector<CountdownTrial> trials);

// A trial as search text: "Try (7 + 9) + 10: 7 + 9 = 16. 16 + 10 = 26. Check: 26 is 26,
// found." or "... Check: 26 is not 25." (the expression first, so that the answer copies it).
std::string countdown_trial_text(const CountdownTrial& trial, int64_t target);

CountdownTaskOptions countdown_preset(Difficulty difficulty);

// A fixed hash of the problem's canonical form (numbers sorted, then target), mapped to [0, 1):
// the same for every order of the numbers, on every platform and in every version.
double countdown_problem_hash(const CountdownProblem& problem);
// Whether the problem lies in the held-out part of fraction `holdout` (hash < holdout).
bool countdown_in_holdout(const CountdownProblem& problem, double holdout);

// Item `index` of the sequence for `seed`: the same (seed, index) always gives the same item.
TaskItem make_countdown(const CountdownTaskOptions& options, uint64_t seed, uint64_t index);

}  // namespace grpo::data
