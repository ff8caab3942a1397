// Linear equations in x with whole-number solutions ("3x + 5 = 20", "2(x - 4) = 6",
// "5x + 1 = 2x + 13") and worked solutions that isolate x step by step; see tasks.h.
#include <cstdlib>

#include "grpo/core/error.h"
#include "grpo/data/tasks.h"
#include "task_util.h"

namespace grpo::data {
namespace {

// "3x", "-x", "x".
std::string x_term(int64_t a) {
  if (a == 1) return "x";
  if (a == -1) return "-x";
  return std::to_string(a) + "x";
}
// " + 5" / " - 5".
std::string plus(int64_t b) {
  return b < 0 ? " - " + std::to_string(-b) : " + " + std::to_string(b);
}
std::string paren(int64_t v) { return v < 0 ? "(" + std::to_string(v) + ")" : std::to_string(v); }

int64_t nonzero(Rng& rng, int64_t bound) {
  int64_t v = rng.between(1, bound);
  return rng.chance(0.5) ? -v : v;
}

// Steps from "a x + b = c" to "x = c'": the tail shared by all forms.
void isolate(int64_t a, int64_t b, int64_t c, std::vector<std::string>& steps) {
  if (b != 0) {
    steps.push_back(
        (b > 0 ? "Subtract " + std::to_string(b) + " from" : "Add " + std::to_string(-b) + " to") +
        std::string(" both sides: ") + x_term(a) + " = " + std::to_string(c - b));
  }
  if (a != 1) {
    steps.push_back("Divide both sides by " + std::to_string(a) +
                    ": x = " + std::to_string((c - b) / a));
  }
}

}  // namespace

EquationTaskOptions equation_preset(Difficulty difficulty) {
  EquationTaskOptions o;
  switch (difficulty) {
    case Difficulty::easy:
      o.forms = 1;
      o.max_coefficient = 5;
      o.max_constant = 10;
      o.min_solution = 0;
      o.max_solution = 10;
      break;
    case Difficulty::medium:
      break;
    case Difficulty::hard:
      o.forms = 3;
      o.max_coefficient = 12;
      o.max_constant = 50;
      o.min_solution = -20;
      o.max_solution = 20;
      break;
  }
  return o;
}

TaskItem make_equation(const EquationTaskOptions& options, uint64_t seed, uint64_t index) {
  GRPO_CHECK_KIND(config, options.min_solution <= options.max_solution, "equation.min_solution (",
                  options.min_solution, ") exceeds max_solution (", options.max_solution, ")");
  Rng rng = Rng::derive(seed, index);
  const int64_t x = rng.between(options.min_solution, options.max_solution);
  const int form = 1 + static_cast<int>(rng.below(static_cast<uint64_t>(options.forms)));
  int64_t a = nonzero(rng, options.max_coefficient);
  const int64_t b = nonzero(rng, options.max_constant);
  std::string equation, check;
  std::vector<std::string> steps;
  if (form == 1) {
    const int64_t c = a * x + b;
    equation = x_term(a) + plus(b) + " = " + std::to_string(c);
    isolate(a, b, c, steps);
    check = std::to_string(a) + " * " + paren(x) + plus(b) + " = " + std::to_string(a * x) +
            plus(b) + " = " + std::to_string(c);
  } else if (form == 2) {
    // |a| >= 2: "1(x + 5)" and "-1(x + 5)" read oddly and make the division step empty.
    if (a == 1 || a == -1) a *= rng.between(2, options.max_coefficient);
    const int64_t c = a * (x + b);
    equation = std::to_string(a) + "(x" + plus(b) + ") = " + std::to_string(c);
    steps.push_back("Divide both sides by " + std::to_string(a) + ": x" + plus(b) + " = " +
                    std::to_string(x + b));
    isolate(1, b, x + b, steps);
    check = std::to_string(a) + " * (" + std::to_string(x) + plus(b) + ") = " + std::to_string(a) +
            " * " + paren(x + b) + " = " + std::to_string(c);
  } else {
    int64_t c = rng.between(1, options.max_coefficient);
    if (c == a) c = a == 1 ? 2 : a - 1;  // a != c, or x would cancel
    const int64_t d = (a - c) * x + b;
    equation = x_term(a) + plus(b) + " = " + x_term(c) + plus(d);
    steps.push_back("Subtract " + x_term(c) + " from both sides: " + x_term(a - c) + plus(b) +
                    " = " + std::to_string(d));
    isolate(a - c, b, d, steps);
    check = "the left side is " + std::to_string(a * x + b) + " and the right side is " +
            std::to_string(c * x + d) + ", equal";
  }
  TaskItem item;
  item.task = "equation";
  item.prompt = "Solve for x: " + equation + ".";
  item.answer = std::to_string(x);

  const auto& style = options.style;
  const int verbosity = static_cast<int>(rng.below(static_cast<uint64_t>(style.max_verbosity) + 1));
  std::string think;
  if (verbosity >= 1) think = "We want x alone on one side of " + equation + ".";
  for (const auto& s : steps) think += (think.empty() ? "" : " ") + s + ".";
  if (steps.empty()) think += (think.empty() ? "" : " ") + std::string("x = ") + item.answer + ".";
  if (verbosity >= 2) think += " So the solution is x = " + item.answer + ".";
  if (rng.chance(style.self_check_rate))
    think += " Let me verify with x = " + item.answer + ": " + check + ". Correct.";
  if (detail::draw_direct(style, rng)) think = "x = " + item.answer + ".";
  item.response = detail::format_response(think, item.answer);
  return item;
}

}  // namespace grpo::data
