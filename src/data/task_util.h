// Helpers shared by the synthetic task generators (internal to the data layer): random
// expression trees and the text of worked solutions.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "grpo/data/expression.h"
#include "grpo/data/rng.h"

namespace grpo::data::detail {

// accept(op, a, b, result): whether a combination may appear in the tree.
using Accept = std::function<bool(char, const Rational&, const Rational&, const Rational&)>;

// Combines all `leaves` into one tree by repeatedly joining two random subtrees with a random op
// from `ops` that `accept` allows; nullopt when it gets stuck (the caller draws new leaves).
std::optional<ExprTree> random_tree(const std::vector<int64_t>& leaves, const std::string& ops,
                                    Rng& rng, const Accept& accept);

// "a, b and c".
std::string list_words(const std::vector<std::string>& items);
std::vector<std::string> to_strings(const std::vector<int64_t>& v);

// Sentences joined as prose: "First, s1. Then s2. Finally, s3."
std::string narrate_steps(const std::vector<std::string>& steps, int verbosity);

// "<think> thinking </think> <answer> answer </answer>".
std::string format_response(const std::string& thinking, const std::string& answer);

}  // namespace grpo::data::detail
