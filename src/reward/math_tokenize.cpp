// Tokenizer for normalised LaTeX answers and the token-level clean-ups (units and words,
// thousands separators). The parser (math_parse.cpp) consumes its tokens.
#include <array>
#include <cctype>
#include <cstdlib>

#include "math_token.h"

namespace grpo::reward::math {
namespace {

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

}  // namespace

bool tokenize(std::string_view s, size_t max_tokens, std::vector<Token>& out) {
  return Tokenizer(s).run(out, max_tokens);
}

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

}  // namespace grpo::reward::math
