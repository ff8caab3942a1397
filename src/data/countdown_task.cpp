// The countdown generator: solvable instances built from a random expression over the numbers,
// and worked solutions that follow that expression (sometimes after a wrong try, sometimes
// with a re-check); see countdown.h.
#include <algorithm>
#include <cstddef>
#include <utility>

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

struct ChainSearch {
  const std::vector<int64_t>& numbers;
  int64_t max_value;
  bool in_order = false;  // only the chains that take the numbers in the order given
  std::vector<CountdownTrial> trials;
  std::vector<int64_t> partial_values;  // results of chains over fewer than all numbers
  std::vector<std::string> seen;        // expressions already listed (equal numbers repeat)

  void extend(uint32_t used, const CountdownTrial& at) {
    const size_t n = numbers.size();
    if (used == (1u << n) - 1) {
      if (std::find(seen.begin(), seen.end(), at.expression) != seen.end()) return;
      seen.push_back(at.expression);
      trials.push_back(at);
      return;
    }
    if (used != 0) partial_values.push_back(at.value);
    for (size_t i = 0; i < n; ++i) {
      if (used & (1u << i)) continue;
      if (in_order && i > 0 && !(used & (1u << (i - 1)))) continue;  // the next number only
      const int64_t x = at.value;
      const int64_t m = numbers[i];
      for (char op : std::string("+-*r")) {
        int64_t y = 0;
        if (op == '+') y = x + m;
        if (op == '-') y = x - m;
        if (op == '*') y = x * m;
        if (op == 'r') y = m - x;
        if (y <= 0 || y > max_value) continue;
        CountdownTrial next = at;
        const std::string xs = std::to_string(x);
        const std::string ms = std::to_string(m);
        const std::string sym(1, op == 'r' ? '-' : op);
        next.before_last = x;
        next.last_op = op;
        next.value = y;
        if (op == 'r') {
          next.steps.push_back(ms + " - " + xs + " = " + std::to_string(y));
          next.expression = ms + " - (" + at.expression + ")";
        } else {
          next.steps.push_back(xs + " " + sym + " " + ms + " = " + std::to_string(y));
          next.expression = "(" + at.expression + ") " + sym + " " + ms;
        }
        extend(used | (1u << i), next);
      }
    }
  }

  void run() {
    const size_t n = numbers.size();
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) {
        if (i == j) continue;
        if (in_order && i + j != 1) continue;  // the first two numbers
        const int64_t a = numbers[i];
        const int64_t b = numbers[j];
        for (char op : std::string("+-*")) {
          // + and * once: smaller number first, or in order; - with the larger first.
          if (op == '-' ? a <= b : (in_order ? i > j : a > b)) continue;
          const int64_t x = op == '+' ? a + b : op == '-' ? a - b : a * b;
          if (x <= 0 || x > max_value) continue;
          CountdownTrial first;
          const std::string sym(1, op);
          first.expression = std::to_string(a) + " " + sym + " " + std::to_string(b);
          first.steps.push_back(first.expression + " = " + std::to_string(x));
          first.value = x;
          first.before_last = a;
          first.last_op = op;
          extend((1u << i) | (1u << j), first);
        }
      }
    }
  }
};

// Whether a trial's last step moves its running result towards the target (up when below it,
// down when above): a choice a model can make by comparing the running result with the target.
bool heads_for(const CountdownTrial& t, int64_t target) {
  const int64_t x = t.before_last;
  return (x < target && t.value > x) || (x > target && t.value < x);
}

