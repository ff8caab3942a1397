// The exact expression evaluator and tree rendering, against hand-computed values.
#include "grpo/data/expression.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace grpo::data {
namespace {

TEST(Expression, EvaluatesWithPrecedenceAndParentheses) {
  auto e = evaluate("3 + 4 * (5 - 2)");
  ASSERT_TRUE(e.ok) << e.error;
  EXPECT_EQ(e.value, (Rational{15, 1}));
  EXPECT_EQ(e.numbers, (std::vector<int64_t>{3, 4, 5, 2}));
  EXPECT_TRUE(e.integer_intermediates);

  EXPECT_EQ(evaluate("10 - 4 - 3").value, (Rational{3, 1}));  // left-associative
  EXPECT_EQ(evaluate("48 / 4 / 2").value, (Rational{6, 1}));
  EXPECT_EQ(evaluate("(((7)))").value, (Rational{7, 1}));
  EXPECT_EQ(evaluate(" 2*3\t+\n4 ").value, (Rational{10, 1}));
  EXPECT_EQ(evaluate("2 - 5").value, (Rational{-3, 1}));  // negative results are fine
}

TEST(Expression, ExactRationals) {
  // 6 / (1 - 3/4) = 6 / (1/4) = 24, through the non-whole 3/4 and 1/4.
  auto e = evaluate("6/(1-3/4)");
  ASSERT_TRUE(e.ok);
  EXPECT_EQ(e.value, (Rational{24, 1}));
  EXPECT_FALSE(e.integer_intermediates);
  // 1/3 + 1/6 = 1/2 exactly (floating point would give 0.49999...).
  EXPECT_EQ(evaluate("1/3 + 1/6").value, (Rational{1, 2}));
  EXPECT_EQ(to_string(evaluate("7/2").value), "7/2");
  EXPECT_EQ(to_string(evaluate("1 - 4/3").value), "-1/3");
  EXPECT_FALSE(evaluate("7/2").integer_intermediates);
}

TEST(Expression, RejectsMalformedInputWithAReason) {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {"", "empty expression"},
      {"1 +", "unexpected end of expression"},
      {"(1 + 2", "missing ')'"},
      {"1 + 2)", "unexpected ')' at position 6"},
      {"2 * -3", "unexpected '-' at position 5"},
      {"-3 + 5", "unexpected '-' at position 1"},
      {"1.5 * 2", "only whole numbers are allowed"},
      {"2 x 3", "unexpected 'x' at position 3"},
      {"2 ** 3", "unexpected '*' at position 4"},
      {"__import__('os')", "unexpected '_' at position 1"},
      {"99999999999999999999", "number too large"},
      {"4 / (2 - 2)", "division by zero"},
  };
  for (const auto& c : cases) {
    auto e = evaluate(c.text);
    EXPECT_FALSE(e.ok) << c.text;
    EXPECT_EQ(e.error, c.error) << c.text;
  }
  EXPECT_TRUE(evaluate("4 / (2 - 2)").division_by_zero);
}

TEST(Expression, BoundsHostileInput) {
  std::string deep(200, '(');
  deep += "1" + std::string(200, ')');
  EXPECT_EQ(evaluate(deep).error, "parentheses nested deeper than 64");
  std::string nested64 = std::string(64, '(') + "1" + std::string(64, ')');
  EXPECT_TRUE(evaluate(nested64).ok);
  EXPECT_EQ(evaluate(std::string(600, '1')).error, "expression longer than 512 characters");
  // 3037000500^2 overflows int64: reported, not wrapped.
  EXPECT_EQ(evaluate("3037000500 * 3037000500").error, "number too large");
}

TEST(Expression, ApplyDetectsOverflowAndZeroDivision) {
  const Rational big{std::numeric_limits<int64_t>::max(), 1};
  EXPECT_FALSE(apply('*', big, Rational{2, 1}).has_value());
  EXPECT_FALSE(apply('/', Rational{1, 1}, Rational{0, 1}).has_value());
  EXPECT_EQ(*apply('/', Rational{2, 3}, Rational{4, 9}), (Rational{3, 2}));
}

ExprTree make_tree(char op_root, int64_t a, char op_inner, int64_t b, int64_t c, bool inner_left) {
  // Builds (a op_inner b) op_root c when inner_left, else c op_root (a op_inner b).
  ExprTree t;
  auto leaf = [&](int64_t v) {
    ExprTree::Node n;
    n.leaf = v;
    n.value = Rational{v, 1};
    t.nodes.push_back(n);
    return static_cast<int>(t.nodes.size()) - 1;
  };
  auto node = [&](char op, int l, int r) {
    ExprTree::Node n;
    n.op = op;
    n.left = l;
    n.right = r;
    n.value =
        *apply(op, t.nodes[static_cast<size_t>(l)].value, t.nodes[static_cast<size_t>(r)].value);
    t.nodes.push_back(n);
    return static_cast<int>(t.nodes.size()) - 1;
  };
  int inner = node(op_inner, leaf(a), leaf(b));
  int other = leaf(c);
  t.root = inner_left ? node(op_root, inner, other) : node(op_root, other, inner);
  return t;
}

TEST(ExprTree, RendersOnlyNeededParenthesesAndStepsInOrder) {
  EXPECT_EQ(make_tree('-', 8, '-', 5, 2, true).render(), "8 - 5 - 2");
  EXPECT_EQ(make_tree('-', 5, '-', 2, 8, false).render(), "8 - (5 - 2)");
  EXPECT_EQ(make_tree('*', 2, '+', 3, 4, true).render(), "(2 + 3) * 4");
  EXPECT_EQ(make_tree('+', 2, '*', 3, 4, false).render(), "4 + 2 * 3");
  EXPECT_EQ(make_tree('/', 6, '*', 2, 3, false).render(), "3 / (6 * 2)");
  auto t = make_tree('*', 2, '+', 3, 4, true);
  EXPECT_EQ(t.steps(), (std::vector<std::string>{"2 + 3 = 5", "5 * 4 = 20"}));
  EXPECT_EQ(t.value(), (Rational{20, 1}));
  // The rendered text evaluates to the tree's value.
  for (const auto& tree :
       {make_tree('-', 5, '-', 2, 8, false), make_tree('/', 6, '*', 2, 3, false)}) {
    EXPECT_EQ(evaluate(tree.render()).value, tree.value()) << tree.render();
  }
}

}  // namespace
}  // namespace grpo::data
