// The structural half of the answer parser: lists of answers, relations (equations and
// inequalities turned into intervals), unions, bracket groups (tuples, sets, intervals) and
// matrices. Arithmetic operands come from math_parse.cpp.
#include <string>
#include <utility>

#include "math_parser.h"

namespace grpo::reward::math {

bool Parser::run() {
  std::vector<Value> items;
  if (!list(items, nullptr)) return false;
  if (pos_ != t_.size()) return false;
  if (items.size() == 1) {
    out_.root = std::move(items[0]);
  } else {
    out_.root.kind = Kind::group;
    out_.root.items = std::move(items);
  }
  return static_cast<int>(out_.nodes.size()) <= options_.max_nodes && out_.pm_count <= 4;
}

bool Parser::ends_list(const char* close) const {
  const Token& t = peek();
  if (t.kind == Tok::end) return true;
  if (close == nullptr) return false;
  if (is_sym(t, close)) return true;
  // Intervals may close with the other bracket: [1, 2) and (1, 2].
  if ((std::string(close) == ")" || std::string(close) == "]") &&
      (is_sym(t, ")") || is_sym(t, "]"))) {
    return true;
  }
  return false;
}

bool Parser::list(std::vector<Value>& items, const char* close) {
  if (ends_list(close)) return true;  // empty group
  for (;;) {
    Value v;
    if (!item(v)) return false;
    items.push_back(std::move(v));
    if (accept_sym(",") || accept_sym(";")) {
      if (ends_list(close)) return true;  // trailing separator
      continue;
    }
    return ends_list(close);
  }
}

bool Parser::item(Value& v) {
  Value first;
  if (!union_value(first)) return false;
  std::vector<Value> sides{std::move(first)};
  std::vector<int> rels;
  while (int r = relation_kind(peek())) {
    ++pos_;
    Value next;
    if (!union_value(next)) return false;
    rels.push_back(r);
    sides.push_back(std::move(next));
  }
  if (rels.empty()) {
    v = std::move(sides[0]);
    return true;
  }
  if (rels.size() == 1 && (rels[0] == 1 || rels[0] == 6)) {
    if (rels[0] == 6 || sides[0].kind != Kind::expr || sides[1].kind != Kind::expr) {
      v = std::move(sides[1]);  // x \in [1,2], (x, y) = (1, 2)
      return true;
    }
    v.kind = Kind::equation;
    v.expr = sides[0].expr;
    v.rhs = sides[1].expr;
    return true;
  }
  for (int r : rels) {
    if (r == 1 || r == 6) {  // x = y = 3: keep the outer sides
      if (sides.front().kind != Kind::expr || sides.back().kind != Kind::expr) return false;
      v.kind = Kind::equation;
      v.expr = sides.front().expr;
      v.rhs = sides.back().expr;
      return true;
    }
  }
  return inequality(sides, rels, v);
}

bool Parser::inequality(std::vector<Value>& sides, const std::vector<int>& rels, Value& v) {
  for (const auto& s : sides) {
    if (s.kind != Kind::expr) return false;
  }
  auto endpoint = [&](int e) {
    Value x;
    x.kind = Kind::expr;
    x.expr = e;
    return x;
  };
  int ninf = binary(Op::neg, leaf(Op::inf), -1);
  int pinf = leaf(Op::inf);
  v.kind = Kind::group;
  if (rels.size() == 2 && is_bare_var(sides[1].expr)) {
    bool up = rels[0] <= 3 && rels[1] <= 3;
    bool down = rels[0] >= 4 && rels[1] >= 4;
    if (!up && !down) return false;
    int lo = up ? 0 : 2;
    int hi = up ? 2 : 0;
    bool lo_closed = (up ? rels[0] : rels[1]) % 2 == 1;
    bool hi_closed = (up ? rels[1] : rels[0]) % 2 == 1;
    v.open = lo_closed ? '[' : '(';
    v.close = hi_closed ? ']' : ')';
    v.items = {endpoint(sides[static_cast<size_t>(lo)].expr),
               endpoint(sides[static_cast<size_t>(hi)].expr)};
    return true;
  }
  if (rels.size() != 1) return false;
  int r = rels[0];
  int bound;
  if (is_bare_var(sides[0].expr)) {
    bound = sides[1].expr;
  } else if (is_bare_var(sides[1].expr)) {
    bound = sides[0].expr;
    r = r <= 3 ? r + 2 : r - 2;  // 3 < x  ==  x > 3
  } else {
    return false;
  }
  bool closed = r == 3 || r == 5;
  if (r <= 3) {  // x < b
    v.open = '(';
    v.close = closed ? ']' : ')';
    v.items = {endpoint(ninf), endpoint(bound)};
  } else {  // x > a
    v.open = closed ? '[' : '(';
    v.close = ')';
    v.items = {endpoint(bound), endpoint(pinf)};
  }
  return true;
}

bool Parser::union_value(Value& v) {
  if (!value_from(sum(), v)) return false;
  if (!is_cmd(peek(), "cup")) return true;
  Value u;
  u.kind = Kind::set_union;
  u.items.push_back(std::move(v));
  while (is_cmd(peek(), "cup")) {
    ++pos_;
    Value next;
    if (!value_from(sum(), next)) return false;
    u.items.push_back(std::move(next));
  }
  v = std::move(u);
  return true;
}

int Parser::matrix() {
  Value m;
  m.kind = Kind::matrix;
  int cols = -1;
  for (;;) {
    int row_cols = 0;
    for (;;) {
      Value cell;
      if (!value_from(sum(), cell) || cell.kind != Kind::expr) return -1;
      m.items.push_back(std::move(cell));
      ++row_cols;
      if (!accept_sym("&")) break;
    }
    if (cols >= 0 && row_cols != cols) return -1;
    cols = row_cols;
    ++m.rows;
    if (accept_sym("\\\\")) {
      if (is_cmd(peek(), "end_matrix")) break;
      continue;
    }
    break;
  }
  if (!is_cmd(peek(), "end_matrix")) return -1;
  ++pos_;
  m.cols = cols;
  struct_ = std::move(m);
  return kStruct;
}

int Parser::group(const std::string& open) {
  const char* close;
  char o;
  if (open == "(") {
    close = ")", o = '(';
  } else if (open == "[") {
    close = "]", o = '[';
  } else if (open == "\\{") {
    close = "\\}", o = '{';
  } else if (open == "<") {
    close = "rangle", o = '<';
  } else if (open == "{") {
    close = "}", o = 0;
  } else if (open == "|") {
    int e = sum();
    if (!arith(e) || !accept_sym("|")) return -1;
    return func(Fn::abs, e);
  } else {
    return -1;
  }
  std::vector<Value> items;
  if (o == '<') {
    if (!list_until_cmd(items, "rangle")) return -1;
  } else if (!list(items, close)) {
    return -1;
  }
  if (o != '<') {
    const Token& end = peek();
    if (end.kind != Tok::sym) return -1;
    bool interval_close = (o == '(' || o == '[') && (end.s == ")" || end.s == "]");
    if (end.s != close && !(interval_close && items.size() == 2)) return -1;
  }
  char c = o == '<' ? '>' : peek().s[0] == '\\' ? '}' : peek().s[0];
  ++pos_;
  if (items.size() == 1 && (o == '(' || o == 0 || (o == '[' && c == ']'))) {
    if (items[0].kind == Kind::expr) return items[0].expr;  // plain parentheses
    struct_ = std::move(items[0]);
    return kStruct;
  }
  struct_ = Value{};
  struct_.kind = Kind::group;
  struct_.open = o;
  struct_.close = o == 0 ? 0 : c;
  struct_.items = std::move(items);
  return kStruct;
}

bool Parser::list_until_cmd(std::vector<Value>& items, const char* cmd) {
  for (;;) {
    Value v;
    if (!item(v)) return false;
    items.push_back(std::move(v));
    if (accept_sym(",")) continue;
    return is_cmd(peek(), cmd);
  }
}

}  // namespace grpo::reward::math
