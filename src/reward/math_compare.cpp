// Equivalence of two parsed answers. Expressions are equal when they evaluate to the same
// complex number at a few pseudo-random points (the same points for the same variable name,
// fixed so the verdict is reproducible and thread-safe); structures compare item by item,
// ordered for tuples, intervals and matrices, unordered for sets and lists of answers.
#include <cmath>
#include <complex>
#include <cstdint>
#include <limits>

#include "math_value.h"

namespace grpo::reward::math {
namespace {

using C = std::complex<double>;
constexpr int kPoints = 5;
constexpr double kZeroTol = 1e-12;  // an exact 0 on one side matches |x| <= this (sin(pi))
const double kNaN = std::numeric_limits<double>::quiet_NaN();

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The value variable `name` takes at point k: in [0.35, 2.65), away from 0, 1 and branch cuts.
double point_value(const std::string& name, int k) {
  std::uint64_t h = 1469598103934665603ULL;
  for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  std::uint64_t r = splitmix(h + static_cast<std::uint64_t>(k) * 0x632be59bd9b4e019ULL);
  return 0.35 + 2.3 * static_cast<double>(r >> 11) / static_cast<double>(1ULL << 53);
}

struct Eval {
  const Parsed& p;
  const C* vars;
  unsigned pm_mask;
  double percent_scale;

  static bool is_real(C z) { return z.imag() == 0.0; }

  static double factorial(double x) {
    if (x < 0 && x == std::floor(x)) return kNaN;
    return std::tgamma(x + 1.0);
  }

  C func(const Node& n) const {
    C x = at(n.a);
    switch (n.fn) {
      case Fn::sin:
        return std::sin(x);
      case Fn::cos:
        return std::cos(x);
      case Fn::tan:
        return std::tan(x);
      case Fn::cot:
        return 1.0 / std::tan(x);
      case Fn::sec:
        return 1.0 / std::cos(x);
      case Fn::csc:
        return 1.0 / std::sin(x);
      case Fn::asin:
        return std::asin(x);
      case Fn::acos:
        return std::acos(x);
      case Fn::atan:
        return std::atan(x);
      case Fn::sinh:
        return std::sinh(x);
      case Fn::cosh:
        return std::cosh(x);
      case Fn::tanh:
        return std::tanh(x);
      case Fn::ln:
        return std::log(x);
      case Fn::log10:
        return std::log10(x);
      case Fn::logb:
        return std::log(x) / std::log(at(n.b));
      case Fn::exp:
        return std::exp(x);
      case Fn::sqrt:
        return std::sqrt(x);
      case Fn::abs:
        return C(std::abs(x), 0.0);
      case Fn::floor:
        return is_real(x) ? C(std::floor(x.real()), 0.0) : C(kNaN, 0.0);
      case Fn::ceil:
        return is_real(x) ? C(std::ceil(x.real()), 0.0) : C(kNaN, 0.0);
      case Fn::root: {
        C index = at(n.b);
        // The real odd root of a negative number (\sqrt[3]{-8} = -2), not the principal one.
        if (is_real(x) && is_real(index) && x.real() < 0 && std::fmod(index.real(), 2.0) == 1.0) {
          return C(-std::pow(-x.real(), 1.0 / index.real()), 0.0);
        }
        return std::pow(x, 1.0 / index);
      }
      case Fn::binom: {
        C k = at(n.b);
        if (!is_real(x) || !is_real(k)) return C(kNaN, 0.0);
        double nn = x.real(), kk = k.real();
        if (kk == std::floor(kk) && kk >= 0 && kk < 200) {
          double r = 1.0;  // n(n-1)...(n-k+1)/k!, exact for integers in range
          for (int i = 1; i <= static_cast<int>(kk); ++i) r = r * (nn - kk + i) / i;
          return C(r, 0.0);
        }
        return C(factorial(nn) / (factorial(kk) * factorial(nn - kk)), 0.0);
      }
    }
    return C(kNaN, 0.0);
  }

