// LaTeX answer -> Parsed: a recursive-descent parser over math_token.h tokens for the answers math
// datasets use (arithmetic with implicit products, \frac, \sqrt, functions, factorials, \pm,
// percent, groups that become tuples/sets/intervals, matrices, equations and inequalities).
// Units and other words are dropped next to mathematics; a pure-text answer stays text.
#include <cctype>
#include <string>
#include <utility>

#include "math_parser.h"

namespace grpo::reward::math {
namespace {

long long gcd_ll(long long a, long long b) { return b == 0 ? a : gcd_ll(b, a % b); }

}  // namespace

int Parser::sum() {
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

int Parser::term() {
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

int Parser::unary() {
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

int Parser::power() {
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

int Parser::postfix(int e) {
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

int Parser::braced() {
  if (!accept_sym("{")) return -1;
  int e = sum();
  if (!accept_sym("}")) return -1;
  return e;
}

void Parser::note_fraction(int num, int den) {
  const Node& n = out_.nodes[static_cast<size_t>(num)];
  const Node& d = out_.nodes[static_cast<size_t>(den)];
  if (n.op != Op::num || d.op != Op::num || !n.integer_literal || !d.integer_literal) return;
  auto a = static_cast<long long>(n.value);
  auto b = static_cast<long long>(d.value);
  if (b == 1 || (a != 0 && b != 0 && gcd_ll(a, b) > 1)) out_.unreduced_fraction = true;
}

int Parser::primary() {
  if (++depth_ > kMaxDepth) return -1;
  int r = primary_inner();
  --depth_;
  return r;
}

int Parser::primary_inner() {
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
      if (options_.mixed_numbers && t.integer && is_cmd(peek(), "frac") && integer_arg_follows(1) &&
          integer_arg_follows(4)) {
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

std::string Parser::subscript() {
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

int Parser::function(Fn fn) {
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
    // \sin 2x is sin(2x): the argument runs over a product of numbers and letters, up to an
    // operator, a bracket or the next function (\sin x \cos x).
    arg = power();
    while (arith(arg) && (peek().kind == Tok::number || peek().kind == Tok::ident)) {
      int next = power();
      arg = arith(next) ? binary(Op::mul, arg, next) : -1;
    }
  }
  if (!arith(arg)) return -1;
  int f;
  if (fn == Fn::logb) {
    // \log without a base is the common logarithm, as in competition mathematics.
    f = base >= 0 ? func(Fn::logb, arg, base) : func(Fn::log10, arg);
  } else {
    f = func(fn, arg);
  }
  return exponent >= 0 ? binary(Op::pow, f, exponent) : f;
}

int Parser::command(const Token& t) {
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
  if (!tokenize(s, static_cast<size_t>(options.max_nodes), tokens)) return false;
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
