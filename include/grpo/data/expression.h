// Exact arithmetic expressions: rationals with overflow checks, a safe parser/evaluator for
// + - * / and parentheses over whole numbers (no eval, bounded depth and length), and the
// expression trees the synthetic tasks build, render and explain step by step.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace grpo::data {

// num/den in lowest terms, den > 0.
struct Rational {
  int64_t num = 0;
  int64_t den = 1;
  bool is_integer() const { return den == 1; }
  bool operator==(const Rational& o) const { return num == o.num && den == o.den; }
  bool operator!=(const Rational& o) const { return !(*this == o); }
};
std::string to_string(const Rational& r);  // "7" or "7/2" or "-1/3"

// std::nullopt on int64 overflow (and on division by zero for divide).
std::optional<Rational> apply(char op, const Rational& a, const Rational& b);

struct Evaluation {
  bool ok = false;
  std::string error;  // why not ok: "division by zero", "unexpected ')' at 5", ...
  bool division_by_zero = false;
  Rational value;
  std::vector<int64_t> numbers;       // every literal, in the order written
  bool integer_intermediates = true;  // every sub-result (and the value) is a whole number
};

// Grammar: expr := term (('+'|'-') term)* ; term := factor (('*'|'/') factor)* ;
// factor := NUMBER | '(' expr ')'. NUMBER is a run of decimal digits; no unary minus, no
// decimals. Spaces are ignored; 'x' and the Unicode signs for times/divide are not accepted.
Evaluation evaluate(std::string_view text);

// A binary expression tree over whole-number leaves (what the task generators build).
struct ExprTree {
  struct Node {
    char op = 0;  // 0 for a leaf
    int64_t leaf = 0;
    int left = -1;
    int right = -1;
    Rational value;
  };
  std::vector<Node> nodes;
  int root = -1;

  // The expression with only the parentheses that precedence and associativity need.
  std::string render() const;
  std::string render(int node) const;
  // One "a op b = c" line per operation, in evaluation (post-) order.
  std::vector<std::string> steps() const;
  Rational value() const { return nodes[static_cast<size_t>(root)].value; }
};

}  // namespace grpo::data
