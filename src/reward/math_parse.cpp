// LaTeX answer -> Parsed: a tokenizer and a recursive-descent parser for the answers that math
// datasets use (arithmetic with implicit products, \frac, \sqrt, functions, factorials, \pm,
// percent, groups that become tuples/sets/intervals, matrices, equations and inequalities).
// Units and other words are dropped next to mathematics; a pure-text answer stays text.
#include <array>
#include <cctype>
#include <cstdlib>
#include <numeric>

#include "math_value.h"

namespace grpo::reward::math {
namespace {

enum class Tok : std::uint8_t { end, number, ident, func, cmd, text, sym };

struct Token {
  Tok kind = Tok::end;
  std::string s;  // ident name, command name, text content, or the symbol
  double value = 0.0;
  bool integer = false;
  Fn fn = Fn::sin;
};

bool is_letter(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

struct FnName {
  const char* name;
  Fn fn;
};
constexpr std::array<FnName, 26> kFunctions = {{
    {"sin", Fn::sin},     {"cos", Fn::cos},     {"tan", Fn::tan},     {"cot", Fn::cot},
    {"sec", Fn::sec},     {"csc", Fn::csc},     {"arcsin", Fn::asin}, {"arccos", Fn::acos},
    {"arctan", Fn::atan}, {"sinh", Fn::sinh},   {"cosh", Fn::cosh},   {"tanh", Fn::tanh},
    {"ln", Fn::ln},       {"log", Fn::logb},    {"lg", Fn::log10},    {"exp", Fn::exp},
    {"sqrt", Fn::sqrt},   {"asin", Fn::asin},   {"acos", Fn::acos},   {"atan", Fn::atan},
    {"abs", Fn::abs},     {"floor", Fn::floor}, {"ceil", Fn::ceil},   {"tg", Fn::tan},
    {"cosec", Fn::csc},   {"ctg", Fn::cot},
}};

bool lookup_function(const std::string& name, Fn& fn) {
  for (const auto& f : kFunctions) {
    if (name == f.name) {
      fn = f.fn;
      return true;
    }
  }
  return false;
}

// Two-letter words that are units, not a product of two variables.
bool is_short_unit(const std::string& w) {
  static const char* const kUnits[] = {"cm", "mm", "km", "kg", "mg", "ft", "hr", "lb",
                                       "oz", "ml", "ms", "mi", "yd", "nm", "mL", "kW"};
  for (const char* u : kUnits) {
    if (w == u) return true;
  }
  return false;
}

// Commands the parser understands, and those that may be split off glued letters.
constexpr std::array<const char*, 14> kSplittable = {"lfloor", "rfloor", "lceil", "rceil", "infty",
                                                     "times",  "cdot",   "frac",  "sqrt",  "binom",
                                                     "theta",  "alpha",  "pi",    "pm"};

bool is_known_command(const std::string& name) {
  static const char* const kKnown[] = {
      "frac",     "binom",      "sqrt",   "pi",     "infty", "pm",    "mp",     "cdot",
      "times",    "div",        "le",     "ge",     "lt",    "gt",    "ne",     "in",
      "cup",      "cap",        "lfloor", "rfloor", "lceil", "rceil", "langle", "rangle",
      "emptyset", "varnothing", "text",   "begin",  "end",   "to",    "approx", "dots",
      "ldots",    "cdots",      "infin",  "mid",    "colon", "prime"};
  for (const char* k : kKnown) {
    if (name == k) return true;
  }
  Fn fn;
  return lookup_function(name, fn) || name.size() <= 2;
}

class Tokenizer {
 public:
  explicit Tokenizer(std::string_view s) : s_(s) {}

  bool run(std::vector<Token>& out, size_t max_tokens) {
    while (i_ < s_.size()) {
      if (out.size() > max_tokens) return false;
      char c = s_[i_];
      if (std::isspace(static_cast<unsigned char>(c))) {
        ++i_;
      } else if (is_digit(c) || (c == '.' && i_ + 1 < s_.size() && is_digit(s_[i_ + 1]))) {
        out.push_back(number());
      } else if (is_letter(c)) {
        letters(out);
      } else if (c == '\\') {
        if (!command(out)) return false;
      } else {
        Token t;
        t.kind = Tok::sym;
        t.s = std::string(1, c);
        out.push_back(t);
        ++i_;
      }
    }
    return true;
  }

 private:
  Token number() {
    size_t start = i_;
    bool integer = true;
    while (i_ < s_.size() && is_digit(s_[i_])) ++i_;
    if (i_ < s_.size() && s_[i_] == '.' && i_ + 1 < s_.size() && is_digit(s_[i_ + 1])) {
      integer = false;
      ++i_;
      while (i_ < s_.size() && is_digit(s_[i_])) ++i_;
    } else if (i_ < s_.size() && s_[i_] == '.' && !(i_ + 1 < s_.size() && s_[i_ + 1] == '.')) {
      ++i_;  // `27.` : a trailing decimal point
    }
    // Scientific notation 1.5e3 / 2E-4 (an `e` directly followed by digits).
    if (i_ + 1 < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      size_t j = i_ + 1;
      if (j < s_.size() && (s_[j] == '-' || s_[j] == '+')) ++j;
      if (j < s_.size() && is_digit(s_[j])) {
        integer = false;
        i_ = j;
        while (i_ < s_.size() && is_digit(s_[i_])) ++i_;
      }
    }
    Token t;
    t.kind = Tok::number;
    t.s = std::string(s_.substr(start, i_ - start));
    t.value = std::strtod(t.s.c_str(), nullptr);
    t.integer = integer;
    return t;
  }

  void letters(std::vector<Token>& out) {
    size_t start = i_;
    while (i_ < s_.size() && is_letter(s_[i_])) ++i_;
    std::string w(s_.substr(start, i_ - start));
    Token t;
    if (w.size() > 1 && lookup_function(w, t.fn)) {
      t.kind = Tok::func;
      t.s = w;
      out.push_back(t);
      return;
    }
    if (w == "pi") {
      t.kind = Tok::cmd;
      t.s = "pi";
      out.push_back(t);
      return;
    }
    if (w.size() >= 3 || is_short_unit(w) || w == "or") {
      t.kind = Tok::text;
      t.s = w;
      out.push_back(t);
      return;
    }
    for (char c : w) {
      Token v;
      v.kind = Tok::ident;
      v.s = std::string(1, c);
      out.push_back(v);
    }
  }

  bool command(std::vector<Token>& out) {
    size_t j = i_ + 1;
    if (j >= s_.size()) return false;
    Token t;
    if (!is_letter(s_[j])) {
      t.kind = Tok::sym;
      if (s_[j] == '{' || s_[j] == '}') {
        t.s = s_[j] == '{' ? "\\{" : "\\}";
      } else if (s_[j] == '\\') {
        t.s = "\\\\";
      } else {
        t.s = std::string(1, s_[j]);
      }
      i_ = j + 1;
      out.push_back(t);
      return true;
    }
    while (j < s_.size() && is_letter(s_[j])) ++j;
    std::string name(s_.substr(i_ + 1, j - i_ - 1));
    i_ = j;
    // `\lfloorm`, `\pix`: a known command glued to the letters after it.
    if (!is_known_command(name)) {
      for (const char* k : kSplittable) {
        size_t n = std::char_traits<char>::length(k);
        if (name.size() > n && name.compare(0, n, k) == 0) {
          i_ -= name.size() - n;
          name.resize(n);
          break;
        }
      }
    }
    if (name == "text") return text(out);
    if (name == "begin" || name == "end") return environment(name, out);
    if (lookup_function(name, t.fn) && name != "sqrt") {
      t.kind = Tok::func;
      t.s = name;
    } else {
      t.kind = Tok::cmd;
      t.s = name;
    }
    out.push_back(t);
    return true;
  }

  // \text{...}: a word or phrase; a lone letter inside (\mathrm{e}) is that letter.
  bool text(std::vector<Token>& out) {
    while (i_ < s_.size() && s_[i_] == ' ') ++i_;
    if (i_ >= s_.size() || s_[i_] != '{') return true;
    int depth = 0;
    size_t start = i_ + 1;
    for (; i_ < s_.size(); ++i_) {
      if (s_[i_] == '{') ++depth;
      if (s_[i_] == '}' && --depth == 0) break;
    }
    if (i_ >= s_.size()) return false;
    std::string content(s_.substr(start, i_ - start));
    ++i_;
    std::string core;
    for (char c : content) {
      if (c != ' ' && c != '~') core += c;
    }
    Token t;
    if (core.size() == 1 && is_letter(core[0])) {
      t.kind = Tok::ident;
      t.s = core;
    } else if (core.empty()) {
      return true;
    } else {
      t.kind = Tok::text;
      t.s = content;
    }
    out.push_back(t);
    return true;
  }

  // \begin{pmatrix} / \end{pmatrix}: one token each; an array's column spec is skipped.
  bool environment(const std::string& which, std::vector<Token>& out) {
    while (i_ < s_.size() && s_[i_] == ' ') ++i_;
    if (i_ >= s_.size() || s_[i_] != '{') return false;
    size_t close = s_.find('}', i_);
    if (close == std::string_view::npos) return false;
    std::string env(s_.substr(i_ + 1, close - i_ - 1));
    i_ = close + 1;
    bool matrix = env.find("matrix") != std::string::npos || env == "array";
    if (!matrix) return false;
    if (which == "begin" && env == "array") {
      while (i_ < s_.size() && s_[i_] == ' ') ++i_;
      if (i_ < s_.size() && s_[i_] == '{') {
        size_t spec_end = s_.find('}', i_);
        if (spec_end == std::string_view::npos) return false;
        i_ = spec_end + 1;
      }
    }
    Token t;
    t.kind = Tok::cmd;
    t.s = which == "begin" ? "begin_matrix" : "end_matrix";
    out.push_back(t);
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
};

bool is_sym(const Token& t, const char* s) { return t.kind == Tok::sym && t.s == s; }
bool is_cmd(const Token& t, const char* s) { return t.kind == Tok::cmd && t.s == s; }

// Words next to mathematics (units, "dollars") are dropped; "and"/"or" separate answers;
// "percent" is a percent sign. A unit's exponent (\text{cm}^2) goes with it.
std::vector<Token> drop_words(std::vector<Token> in, bool& all_text) {
  all_text = true;
  for (const auto& t : in) {
    if (t.kind != Tok::text) all_text = false;
  }
  if (all_text) return in;
  std::vector<Token> out;
  for (size_t i = 0; i < in.size(); ++i) {
    const Token& t = in[i];
    if (t.kind != Tok::text) {
      out.push_back(t);
      continue;
    }
    std::string w;
    for (char c : t.s) {
      if (c != ' ' && c != '~') w += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (w == "and" || w == "or" || w == ",") {
      Token sep;
      sep.kind = Tok::sym;
      sep.s = ",";
      out.push_back(sep);
    } else if (w == "percent" || w == "%") {
      Token pct;
      pct.kind = Tok::sym;
      pct.s = "%";
      out.push_back(pct);
    } else if (i + 1 < in.size() && is_sym(in[i + 1], "^")) {
      // Skip the unit's exponent: ^2 or ^{2}.
      size_t j = i + 2;
      if (j < in.size() && is_sym(in[j], "{")) {
        while (j < in.size() && !is_sym(in[j], "}")) ++j;
      }
      i = j;
    }
  }
  return out;
}

long long gcd_ll(long long a, long long b) { return b == 0 ? a : gcd_ll(b, a % b); }

constexpr int kStruct = -2;  // an operand that is a structural value (in Parser::struct_)
constexpr int kMaxDepth = 120;

class Parser {
 public:
  Parser(std::vector<Token> tokens, const MathOptions& options, Parsed& out)
      : t_(std::move(tokens)), options_(options), out_(out) {}

  bool run() {
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

  bool ends_list(const char* close) const {
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

  // items separated by , or ; up to `close` (not consumed) or the end.
  bool list(std::vector<Value>& items, const char* close) {
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

  // item := union (relation union)*
  bool item(Value& v) {
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

  // x > 3 -> (3, inf); a <= x < b -> [a, b); the variable must stand alone on its side.
  bool inequality(std::vector<Value>& sides, const std::vector<int>& rels, Value& v) {
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

  bool union_value(Value& v) {
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

  // A structural operand may not take part in arithmetic.
  static bool arith(int a) { return a >= 0; }

  int sum() {
    if (++depth_ > kMaxDepth) return -1;
    int left = term();
    for (;;) {
      const Token& t = peek();
      Op op;
      bool pm = false;
      if (is_sym(t, "+")) {
        op = Op::add;
      } else if (is_sym(t, "-")) {
        op = Op::sub;
      } else if (is_cmd(t, "pm") || is_cmd(t, "mp")) {
        op = Op::pm;
        pm = true;
      } else {
        break;
      }
      ++pos_;
      if (!arith(left)) return -1;
      int right = term();
      if (!arith(right)) return -1;
      left = binary(op, left, right);
      if (pm) out_.nodes[static_cast<size_t>(left)].var = out_.pm_count++;
    }
    --depth_;
    return left;
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

  int term() {
    int left = unary();
    for (;;) {
      const Token& t = peek();
      Op op = Op::mul;
      if (is_sym(t, "*") || is_cmd(t, "cdot") || is_cmd(t, "times")) {
        ++pos_;
      } else if (is_sym(t, "/") || is_cmd(t, "div")) {
        op = Op::div;
        ++pos_;
      } else if (!starts_factor(t)) {
        break;
      }
      if (!arith(left)) return -1;
      int right = unary();
      if (!arith(right)) return -1;
      if (op == Op::div) note_fraction(left, right);
      left = binary(op, left, right);
    }
    return left;
  }

  int unary() {
    if (++depth_ > kMaxDepth) return -1;
    int r;
    if (accept_sym("-")) {
      int a = unary();
      r = arith(a) ? binary(Op::neg, a, -1) : -1;
    } else if (accept_sym("+")) {
      r = unary();
    } else if (is_cmd(peek(), "pm") || is_cmd(peek(), "mp")) {
      ++pos_;
      int a = unary();
      r = arith(a) ? binary(Op::pm, -1, a) : -1;
      if (r >= 0) out_.nodes[static_cast<size_t>(r)].var = out_.pm_count++;
    } else {
      r = power();
    }
    --depth_;
    return r;
  }

  int power() {
    int base = postfix(primary());
    if (!accept_sym("^")) return base;
    if (!arith(base)) return -1;
    int exponent;
    if (is_sym(peek(), "{")) {
      exponent = braced();
    } else if (accept_sym("-")) {
      int a = postfix(primary());
      exponent = arith(a) ? binary(Op::neg, a, -1) : -1;
    } else {
      exponent = primary();
    }
    if (!arith(exponent)) return -1;
    return postfix(binary(Op::pow, base, exponent));
  }

  int postfix(int e) {
    for (;;) {
      if (is_sym(peek(), "!")) {
        if (!arith(e)) return -1;
        ++pos_;
        e = binary(Op::fact, e, -1);
      } else if (is_sym(peek(), "%")) {
        if (!arith(e)) return -1;
        ++pos_;
        e = binary(Op::percent, e, -1);
        out_.has_percent = true;
      } else {
        return e;
      }
    }
  }

  // { expr } as an operand (exponents, \frac arguments).
  int braced() {
    if (!accept_sym("{")) return -1;
    int e = sum();
    if (!accept_sym("}")) return -1;
    return e;
  }

  void note_fraction(int num, int den) {
    const Node& n = out_.nodes[static_cast<size_t>(num)];
    const Node& d = out_.nodes[static_cast<size_t>(den)];
    if (n.op != Op::num || d.op != Op::num || !n.integer_literal || !d.integer_literal) return;
    auto a = static_cast<long long>(n.value);
    auto b = static_cast<long long>(d.value);
    if (b == 1 || (a != 0 && b != 0 && gcd_ll(a, b) > 1)) out_.unreduced_fraction = true;
  }

  bool integer_arg_follows(size_t k) const {
    return is_sym(peek(k), "{") && peek(k + 1).kind == Tok::number && peek(k + 1).integer &&
           is_sym(peek(k + 2), "}");
  }

  int primary() {
    if (++depth_ > kMaxDepth) return -1;
    int r = primary_inner();
    --depth_;
    return r;
  }

  int primary_inner() {
    const Token t = peek();
    ++pos_;
    switch (t.kind) {
      case Tok::number: {
        Node n;
        n.op = Op::num;
        n.value = t.value;
        n.integer_literal = t.integer;
        int e = add(n);
        // Mixed number: 2\frac{1}{2} = 5/2.
        if (options_.mixed_numbers && t.integer && is_cmd(peek(), "frac") &&
            integer_arg_follows(1) && integer_arg_follows(4)) {
          ++pos_;
          int num = braced();
          int den = braced();
          return binary(Op::add, e, binary(Op::div, num, den));
        }
        return e;
      }
      case Tok::ident: {
        std::string name = t.s + subscript();
        if (name == "e") return leaf(Op::euler);
        if (name == "i") return leaf(Op::imag);
        return variable(name);
      }
      case Tok::func:
        return function(t.fn);
      case Tok::cmd:
        return command(t);
      case Tok::sym:
        return group(t.s);
      default:
        return -1;
    }
  }

  // x_1, a_{n}: the subscript becomes part of the variable's name.
  std::string subscript() {
    if (!accept_sym("_")) return "";
    std::string sub = "_";
    if (accept_sym("{")) {
      int depth = 1;
      while (peek().kind != Tok::end) {
        if (is_sym(peek(), "{")) ++depth;
        if (is_sym(peek(), "}") && --depth == 0) break;
        sub += peek().s;
        ++pos_;
      }
      accept_sym("}");
    } else if (peek().kind != Tok::end) {
      sub += peek().s;
      ++pos_;
    }
    return sub;
  }

  int function(Fn fn) {
    int exponent = -1;
    int base = -1;
    if (fn == Fn::logb && accept_sym("_")) {
      base = is_sym(peek(), "{") ? braced() : primary();
      if (!arith(base)) return -1;
    }
    if (accept_sym("^")) {  // \sin^2 x
      exponent = is_sym(peek(), "{") ? braced() : primary();
      if (!arith(exponent)) return -1;
    }
    int arg;
    if (is_sym(peek(), "(") || is_sym(peek(), "{")) {
      arg = primary();
    } else {
      arg = power();
    }
    if (!arith(arg)) return -1;
    int f;
    if (fn == Fn::logb) {
      f = base >= 0 ? func(Fn::logb, arg, base) : func(Fn::ln, arg);
    } else {
      f = func(fn, arg);
    }
    return exponent >= 0 ? binary(Op::pow, f, exponent) : f;
  }

  int command(const Token& t) {
    const std::string& c = t.s;
    if (c == "frac") {
      int num = braced();
      int den = braced();
      if (!arith(num) || !arith(den)) return -1;
      note_fraction(num, den);
      return binary(Op::div, num, den);
    }
    if (c == "binom") {
      int n = braced();
      int k = braced();
      if (!arith(n) || !arith(k)) return -1;
      return func(Fn::binom, n, k);
    }
    if (c == "sqrt") {
      int index = -1;
      if (accept_sym("[")) {
        index = sum();
        if (!arith(index) || !accept_sym("]")) return -1;
      }
      int arg = braced();
      if (!arith(arg)) return -1;
      return index >= 0 ? func(Fn::root, arg, index) : func(Fn::sqrt, arg);
    }
    if (c == "lfloor" || c == "lceil") {
      int e = sum();
      if (!arith(e) || !is_cmd(peek(), c == "lfloor" ? "rfloor" : "rceil")) return -1;
      ++pos_;
      return func(c == "lfloor" ? Fn::floor : Fn::ceil, e);
    }
    if (c == "pi") return leaf(Op::pi);
    if (c == "infty" || c == "infin") return leaf(Op::inf);
    if (c == "{") return group("\\{");
    if (c == "langle") return group("<");
    if (c == "emptyset" || c == "varnothing") {
      struct_ = Value{};
      struct_.kind = Kind::group;
      struct_.open = '{';
      struct_.close = '}';
      return kStruct;
    }
    if (c == "begin_matrix") return matrix();
    if (is_structural_cmd(c)) return -1;
    return variable("\\" + c + subscript());  // \alpha, \theta_1: variables
  }

  int matrix() {
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

  // ( [ \{ < {  : a parenthesised expression, or a tuple / interval / set / bare list.
  int group(const std::string& open) {
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

  bool list_until_cmd(std::vector<Value>& items, const char* cmd) {
    for (;;) {
      Value v;
      if (!item(v)) return false;
      items.push_back(std::move(v));
      if (accept_sym(",")) continue;
      return is_cmd(peek(), cmd);
    }
  }

  std::vector<Token> t_;
  const MathOptions& options_;
  Parsed& out_;
  size_t pos_ = 0;
  int depth_ = 0;
  Value struct_;
};

// 1,234,567 (and only a whole answer shaped like that) loses its thousands separators.
std::string strip_thousands(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t digits = 0;
  while (i + digits < s.size() && is_digit(s[i + digits])) ++digits;
  if (digits == 0 || digits > 3) return std::string(s);
  size_t j = i + digits;
  int groups = 0;
  while (j < s.size() && s[j] == ',') {
    size_t k = j + 1;
    while (k < s.size() && s[k] == ' ') ++k;
    if (k + 3 > s.size() || !is_digit(s[k]) || !is_digit(s[k + 1]) || !is_digit(s[k + 2]) ||
        (k + 3 < s.size() && is_digit(s[k + 3]))) {
      return std::string(s);
    }
    j = k + 3;
    ++groups;
  }
  if (groups == 0) return std::string(s);
  if (j < s.size() && s[j] == '.') {
    ++j;
    while (j < s.size() && is_digit(s[j])) ++j;
  }
  if (j < s.size() && s[j] != ' ' && s[j] != '\\' && s[j] != '%' && !is_letter(s[j])) {
    return std::string(s);
  }
  std::string out;
  for (size_t k = 0; k < s.size(); ++k) {
    if (k < j && (s[k] == ',' || (s[k] == ' ' && k > 0 && s[k - 1] == ','))) continue;
    out += s[k];
  }
  return out;
}

}  // namespace

std::string canonical_text(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c))) {
      out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  // "\text{(A)}" and "A" name the same choice; drop the command word "text" left by markup.
  size_t at;
  while ((at = out.find("text")) != std::string::npos) out.erase(at, 4);
  return out;
}

bool parse_answer(std::string_view normalized, const MathOptions& options, Parsed& out) {
  if (static_cast<int>(normalized.size()) > options.max_answer_chars) return false;
  std::string s = strip_thousands(normalized);
  // {,} is a LaTeX thousands separator: 1{,}000.
  size_t at;
  while ((at = s.find("{,}")) != std::string::npos) s.erase(at, 3);
  std::vector<Token> tokens;
  if (!Tokenizer(s).run(tokens, static_cast<size_t>(options.max_nodes))) return false;
  bool all_text = false;
  tokens = drop_words(std::move(tokens), all_text);
  if (tokens.empty()) return false;
  if (all_text) {
    std::string joined;
    for (const auto& t : tokens) joined += t.s + " ";
    out.root.kind = Kind::text;
    out.root.text = canonical_text(joined);
    return true;
  }
  return Parser(std::move(tokens), options, out).run();
}

}  // namespace grpo::reward::math
