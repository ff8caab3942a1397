// Internal to the math checker: the parsed form of an answer (an expression arena plus a tree of
// structural values: tuples, sets, intervals, matrices, equations, text) and the functions that
// build and compare it. See math_parse.cpp (LaTeX -> Parsed) and math_compare.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "grpo/reward/math_answer.h"

namespace grpo::reward::math {

enum class Op : std::uint8_t {
  num,  // value; integer_literal when written as an integer
  var,  // var = index into Parsed::vars
  pi,
  euler,
  imag,
  inf,
  add,
  sub,
  mul,
  div,
  pow,
  neg,
  pm,       // a \pm b; the sign is chosen per evaluation (Node::var = the pm's ordinal)
  func,     // fn(a) or fn(a, b)
  fact,     // a!
  percent,  // a% : scaled by the evaluation's percent factor
};

enum class Fn : std::uint8_t {
  sin,
  cos,
  tan,
  cot,
  sec,
  csc,
  asin,
  acos,
  atan,
  sinh,
  cosh,
  tanh,
  ln,
  log10,
  logb,
  exp,
  sqrt,
  root,
  binom,
  abs,
  floor,
  ceil
};

struct Node {
  Op op = Op::num;
  Fn fn = Fn::sin;
  bool integer_literal = false;
  int a = -1;
  int b = -1;
  int var = -1;
  double value = 0.0;
};

enum class Kind : std::uint8_t { expr, equation, group, matrix, set_union, text };

struct Value {
  Kind kind = Kind::expr;
  int expr = -1;  // expr: root node; equation: left side
  int rhs = -1;   // equation: right side
  char open = 0;  // group: '(' '[' '{' '<', or 0 for a bare list of answers
  char close = 0;
  int rows = 0;  // matrix: items are rows*cols entries, row-major
  int cols = 0;
  unsigned pm_mask = 0;  // expr/equation: signs chosen for the \pm nodes (bit = ordinal)
  std::vector<Value> items;
  std::string text;  // text: lower-cased letters and digits only
};

struct Parsed {
  std::vector<Node> nodes;
  std::vector<std::string> vars;
  int pm_count = 0;
  bool has_percent = false;
  bool unreduced_fraction = false;  // an integer fraction with gcd > 1 or denominator 1
  Value root;
};

// Parses normalised LaTeX (see normalize_latex). Returns false when it does not parse or is
// over the size guard; `out` is then unspecified.
bool parse_answer(std::string_view normalized, const MathOptions& options, Parsed& out);

// Lower-case letters and digits of `s`: the last-resort comparison of unparseable answers.
std::string canonical_text(std::string_view s);

struct Deadline {
  std::chrono::steady_clock::time_point at;
  bool passed() const { return std::chrono::steady_clock::now() > at; }
};

bool values_equal(const Parsed& gold, const Parsed& pred, const MathOptions& options,
                  const Deadline& deadline);

}  // namespace grpo::reward::math
