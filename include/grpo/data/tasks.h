// Synthetic tasks with verifiable answers (countdown, multi-step arithmetic, linear equations)
// for tiny-model experiments: prompts, gold answers and optional worked solutions
// (`<think> ... </think> <answer> ... </answer>`) for SFT pretraining. Deterministic per seed.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "grpo/core/config_bind.h"
#include "grpo/core/config_node.h"

namespace grpo::data {

enum class TaskKind { countdown, arithmetic, equation };
const std::vector<std::pair<TaskKind, std::string>>& enum_names(TaskKind);
enum class Difficulty { easy, medium, hard };
const std::vector<std::pair<Difficulty, std::string>>& enum_names(Difficulty);

// How the worked solutions vary, so SFT data has chains of thought of different lengths.
struct SolutionStyle {
  double self_check_rate = 0.3;  // share ending with "Let me verify: ..." (a real re-check)
  double detour_rate = 0.2;      // countdown: share trying a wrong combination first
  int max_verbosity = 2;         // each solution draws a verbosity 0 (terse) .. max_verbosity
  double direct_rate = 0.0;      // share with no working: the thinking only states the result

  template <class V>
  void visit(V& v) {
    v("self_check_rate", self_check_rate, config::in_range(0.0, 1.0));
    v("detour_rate", detour_rate, config::in_range(0.0, 1.0));
    v("max_verbosity", max_verbosity, config::in_range(0, 2));
    v("direct_rate", direct_rate, config::in_range(0.0, 1.0));
  }
};

struct TaskItem {
  std::string task;      // "countdown" | "arithmetic" | "equation"
  std::string prompt;    // the question, without any chat template
  std::string answer;    // gold answer (countdown: the problem spec, see countdown.h)
  std::string response;  // worked solution "<think> ... </think> <answer> ... </answer>"
  nlohmann::json extra = nlohmann::json::object();  // task fields (countdown: numbers, target)

  // {"prompt", "answer", "task", extra..., and "response" when with_response}.
  nlohmann::json to_json(bool with_response) const;
};

// Multi-step arithmetic: an expression with `ops` operations over whole numbers, every
// intermediate result whole and in [0, max_value]; `+` and `-` always, `*` and `/` optionally.
struct ArithmeticTaskOptions {
  int ops = 3;
  int max_operand = 20;
  int max_value = 500;
  bool multiplication = true;
  bool division = true;
  bool chain = false;  // combine left to right: one running result, no parentheses with + and -
  SolutionStyle style;

  template <class V>
  void visit(V& v) {
    v("ops", ops, config::in_range(1, 12));
    v("max_operand", max_operand, config::at_least(2));
    v("max_value", max_value, config::at_least(10));
    v("multiplication", multiplication);
    v("division", division);
    v("chain", chain);
    style.visit(v);
  }
};

// Linear equations in x with a whole-number solution. forms: 1 = "ax + b = c",
// 2 adds "a(x + b) = c", 3 adds "ax + b = cx + d"; each item draws one of the first `forms`.
struct EquationTaskOptions {
  int forms = 2;
  int max_coefficient = 10;
  int max_constant = 20;
  int min_solution = -10;
  int max_solution = 10;
  SolutionStyle style;

  template <class V>
  void visit(V& v) {
    v("forms", forms, config::in_range(1, 3));
    v("max_coefficient", max_coefficient, config::at_least(2));
    v("max_constant", max_constant, config::at_least(1));
    v("min_solution", min_solution);
    v("max_solution", max_solution);
    style.visit(v);
  }
};

ArithmeticTaskOptions arithmetic_preset(Difficulty difficulty);
EquationTaskOptions equation_preset(Difficulty difficulty);
TaskItem make_arithmetic(const ArithmeticTaskOptions& options, uint64_t seed, uint64_t index);
TaskItem make_equation(const EquationTaskOptions& options, uint64_t seed, uint64_t index);

// Items 0..n-1 of `task` at `difficulty`, with `overrides` (a map of the task's option keys,
// e.g. from --set count=5) bound over the preset; errors name "<task>.<key>".
std::vector<TaskItem> generate_task(TaskKind task, Difficulty difficulty,
                                    const config::Node& overrides, size_t n, uint64_t seed);

}  // namespace grpo::data