std::string search_solution(const CountdownProblem& p, std::vector<CountdownTrial> trials,
                            const CountdownTaskOptions& o, Rng& rng) {
  if (o.fixed_order) trials = countdown_fixed_order(std::move(trials));
  std::vector<size_t> left(trials.size());
  for (size_t i = 0; i < left.size(); ++i) left[i] = i;
  // A guess: any expression over all the numbers with + - * / (no check of its value), so it
  // is right about as rarely as a blind guess; the search's trials are the narrower set.
  auto guess = [&](const std::string& think) {
    std::string expression;
    for (int attempt = 0; attempt < 64 && expression.empty(); ++attempt) {
      std::vector<int64_t> leaves = p.numbers;
      rng.shuffle(leaves);
      auto tree = detail::random_tree(
          leaves, "+-*/", rng,
          [](char, const Rational&, const Rational&, const Rational&) { return true; });
      if (tree) expression = tree->render();
    }
    if (expression.empty()) expression = trials[rng.pick(left)].expression;
    // The guess is written in the thinking too, so that every answer copies the last
    // expression the thinking named.
    return detail::format_response(
        think + (think.empty() ? "" : " ") + "Let me guess: " + expression + ".", expression);
  };
  if (detail::draw_direct(o.style, rng)) return guess("");
  int budget = 1;
  while (budget < o.max_trials && !rng.chance(o.give_up_rate)) ++budget;
  std::string think;
  for (int k = 0; k < budget && !left.empty(); ++k) {
    std::vector<size_t> toward;
    for (size_t i = 0; i < left.size(); ++i) {
      if (heads_for(trials[left[i]], p.target)) toward.push_back(i);
    }
    size_t at = 0;  // fixed_order: the first untried trial that heads for the target
    if (!o.fixed_order) at = toward.empty() ? rng.below(left.size()) : rng.pick(toward);
    if (o.fixed_order && !toward.empty()) at = toward.front();
    const CountdownTrial& t = trials[left[at]];
    left.erase(left.begin() + static_cast<std::ptrdiff_t>(at));
    think += (think.empty() ? "" : " ") + countdown_trial_text(t, p.target);
    if (t.value == p.target) return detail::format_response(think, t.expression);
  }
  return guess(think);
}

TaskItem make_search_countdown(const CountdownTaskOptions& o, Rng& rng) {
  for (int attempt = 0; attempt < 10000; ++attempt) {
    CountdownProblem p;
    for (int i = 0; i < o.count; ++i) p.numbers.push_back(rng.between(o.min_number, o.max_number));
    ChainSearch all{p.numbers, o.max_value, false, {}, {}, {}};
    all.run();
    ChainSearch ordered{p.numbers, o.max_value, true, {}, {}, {}};
    if (o.in_order) ordered.run();
    const ChainSearch& search = o.in_order ? ordered : all;
    std::vector<size_t> targets;  // trials whose value needs every number (in any order)
    for (size_t i = 0; i < search.trials.size(); ++i) {
      const int64_t v = search.trials[i].value;
      const auto& pv = all.partial_values;
      if (v > o.max_target || std::find(p.numbers.begin(), p.numbers.end(), v) != p.numbers.end() ||
          std::find(pv.begin(), pv.end(), v) != pv.end())
        continue;
      targets.push_back(i);
    }
    if (targets.empty()) continue;
    const CountdownTrial& hidden = search.trials[rng.pick(targets)];
    p.target = hidden.value;
    TaskItem item;
    item.task = "countdown";
    item.prompt = countdown_prompt(p);
    item.answer = p.spec();
    item.extra = {{"numbers", p.numbers}, {"target", p.target}, {"solution", hidden.expression}};
    item.response = search_solution(p, search.trials, o, rng);
    return item;
  }
  GRPO_FAIL("countdown: no search instance found with count=", o.count, ", numbers in [",
            o.min_number, ", ", o.max_number, "], max_target=", o.max_target,
            ", max_value=", o.max_value, "; widen the ranges");
}

}  // namespace

std::vector<CountdownTrial> countdown_chain_trials(const std::vector<int64_t>& numbers,
                                                   int64_t max_value, bool in_order) {
  GRPO_CHECK_KIND(config, numbers.size() >= 2 && numbers.size() <= 8,
                  "countdown search: needs 2 to 8 numbers, got ", numbers.size());
  ChainSearch search{numbers, max_value, in_order, {}, {}, {}};
  search.run();
  return search.trials;
}

