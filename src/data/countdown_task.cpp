// The countdown generator: solvable instances built from a random expression over the numbers,
// and worked solutions that follow that expression (sometimes after a wrong try, sometimes
// with a re-check); see countdown.h.
#include <algorithm>

#include "grpo/core/error.h"
#include "grpo/data/countdown.h"
#include "task_util.h"

namespace grpo::data {
namespace {

using detail::list_words;
using detail::to_strings;

std::string countdown_prompt(const CountdownProblem& p) {
  std::string numbers;
  for (int64_t n : p.numbers) numbers += (numbers.empty() ? "" : ", ") + std::to_string(n);
  return "Using the numbers [" + numbers + "], " + "write an arithmetic expression that equals " +
         std::to_string(p.target) +
         ". You may use +, -, *, / and parentheses, and each number at most once.";
}

// A different expression over the same numbers whose value misses the target, for a detour.
std::optional<ExprTree> wrong_try(const std::vector<int64_t>& numbers, int64_t target, Rng& rng) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    std::vector<int64_t> pick = numbers;
    rng.shuffle(pick);
    pick.resize(std::min<size_t>(pick.size(), 2 + rng.below(2)));
    auto tree = detail::random_tree(pick, "+-*", rng,
                                    [](char, const Rational&, const Rational&, const Rational& r) {
                                      return r.is_integer() && r.num >= 0;
                                    });
    if (tree && tree->value() != Rational{target, 1}) return tree;
  }
  return std::nullopt;
}

std::string countdown_solution(const CountdownProblem& p, const ExprTree& tree,
                               const SolutionStyle& style, Rng& rng) {
  const int verbosity = static_cast<int>(rng.below(static_cast<uint64_t>(style.max_verbosity) + 1));
  const std::string target = std::to_string(p.target);
  std::string think;
  if (verbosity >= 1) {
    think = "We need to reach " + target + " using " + list_words(to_strings(p.numbers)) + ".";
  }
  if (verbosity >= 1 && rng.chance(style.detour_rate)) {
    if (auto wrong = wrong_try(p.numbers, p.target, rng)) {
      const int64_t got = wrong->value().num;
      think += " Try " + wrong->render() + " = " + std::to_string(got) + ". That is " +
               (got > p.target ? "too large" : "too small") + ", not " + target +
               ". Let me try another way.";
    }
  }
  const auto steps = tree.steps();
  think += (think.empty() ? "" : " ") + detail::narrate_steps(steps, verbosity);
  if (verbosity >= 1) think += " That reaches " + target + ".";
  if (rng.chance(style.self_check_rate)) {
    std::vector<std::string> used;
    for (const auto& n : tree.nodes) {
      if (n.op == 0) used.push_back(std::to_string(n.leaf));
    }
    think += " Let me verify: " + tree.render() + ": ";
    for (size_t i = 0; i < steps.size(); ++i) think += (i ? ", " : "") + steps[i];
    think += ". It uses " + list_words(used) + ", each once, and equals " + target + ". Correct.";
  }
  if (detail::draw_direct(style, rng)) think = tree.render() + " = " + target + ".";
  return detail::format_response(think, tree.render());
}

}  // namespace

CountdownTaskOptions countdown_preset(Difficulty difficulty) {
  CountdownTaskOptions o;
  switch (difficulty) {
    case Difficulty::easy:
      o.count = 3;
      o.max_number = 10;
      o.max_target = 30;
      break;
    case Difficulty::medium:
      break;
    case Difficulty::hard:
      o.count = 5;
      o.max_number = 50;
      o.max_target = 500;
      break;
  }
  return o;
}

TaskItem make_countdown(const CountdownTaskOptions& options, uint64_t seed, uint64_t index) {
  GRPO_CHECK_KIND(config, options.min_number <= options.max_number, "countdown.min_number (",
                  options.min_number, ") exceeds max_number (", options.max_number, ")");
  Rng rng = Rng::derive(seed, index);
  for (int attempt = 0; attempt < 10000; ++attempt) {
    CountdownProblem p;
    for (int i = 0; i < options.count; ++i)
      p.numbers.push_back(rng.between(options.min_number, options.max_number));
    std::vector<int64_t> leaves = p.numbers;
    rng.shuffle(leaves);
    if (!options.use_all) leaves.resize(2 + rng.below(leaves.size() - 1));
    // Whole, positive intermediates keep the hidden solution readable; the verifier is laxer.
    const int64_t cap = int64_t{options.max_target} * std::max(options.max_number, 10);
    auto tree = detail::random_tree(leaves, "+-*/", rng,
                                    [&](char, const Rational&, const Rational&, const Rational& r) {
                                      return r.is_integer() && r.num > 0 && r.num <= cap;
                                    });
    if (!tree || tree->value().num > options.max_target) continue;
    p.target = tree->value().num;
    // A target equal to a given number is solved by writing that number: skip those.
    if (std::find(p.numbers.begin(), p.numbers.end(), p.target) != p.numbers.end()) continue;
    TaskItem item;
    item.task = "countdown";
    item.prompt = countdown_prompt(p);
    item.answer = p.spec();
    item.extra = {{"numbers", p.numbers}, {"target", p.target}, {"solution", tree->render()}};
    item.response = countdown_solution(p, *tree, options.style, rng);
    return item;
  }
  GRPO_FAIL("countdown: no solvable instance found with count=", options.count, ", numbers in [",
            options.min_number, ", ", options.max_number, "], max_target=", options.max_target,
            "; widen the ranges");
}

}  // namespace grpo::data