  static C power(C base, C exponent) {
    if (is_real(base) && is_real(exponent)) {
      double b = base.real(), e = exponent.real();
      if (b >= 0 || e == std::floor(e)) return C(std::pow(b, e), 0.0);
    }
    if (base == C(0.0, 0.0)) return exponent.real() > 0 ? C(0.0, 0.0) : C(kNaN, 0.0);
    return std::pow(base, exponent);
  }

  C at(int i) const {
    const Node& n = p.nodes[static_cast<size_t>(i)];
    switch (n.op) {
      case Op::num:
        return C(n.value, 0.0);
      case Op::var:
        return vars[n.var];
      case Op::pi:
        return C(M_PI, 0.0);
      case Op::euler:
        return C(M_E, 0.0);
      case Op::imag:
        return C(0.0, 1.0);
      case Op::inf:
        return C(std::numeric_limits<double>::infinity(), 0.0);
      case Op::add:
        return at(n.a) + at(n.b);
      case Op::sub:
        return at(n.a) - at(n.b);
      case Op::mul:
        return at(n.a) * at(n.b);
      case Op::div:
        return at(n.a) / at(n.b);
      case Op::pow:
        return power(at(n.a), at(n.b));
      case Op::neg:
        return C(0.0, 0.0) - at(n.a);  // keeps +0 imaginary parts off branch cuts
      case Op::pm: {
        C left = n.a >= 0 ? at(n.a) : C(0.0, 0.0);
        bool minus = ((pm_mask >> n.var) & 1U) != 0;
        return minus ? left - at(n.b) : left + at(n.b);
      }
      case Op::func:
        return func(n);
      case Op::fact: {
        C x = at(n.a);
        return is_real(x) ? C(factorial(x.real()), 0.0) : C(kNaN, 0.0);
      }
      case Op::percent:
        return at(n.a) * percent_scale;
    }
    return C(kNaN, 0.0);
  }
};

bool is_nan(C z) { return std::isnan(z.real()) || std::isnan(z.imag()); }

bool close(C a, C b, double rel_tol) {
  if (std::isinf(a.real()) || std::isinf(b.real())) return a == b;
  double d = std::abs(a - b);
  double m = std::max(std::abs(a), std::abs(b));
  if (d <= rel_tol * m) return true;
  if (a == C(0.0, 0.0) || b == C(0.0, 0.0)) return d <= kZeroTol;
  return false;
}

// Two integers below 2^53 are exact in a double: they must be equal, not merely close
// (1450000 != 1450001 although they are within rel_tol of each other).
bool numbers_equal(C a, C b, double rel_tol) {
  auto integral = [](C z) {
    return z.imag() == 0.0 && std::abs(z.real()) < 9007199254740992.0 &&
           z.real() == std::floor(z.real());
  };
  if (integral(a) && integral(b)) return a == b;
  return close(a, b, rel_tol);
}

// Variable values of `p` at each point, by name (so both sides agree).
std::vector<C> point_table(const Parsed& p) {
  std::vector<C> t(p.vars.size() * kPoints);
  for (size_t v = 0; v < p.vars.size(); ++v) {
    for (int k = 0; k < kPoints; ++k) t[k * p.vars.size() + v] = C(point_value(p.vars[v], k), 0.0);
  }
  return t;
}

class Comparer {
 public:
  Comparer(const Parsed& g, const Parsed& p, const MathOptions& o, const Deadline& d)
      : g_(g), p_(p), options_(o), deadline_(d), gt_(point_table(g)), pt_(point_table(p)) {}

