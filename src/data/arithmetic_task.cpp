// Multi-step arithmetic: an expression with k operations and a whole-number answer, with a
// worked solution that follows the order of operations; see tasks.h.
#include "grpo/core/error.h"
#include "grpo/data/tasks.h"
#include "task_util.h"

namespace grpo::data {
namespace {

// The inverse of the last step, as a genuine re-check: "a + b = c" is checked by "c - b = a".
std::string inverse_check(const ExprTree& tree) {
  const auto& root = tree.nodes[static_cast<size_t>(tree.root)];
  const std::string a = to_string(tree.nodes[static_cast<size_t>(root.left)].value);
  const std::string b = to_string(tree.nodes[static_cast<size_t>(root.right)].value);
  const std::string c = to_string(root.value);
  switch (root.op) {
    case '+':
      return c + " - " + b + " = " + a;
    case '-':
      return c + " + " + b + " = " + a;
    case '*':
      return b == "0" ? a + " * 0 = 0" : c + " / " + b + " = " + a;
    default:
      return c + " * " + b + " = " + a;
  }
}

}  // namespace

ArithmeticTaskOptions arithmetic_preset(Difficulty difficulty) {
  ArithmeticTaskOptions o;
  switch (difficulty) {
    case Difficulty::easy:
      o.ops = 2;
      o.max_operand = 10;
      o.max_value = 100;
      break;
    case Difficulty::medium:
      break;
    case Difficulty::hard:
      o.ops = 5;
      o.max_operand = 50;
      o.max_value = 5000;
      break;
  }
  return o;
}

TaskItem make_arithmetic(const ArithmeticTaskOptions& options, uint64_t seed, uint64_t index) {
  Rng rng = Rng::derive(seed, index);
  const std::string ops =
      std::string("+-") + (options.multiplication ? "*" : "") + (options.division ? "/" : "");
  for (int attempt = 0; attempt < 10000; ++attempt) {
    std::vector<int64_t> leaves;
    for (int i = 0; i <= options.ops; ++i) leaves.push_back(rng.between(1, options.max_operand));
    const auto accept = [&](char op, const Rational& a, const Rational& b, const Rational& r) {
      // Multiplying or dividing by 1 teaches nothing; everything stays whole and in bounds.
      const Rational one{1, 1};
      if ((op == '/' || op == '*') && (b == one || (op == '*' && a == one))) return false;
      return r.is_integer() && r.num >= 0 && r.num <= options.max_value;
    };
    auto tree = options.chain ? detail::chain_tree(leaves, ops, rng, accept)
                              : detail::random_tree(leaves, ops, rng, accept);
    if (!tree) continue;
    TaskItem item;
    item.task = "arithmetic";
    item.prompt = "Calculate " + tree->render() + ".";
    item.answer = to_string(tree->value());

    const auto& style = options.style;
    const int verbosity =
        static_cast<int>(rng.below(static_cast<uint64_t>(style.max_verbosity) + 1));
    std::string think;
    if (verbosity >= 1)
      think =
          "Work it out one operation at a time, respecting parentheses and doing * and / before + "
          "and -.";
    if (verbosity >= 2) think += " Keep every intermediate result.";
    think += (think.empty() ? "" : " ") + detail::narrate_steps(tree->steps(), verbosity);
    if (verbosity >= 1) think += " So the result is " + item.answer + ".";
    if (rng.chance(style.self_check_rate))
      think += " Let me verify the last step: " + inverse_check(*tree) + ". Correct.";
    if (detail::draw_direct(style, rng)) think = tree->render() + " = " + item.answer + ".";
    item.response = detail::format_response(think, item.answer);
    return item;
  }
  GRPO_FAIL("arithmetic: no expression found with ops=", options.ops,
            ", max_operand=", options.max_operand, ", max_value=", options.max_value,
            "; raise max_value");
}

}  // namespace grpo::data
