// Helpers shared by the synthetic task generators (internal to the data layer): random
// expression trees and the text of worked solutions.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "grpo/data/expression.h"
#include "grpo/data/rng.h"
#include "grpo/data/tasks.h"

namespace grpo::data::detail {

// accept(op, a, b, result): whether a combination may appear in the tree.
using Accept = std::function<bool(char, const Rational&, const Rational&, const Rational&)>;

// Combines all `leaves` into one tree by repeatedly joining two random subtrees with a random op
// from `ops` that `accept` allows; nullopt when it gets stuck (the caller draws new leaves).
std::optional<ExprTree> random_tree(const std::vector<int64_t>& leaves, const std::string& ops,
                                    Rng& rng, const Accept& accept);

// The leaves combined left to right, (((l0 op l1) op l2) op l3), each op drawn from those of
// `ops` that `accept` allows; nullopt when none fits at some step.
std::optional<ExprTree> chain_tree(const std::vector<int64_t>& leaves, const std::string& ops,
                                   Rng& rng, const Accept& accept);

// "a, b and c".
std::string list_words(const std::vector<std::string>& items);
std::vector<std::string> to_strings(const std::vector<int64_t>& v);

// Sentences joined as prose: "First, s1. Then s2. Finally, s3."
std::string narrate_steps(const std::vector<std::string>& steps, int verbosity);

// Whether a solution skips its working (SolutionStyle::direct_rate). Draws from `rng` only when
// the rate is above 0, so items made without direct answers stay the same.
bool draw_direct(const SolutionStyle& style, Rng& rng);

// "<think> thinking </think> <answer> answer </answer>".
std::string format_response(const std::string& thinking, const std::string& answer);

}  // namespace grpo::data::detail