  bool equal(const Value& g, const Value& p) {
    if (deadline_.passed()) return false;
    if (g.kind == Kind::text || p.kind == Kind::text) {
      return g.kind == p.kind && !g.text.empty() && g.text == p.text;
    }
    if (g.kind == Kind::equation || p.kind == Kind::equation) return equation(g, p);
    if (g.kind == Kind::expr && p.kind == Kind::expr) {
      return expr(g.expr, g.pm_mask, p.expr, p.pm_mask);
    }
    if (g.kind == Kind::matrix || p.kind == Kind::matrix) {
      if (g.kind != p.kind || g.rows != p.rows || g.cols != p.cols) return false;
      return ordered(g, p);
    }
    if (g.kind == Kind::set_union || p.kind == Kind::set_union) {
      if (g.kind != p.kind) return false;
      return unordered(g, p);
    }
    if (g.kind == Kind::group && p.kind == Kind::group) return group(g, p);
    // A one-element set or list against a bare value: {3} vs 3.
    if (g.kind == Kind::group && g.items.size() == 1 && g.open != '(') return equal(g.items[0], p);
    if (p.kind == Kind::group && p.items.size() == 1 && p.open != '(') return equal(g, p.items[0]);
    return false;
  }

 private:
  bool group(const Value& g, const Value& p) {
    if (g.items.size() != p.items.size()) return false;
    auto interval_like = [](const Value& v) {
      return v.items.size() == 2 && (v.open == '(' || v.open == '[') &&
             (v.close == ')' || v.close == ']') && (v.open == '[' || v.close == ']');
    };
    if (interval_like(g) || interval_like(p)) {
      return g.open == p.open && g.close == p.close && ordered(g, p);
    }
    bool g_set = g.open == '{', p_set = p.open == '{';
    bool g_tuple = g.open == '(' || g.open == '[' || g.open == '<';
    bool p_tuple = p.open == '(' || p.open == '[' || p.open == '<';
    if ((g_set && p_tuple) || (p_set && g_tuple)) {
      return options_.tuple_vs_set == TupleSetPolicy::lenient && unordered(g, p);
    }
    if (g_tuple || p_tuple) return ordered(g, p);  // a tuple against a tuple or a bare list
    return unordered(g, p);                        // sets and lists of answers
  }

  bool ordered(const Value& g, const Value& p) {
    for (size_t i = 0; i < g.items.size(); ++i) {
      if (!equal(g.items[i], p.items[i])) return false;
    }
    return true;
  }

  // A perfect matching between the items (augmenting paths; lists are short).
  bool unordered(const Value& g, const Value& p) {
    size_t n = g.items.size();
    if (n != p.items.size()) return false;
    std::vector<char> eq(n * n);
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < n; ++j) eq[i * n + j] = equal(g.items[i], p.items[j]) ? 1 : 0;
    }
    std::vector<int> match(n, -1);
    for (size_t i = 0; i < n; ++i) {
      std::vector<char> seen(n, 0);
      if (!augment(i, n, eq, match, seen)) return false;
    }
    return true;
  }
  static bool augment(size_t i, size_t n, const std::vector<char>& eq, std::vector<int>& match,
                      std::vector<char>& seen) {
    for (size_t j = 0; j < n; ++j) {
      if (!eq[i * n + j] || seen[j]) continue;
      seen[j] = 1;
      if (match[j] < 0 || augment(static_cast<size_t>(match[j]), n, eq, match, seen)) {
        match[j] = static_cast<int>(i);
        return true;
      }
    }
    return false;
  }

  bool bare_var(const Parsed& p, int e) const {
    return p.nodes[static_cast<size_t>(e)].op == Op::var;
  }

