// Majority vote over the answers extracted from K sampled completions (cons@k, "self-consistency"):
// answers are grouped by the math checker's equality, and the largest group wins. No LibTorch.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "grpo/reward/math_answer.h"

namespace grpo::reward {

struct VoteResult {
  int winner = -1;   // index (into the answers) of the winning group's first member; -1: none
  int votes = 0;     // members of the winning group
  int groups = 0;    // distinct answers
  int answered = 0;  // answers that voted
};

// Groups `answers` (nullopt or an empty answer does not vote): in order, an
// answer joins the first group whose first member it equals (same normalised LaTeX, or
// math_answers_equal(first member, answer, options)); otherwise it starts a new group. The group
// with the most members wins; a tie goes to the group whose first member came first (the rule of
// Python's Counter.most_common over answers in sample order).
VoteResult majority_vote(const std::vector<std::optional<std::string>>& answers,
                         const MathOptions& options);

}  // namespace grpo::reward
