// Internal to the math checker: the recursive-descent parser from tokens (math_token.h) to
// Parsed. Structure (lists, groups, intervals, matrices, relations) is in math_parse_struct.cpp,
// arithmetic (sums, products, powers, functions, commands) in math_parse.cpp.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "math_token.h"

namespace grpo::reward::math {

constexpr int kStruct = -2;  // an operand that is a structural value (in Parser::struct_)
constexpr int kMaxDepth = 120;

class Parser {
 public:
  Parser(std::vector<Token> tokens, const MathOptions& options, Parsed& out)
      : t_(std::move(tokens)), options_(options), out_(out) {}

  bool run();

 private:
  const Token& peek(size_t k = 0) const {
    static const Token kEnd;
    return pos_ + k < t_.size() ? t_[pos_ + k] : kEnd;
  }

  bool accept_sym(const char* s) {
    if (is_sym(peek(), s)) {
      ++pos_;
      return true;
    }
    return false;
  }

  int add(Node n) {
    out_.nodes.push_back(n);
    return static_cast<int>(out_.nodes.size()) - 1;
  }

  int binary(Op op, int a, int b) {
    Node n;
    n.op = op;
    n.a = a;
    n.b = b;
    return add(n);
  }

  int leaf(Op op, double v = 0.0) {
    Node n;
    n.op = op;
    n.value = v;
    return add(n);
  }

  int variable(const std::string& name) {
    for (size_t i = 0; i < out_.vars.size(); ++i) {
      if (out_.vars[i] == name) return add_var(static_cast<int>(i));
    }
    out_.vars.push_back(name);
    return add_var(static_cast<int>(out_.vars.size()) - 1);
  }

  int add_var(int index) {
    Node n;
    n.op = Op::var;
    n.var = index;
    return add(n);
  }

  int func(Fn fn, int a, int b = -1) {
    Node n;
    n.op = Op::func;
    n.fn = fn;
    n.a = a;
    n.b = b;
    return add(n);
  }

  bool value_from(int e, Value& v) {
    if (e == kStruct) {
      v = std::move(struct_);
      return true;
    }
    if (e < 0) return false;
    v.kind = Kind::expr;
    v.expr = e;
    return true;
  }

  static int relation_kind(const Token& t) {
    if (is_sym(t, "=")) return 1;
    if (is_sym(t, "<") || is_cmd(t, "lt")) return 2;
    if (is_cmd(t, "le")) return 3;
    if (is_sym(t, ">") || is_cmd(t, "gt")) return 4;
    if (is_cmd(t, "ge")) return 5;
    if (is_cmd(t, "in")) return 6;
    return 0;
  }

  bool is_bare_var(int e) const {
    return e >= 0 && out_.nodes[static_cast<size_t>(e)].op == Op::var;
  }

  bool starts_factor(const Token& t) const {
    switch (t.kind) {
      case Tok::number:
      case Tok::ident:
      case Tok::func:
        return true;
      case Tok::cmd:
        return t.s == "frac" || t.s == "sqrt" || t.s == "pi" || t.s == "binom" || t.s == "infty" ||
               (t.s.size() > 1 && !is_structural_cmd(t.s));
      case Tok::sym:
        return t.s == "(" || t.s == "{";
      default:
        return false;
    }
  }

  static bool is_structural_cmd(const std::string& s) {
    static const char* const kNot[] = {
        "cdot",         "times",    "div",        "pm",    "mp",    "le",     "ge",
        "lt",           "gt",       "ne",         "in",    "cup",   "cap",    "end_matrix",
        "begin_matrix", "dots",     "ldots",      "cdots", "to",    "approx", "rangle",
        "langle",       "emptyset", "varnothing", "mid",   "colon", "rfloor", "rceil"};
    for (const char* k : kNot) {
      if (s == k) return true;
    }
    return false;
  }

  bool integer_arg_follows(size_t k) const {
    return is_sym(peek(k), "{") && peek(k + 1).kind == Tok::number && peek(k + 1).integer &&
           is_sym(peek(k + 2), "}");
  }

  // A structural operand may not take part in arithmetic.
  static bool arith(int a) { return a >= 0; }

  // Structure (math_parse_struct.cpp).
  bool ends_list(const char* close) const;
  // items separated by , or ; up to `close` (not consumed) or the end.
  bool list(std::vector<Value>& items, const char* close);
  // item := union (relation union)*
  bool item(Value& v);
  // x > 3 -> (3, inf); a <= x < b -> [a, b); the variable must stand alone on its side.
  bool inequality(std::vector<Value>& sides, const std::vector<int>& rels, Value& v);
  bool union_value(Value& v);
  int matrix();
  // ( [ \{ < {  : a parenthesised expression, or a tuple / interval / set / bare list.
  int group(const std::string& open);
  bool list_until_cmd(std::vector<Value>& items, const char* cmd);

  // Arithmetic (math_parse.cpp).
  int sum();
  int term();
  int unary();
  int power();
  int postfix(int e);
  // { expr } as an operand (exponents, \frac arguments).
  int braced();
  void note_fraction(int num, int den);
  int primary();
  int primary_inner();
  // x_1, a_{n}: the subscript becomes part of the variable's name.
  std::string subscript();
  int function(Fn fn);
  int command(const Token& t);

  std::vector<Token> t_;
  const MathOptions& options_;
  Parsed& out_;
  size_t pos_ = 0;
  int depth_ = 0;
  Value struct_;
};

}  // namespace grpo::reward::math