std::vector<CountdownTrial> countdown_fixed_order(std::vector<CountdownTrial> trials) {
  // The operation of a step "a op b = c" is the character after the first space.
  auto rank = [](const CountdownTrial& t) {
    const std::string& first = t.steps.front();
    const char op = first[first.find(' ') + 1];
    const int r1 = static_cast<int>(std::string("+-*").find(op));
    const int r2 = static_cast<int>(std::string("+-*r").find(t.steps.size() > 1 ? t.last_op : '+'));
    return r1 * 4 + r2;
  };
  std::stable_sort(
      trials.begin(), trials.end(),
      [&](const CountdownTrial& a, const CountdownTrial& b) { return rank(a) < rank(b); });
  return trials;
}

std::string countdown_trial_text(const CountdownTrial& trial, int64_t target) {
  std::string text = "Try " + trial.expression + ": ";
  for (const auto& step : trial.steps) text += step + ". ";
  const std::string v = std::to_string(trial.value);
  const std::string t = std::to_string(target);
  return text + "Check: " + v +
         (trial.value == target ? " is " + t + ", found." : " is not " + t + ".");
}

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

double countdown_problem_hash(const CountdownProblem& problem) {
  std::vector<int64_t> numbers = problem.numbers;
  std::sort(numbers.begin(), numbers.end());
  // FNV-1a over the canonical text "n1,n2,...:target", then splitmix64's finalizer.
  std::string canonical;
  for (int64_t n : numbers) canonical += std::to_string(n) + ",";
  canonical += ":" + std::to_string(problem.target);
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : canonical) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  h ^= h >> 31;
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

bool countdown_in_holdout(const CountdownProblem& problem, double holdout) {
  return countdown_problem_hash(problem) < holdout;
}

namespace {

TaskItem make_plain_countdown(const CountdownTaskOptions& options, Rng& rng) {
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

TaskItem draw_countdown(const CountdownTaskOptions& options, Rng& rng) {
  return options.search ? make_search_countdown(options, rng) : make_plain_countdown(options, rng);
}

}  // namespace

TaskItem make_countdown(const CountdownTaskOptions& options, uint64_t seed, uint64_t index) {
  GRPO_CHECK_KIND(config, options.min_number <= options.max_number, "countdown.min_number (",
                  options.min_number, ") exceeds max_number (", options.max_number, ")");
  GRPO_CHECK_KIND(config, options.holdout >= 0.0 && options.holdout < 1.0, "countdown.holdout (",
                  options.holdout, ") must be in [0, 1): the fraction of problems held out");
  GRPO_CHECK_KIND(config, options.split == "train" || options.split == "holdout",
                  "countdown.split (\"", options.split, "\") must be train or holdout");
  GRPO_CHECK_KIND(config, options.holdout > 0.0 || options.split == "train",
                  "countdown.split=holdout needs countdown.holdout > 0 (no problem is held out)");
  if (options.search) {
    GRPO_CHECK_KIND(config, options.count <= 4, "countdown.search: count (", options.count,
                    ") must be at most 4 (every chain trial is listed)");
  }
  Rng rng = Rng::derive(seed, index);
  if (options.holdout == 0.0) return draw_countdown(options, rng);
  // Redraw (continuing the same stream) until the problem is in the requested part: with
  // split=train the items whose first draw is outside the held-out part are the unsplit ones.
  const bool want_holdout = options.split == "holdout";
  constexpr int kRedraws = 10000;
  for (int attempt = 0; attempt < kRedraws; ++attempt) {
    TaskItem item = draw_countdown(options, rng);
    if (countdown_in_holdout(CountdownProblem::parse_spec(item.answer), options.holdout) ==
        want_holdout)
      return item;
  }
  throw Error(grpo::detail::concat("countdown.holdout=", options.holdout, ", split=", options.split,
                                   ": no problem in that part after ", kRedraws,
                                   " draws; these settings have too few problems for the fraction "
                                   "(change countdown.holdout or widen the ranges)"),
              ErrorKind::config);
}

}  // namespace grpo::data