  bool equation(const Value& g, const Value& p) {
    if (g.kind == Kind::equation && p.kind == Kind::equation) {
      if (expr(g.expr, g.pm_mask, p.expr, p.pm_mask) && expr(g.rhs, g.pm_mask, p.rhs, p.pm_mask)) {
        return true;
      }
      if (expr(g.expr, g.pm_mask, p.rhs, p.pm_mask) && expr(g.rhs, g.pm_mask, p.expr, p.pm_mask)) {
        return true;
      }
      // x = 3 vs y = 3, k = 2 vs n = 2: the named unknown may differ.
      if (options_.equation_rhs && bare_var(g_, g.expr) && bare_var(p_, p.expr) &&
          expr(g.rhs, g.pm_mask, p.rhs, p.pm_mask)) {
        return true;
      }
      return proportional(g, p);
    }
    if (!options_.equation_rhs) return false;
    const Value& eqn = g.kind == Kind::equation ? g : p;
    const Value& other = g.kind == Kind::equation ? p : g;
    if (other.kind != Kind::expr) return false;
    const Parsed& ep = g.kind == Kind::equation ? g_ : p_;
    int side;
    if (bare_var(ep, eqn.expr)) {
      side = eqn.rhs;
    } else if (bare_var(ep, eqn.rhs)) {
      side = eqn.expr;
    } else {
      return false;
    }
    Value v;
    v.kind = Kind::expr;
    v.expr = side;
    v.pm_mask = eqn.pm_mask;
    return g.kind == Kind::equation ? equal(v, other) : equal(other, v);
  }

  // lhs - rhs of one equation is a constant non-zero multiple of the other's: same equation.
  bool proportional(const Value& g, const Value& p) {
    C ratio;
    int valid = 0;
    for (int k = 0; k < kPoints; ++k) {
      C a = eval(g_, gt_, k, g.expr, g.pm_mask, 1.0) - eval(g_, gt_, k, g.rhs, g.pm_mask, 1.0);
      C b = eval(p_, pt_, k, p.expr, p.pm_mask, 1.0) - eval(p_, pt_, k, p.rhs, p.pm_mask, 1.0);
      if (is_nan(a) || is_nan(b) || std::abs(b) < kZeroTol) continue;
      C r = a / b;
      if (valid == 0) {
        if (std::abs(r) < kZeroTol) return false;
        ratio = r;
      } else if (!close(r, ratio, options_.rel_tol)) {
        return false;
      }
      ++valid;
    }
    return valid >= 2;
  }

  C eval(const Parsed& p, const std::vector<C>& table, int k, int root, unsigned mask,
         double scale) const {
    Eval e{p, table.data() + static_cast<size_t>(k) * p.vars.size(), mask, scale};
    return e.at(root);
  }

  bool expr(int ge, unsigned gm, int pe, unsigned pm) {
    if (deadline_.passed()) return false;
    std::vector<double> g_scales{1.0}, p_scales{1.0};
    if (options_.percent == PercentPolicy::fraction) {
      g_scales = p_scales = {0.01};
    } else if (options_.percent == PercentPolicy::either) {
      if (g_.has_percent) g_scales.push_back(0.01);
      if (p_.has_percent) p_scales.push_back(0.01);
    }
    bool symbolic = !g_.vars.empty() || !p_.vars.empty();
    int points = symbolic ? kPoints : 1;
    for (double gs : g_scales) {
      for (double ps : p_scales) {
        int valid = 0;
        bool ok = true;
        for (int k = 0; k < points && ok; ++k) {
          C a = eval(g_, gt_, k, ge, gm, gs);
          C b = eval(p_, pt_, k, pe, pm, ps);
          if (is_nan(a) && is_nan(b)) continue;
          ok = symbolic ? close(a, b, options_.rel_tol) : numbers_equal(a, b, options_.rel_tol);
          ++valid;
        }
        if (ok && valid >= (symbolic ? 2 : 1)) return true;
      }
    }
    return false;
  }

  const Parsed& g_;
  const Parsed& p_;
  const MathOptions& options_;
  const Deadline& deadline_;
  std::vector<C> gt_;
  std::vector<C> pt_;
};

}  // namespace

bool values_equal(const Parsed& gold, const Parsed& pred, const MathOptions& options,
                  const Deadline& deadline) {
  return Comparer(gold, pred, options, deadline).equal(gold.root, pred.root);
}

}  // namespace grpo::reward::math
