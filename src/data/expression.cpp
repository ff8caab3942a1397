// Exact rationals, the safe expression evaluator and expression-tree rendering; see expression.h.
#include "grpo/data/expression.h"

#include <cstdlib>
#include <limits>

namespace grpo::data {
namespace {

// 128-bit intermediates: products of two int64 never overflow before reduction.
__extension__ typedef __int128 Wide;

// Reduces num/den computed in 128 bits; nullopt when it does not fit int64 afterwards.
std::optional<Rational> make(Wide num, Wide den) {
  if (den == 0) return std::nullopt;
  if (den < 0) {
    num = -num;
    den = -den;
  }
  Wide a = num < 0 ? -num : num, b = den;
  while (b != 0) {
    Wide t = a % b;
    a = b;
    b = t;
  }
  if (a > 1) {
    num /= a;
    den /= a;
  }
  const Wide lo = std::numeric_limits<int64_t>::min() + 1, hi = std::numeric_limits<int64_t>::max();
  if (num < lo || num > hi || den > hi) return std::nullopt;
  return Rational{static_cast<int64_t>(num), static_cast<int64_t>(den)};
}

int precedence(char op) { return op == '+' || op == '-' ? 1 : op == '*' || op == '/' ? 2 : 3; }

// Recursive descent over the text; the first problem found stops evaluation.
class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Evaluation run() {
    if (text_.size() > kMaxLength) return fail("expression longer than 512 characters");
    skip_spaces();
    if (pos_ == text_.size()) return fail("empty expression");
    Rational v;
    if (!expr(v)) return std::move(out_);
    skip_spaces();
    if (pos_ != text_.size()) return fail(unexpected());
    out_.ok = true;
    out_.value = v;
    out_.integer_intermediates = out_.integer_intermediates && v.is_integer();
    return std::move(out_);
  }

 private:
  static constexpr size_t kMaxLength = 512;
  static constexpr int kMaxDepth = 64;

  Evaluation fail(std::string why) {
    out_.ok = false;
    if (out_.error.empty()) out_.error = std::move(why);
    return std::move(out_);
  }
  bool error(std::string why) {
    if (out_.error.empty()) out_.error = std::move(why);
    return false;
  }
  std::string unexpected() const {
    if (pos_ >= text_.size()) return "unexpected end of expression";
    return "unexpected '" + std::string(1, text_[pos_]) + "' at position " +
           std::to_string(pos_ + 1);
  }
  void skip_spaces() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  bool combine(char op, Rational& acc, const Rational& rhs) {
    if (op == '/' && rhs.num == 0) {
      out_.division_by_zero = true;
      return error("division by zero");
    }
    auto r = apply(op, acc, rhs);
    if (!r) return error("number too large");
    acc = *r;
    if (!acc.is_integer()) out_.integer_intermediates = false;
    return true;
  }
  bool expr(Rational& v) {
    if (!term(v)) return false;
    for (;;) {
      skip_spaces();
      if (pos_ >= text_.size() || (text_[pos_] != '+' && text_[pos_] != '-')) return true;
      char op = text_[pos_++];
      Rational rhs;
      if (!term(rhs) || !combine(op, v, rhs)) return false;
    }
  }
  bool term(Rational& v) {
    if (!factor(v)) return false;
    for (;;) {
      skip_spaces();
      if (pos_ >= text_.size() || (text_[pos_] != '*' && text_[pos_] != '/')) return true;
      char op = text_[pos_++];
      Rational rhs;
      if (!factor(rhs) || !combine(op, v, rhs)) return false;
    }
  }
  bool factor(Rational& v) {
    skip_spaces();
    if (pos_ >= text_.size()) return error("unexpected end of expression");
    const char c = text_[pos_];
    if (c == '(') {
      if (++depth_ > kMaxDepth) return error("parentheses nested deeper than 64");
      ++pos_;
      if (!expr(v)) return false;
      skip_spaces();
      if (pos_ >= text_.size() || text_[pos_] != ')') return error("missing ')'");
      ++pos_;
      --depth_;
      return true;
    }
    if (c < '0' || c > '9') return error(unexpected());
    int64_t n = 0;
    while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
      if (n > (std::numeric_limits<int64_t>::max() - 9) / 10) return error("number too large");
      n = n * 10 + (text_[pos_++] - '0');
    }
    if (pos_ < text_.size() && text_[pos_] == '.') return error("only whole numbers are allowed");
    out_.numbers.push_back(n);
    v = Rational{n, 1};
    return true;
  }

  std::string_view text_;
  size_t pos_ = 0;
  int depth_ = 0;
  Evaluation out_;
};

}  // namespace

std::string to_string(const Rational& r) {
  return r.den == 1 ? std::to_string(r.num) : std::to_string(r.num) + "/" + std::to_string(r.den);
}

std::optional<Rational> apply(char op, const Rational& a, const Rational& b) {
  const Wide an = a.num, ad = a.den, bn = b.num, bd = b.den;
  switch (op) {
    case '+':
      return make(an * bd + bn * ad, ad * bd);
    case '-':
      return make(an * bd - bn * ad, ad * bd);
    case '*':
      return make(an * bn, ad * bd);
    case '/':
      if (b.num == 0) return std::nullopt;
      return make(an * bd, ad * bn);
    default:
      return std::nullopt;
  }
}

Evaluation evaluate(std::string_view text) { return Parser(text).run(); }

std::string ExprTree::render() const { return render(root); }

std::string ExprTree::render(int node) const {
  const Node& n = nodes[static_cast<size_t>(node)];
  if (n.op == 0) return std::to_string(n.leaf);
  const Node& l = nodes[static_cast<size_t>(n.left)];
  const Node& r = nodes[static_cast<size_t>(n.right)];
  std::string ls = render(n.left), rs = render(n.right);
  // Left operands need parentheses only below the operator's precedence; right operands also at
  // equal precedence, so the written order of evaluation is the tree's (and its steps').
  if (precedence(l.op) < precedence(n.op)) ls = "(" + ls + ")";
  if (precedence(r.op) <= precedence(n.op)) rs = "(" + rs + ")";
  return ls + " " + n.op + " " + rs;
}

std::vector<std::string> ExprTree::steps() const {
  std::vector<std::string> out;
  // Post-order without recursion limits: trees here have at most a few dozen nodes.
  std::vector<std::pair<int, bool>> stack{{root, false}};
  while (!stack.empty()) {
    auto [i, expanded] = stack.back();
    stack.pop_back();
    const Node& n = nodes[static_cast<size_t>(i)];
    if (n.op == 0) continue;
    if (expanded) {
      out.push_back(to_string(nodes[static_cast<size_t>(n.left)].value) + " " + n.op + " " +
                    to_string(nodes[static_cast<size_t>(n.right)].value) + " = " +
                    to_string(n.value));
      continue;
    }
    stack.push_back({i, true});
    stack.push_back({n.right, false});
    stack.push_back({n.left, false});
  }
  return out;
}

}  // namespace grpo::data
