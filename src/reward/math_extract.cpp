// Finding the answer in a completion (\boxed{}, <answer> blocks, text after </think>) and the
// string-level LaTeX clean-up that runs before parsing (spacing, \left, \dfrac, unicode, $...).
#include <array>
#include <cctype>
#include <cstring>

#include "grpo/reward/math_answer.h"

namespace grpo::reward {
namespace {

bool is_letter(char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }
bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// Index one past the brace that closes the one at `open`, or npos when unbalanced.
size_t match_brace(std::string_view s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      ++i;  // \{ and \} do not count
    } else if (s[i] == '{') {
      ++depth;
    } else if (s[i] == '}') {
      if (--depth == 0) return i + 1;
    }
  }
  return std::string_view::npos;
}

// The content of the last <tag>...</tag> block, if it is closed.
std::optional<std::string_view> last_block(std::string_view text, std::string_view open,
                                           std::string_view close) {
  size_t start = text.rfind(open);
  if (start == std::string_view::npos) return std::nullopt;
  size_t body = start + open.size();
  size_t end = text.find(close, body);
  if (end == std::string_view::npos) return std::nullopt;
  return text.substr(body, end - body);
}

struct Replacement {
  const char* from;
  const char* to;
};

// Commands rewritten by name (without the backslash); "" deletes the command.
constexpr std::array<Replacement, 44> kCommands = {{
    {"left", ""},
    {"right", ""},
    {"bigl", ""},
    {"bigr", ""},
    {"Bigl", ""},
    {"Bigr", ""},
    {"big", ""},
    {"Big", ""},
    {"bigg", ""},
    {"Bigg", ""},
    {"displaystyle", ""},
    {"textstyle", ""},
    {"limits", ""},
    {"quad", " "},
    {"qquad", " "},
    {"dfrac", "\\frac"},
    {"tfrac", "\\frac"},
    {"cfrac", "\\frac"},
    {"dbinom", "\\binom"},
    {"tbinom", "\\binom"},
    {"textbf", "\\text"},
    {"textit", "\\text"},
    {"textrm", "\\text"},
    {"textnormal", "\\text"},
    {"mbox", "\\text"},
    {"mathrm", "\\text"},
    {"mathbf", "\\text"},
    {"mathit", "\\text"},
    {"textsf", "\\text"},
    {"mathsf", "\\text"},
    {"operatorname", "\\text"},
    {"hbox", "\\text"},
    {"circ", ""},
    {"degree", ""},
    {"leq", "\\le"},
    {"geq", "\\ge"},
    {"leqslant", "\\le"},
    {"geqslant", "\\ge"},
    {"neq", "\\ne"},
    {"lbrace", "\\{"},
    {"rbrace", "\\}"},
    {"vert", "|"},
    {"lvert", "|"},
    {"rvert", "|"},
}};

constexpr std::array<Replacement, 16> kUnicode = {{
    {"\xe2\x88\x92", "-"},
    {"\xc3\x97", "\\times "},
    {"\xc2\xb7", "\\cdot "},
    {"\xc3\xb7", "\\div "},
    {"\xcf\x80", "\\pi "},
    {"\xe2\x88\x9a", "\\sqrt"},
    {"\xe2\x88\x9e", "\\infty "},
    {"\xe2\x89\xa4", "\\le "},
    {"\xe2\x89\xa5", "\\ge "},
    {"\xe2\x89\xa0", "\\ne "},
    {"\xc2\xb0", ""},
    {"\xc2\xb1", "\\pm "},
    {"\xc2\xa0", " "},
    {"\xe2\x80\x89", " "},
    {"\xe2\x8b\x85", "\\cdot "},
    {"\xe2\x88\xaa", "\\cup "},
}};

// Pass 1: command renames, spacing, $ signs, degree marks, unicode.
std::string clean_commands(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    char c = s[i];
    if (c == '$') {
      ++i;
      continue;
    }
    if (c == '~') {
      out += ' ';
      ++i;
      continue;
    }
    if (static_cast<unsigned char>(c) >= 0x80) {
      bool done = false;
      for (const auto& r : kUnicode) {
        size_t n = std::strlen(r.from);
        if (s.compare(i, n, r.from) == 0) {
          out += r.to;
          i += n;
          done = true;
          break;
        }
      }
      if (!done) out += s[i++];
      continue;
    }
    if (c == '^') {
      // ^\circ and ^{\circ} are degree marks: dropped.
      size_t j = i + 1;
      while (j < s.size() && is_space(s[j])) ++j;
      bool brace = j < s.size() && s[j] == '{';
      if (brace) ++j;
      while (j < s.size() && is_space(s[j])) ++j;
      if (s.compare(j, 5, "\\circ") == 0 && !(j + 5 < s.size() && is_letter(s[j + 5]))) {
        j += 5;
        while (j < s.size() && is_space(s[j])) ++j;
        if (brace && j < s.size() && s[j] == '}') ++j;
        if (!brace || s[j - 1] == '}') {
          i = j;
          continue;
        }
      }
      out += c;
      ++i;
      continue;
    }
    if (c != '\\' || i + 1 >= s.size()) {
      out += c;
      ++i;
      continue;
    }
    size_t j = i + 1;
    if (!is_letter(s[j])) {
      char d = s[j];
      if (d == ',' || d == ';' || d == ':' || d == '!' || d == ' ') {
        out += ' ';
      } else if (d == '%') {
        out += '%';
      } else if (d == '$') {
        // a dollar sign: a currency mark, dropped
      } else {
        out += s.substr(i, 2);
      }
      i = j + 1;
      continue;
    }
    while (j < s.size() && is_letter(s[j])) ++j;
    std::string_view name = s.substr(i + 1, j - i - 1);
    const Replacement* hit = nullptr;
    for (const auto& r : kCommands) {
      if (name == r.from) {
        hit = &r;
        break;
      }
    }
    if (hit == nullptr) {
      out += s.substr(i, j - i);
      if (j < s.size() && is_letter(s[j])) out += ' ';
    } else {
      out += hit->to;
      if (hit->to[0] == '\\' && is_letter(hit->to[1])) out += ' ';
      // \left. and \right. are invisible delimiters.
      if ((name == "left" || name == "right") && j < s.size() && s[j] == '.') ++j;
    }
    i = j;
  }
  return out;
}

// Copies one argument of \frac/\sqrt/\binom, bracing the shorthand `\frac12` forms.
size_t copy_argument(std::string_view s, size_t i, std::string& out) {
  while (i < s.size() && is_space(s[i])) ++i;
  if (i >= s.size()) return i;
  if (s[i] == '{') {
    size_t end = match_brace(s, i);
    if (end == std::string_view::npos) end = s.size();
    out += s.substr(i, end - i);
    return end;
  }
  out += '{';
  size_t j = i + 1;
  if (s[i] == '\\') {
    while (j < s.size() && is_letter(s[j])) ++j;
  }
  out += s.substr(i, j - i);
  out += '}';
  return j;
}

// Pass 2: `\frac12` -> `\frac{1}{2}`, `\sqrt3` -> `\sqrt{3}`.
std::string brace_shorthands(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    int args = 0;
    size_t n = 0;
    if (s.compare(i, 5, "\\frac") == 0 && !(i + 5 < s.size() && is_letter(s[i + 5]))) {
      args = 2, n = 5;
    } else if (s.compare(i, 6, "\\binom") == 0 && !(i + 6 < s.size() && is_letter(s[i + 6]))) {
      args = 2, n = 6;
    } else if (s.compare(i, 5, "\\sqrt") == 0 && !(i + 5 < s.size() && is_letter(s[i + 5]))) {
      args = 1, n = 5;
    }
    if (args == 0) {
      out += s[i++];
      continue;
    }
    out += s.substr(i, n);
    i += n;
    while (i < s.size() && is_space(s[i])) ++i;
    if (n == 5 && s.compare(i - 5, 5, "\\sqrt") == 0 && i < s.size() && s[i] == '[') {
      size_t close = s.find(']', i);
      if (close == std::string_view::npos) close = s.size() - 1;
      out += s.substr(i, close + 1 - i);
      i = close + 1;
    }
    for (int a = 0; a < args; ++a) i = copy_argument(s, i, out);
  }
  return out;
}

}  // namespace

std::optional<std::string> last_boxed(std::string_view text) {
  size_t pos = text.size();
  while (pos > 0) {
    size_t b = text.rfind("\\boxed", pos - 1);
    size_t f = text.rfind("\\fbox", pos - 1);
    size_t at = b;
    size_t len = 6;
    if (b == std::string_view::npos || (f != std::string_view::npos && f > b)) at = f, len = 5;
    if (at == std::string_view::npos) return std::nullopt;
    size_t i = at + len;
    if (i < text.size() && text[i] == '{') {
      size_t end = match_brace(text, i);
      if (end != std::string_view::npos) return std::string(text.substr(i + 1, end - i - 2));
    } else if (i < text.size() && text[i] == ' ') {
      // `\boxed 5` shorthand: the next run of non-space characters.
      while (i < text.size() && text[i] == ' ') ++i;
      size_t j = i;
      while (j < text.size() && !is_space(text[j]) && text[j] != '$') ++j;
      if (j > i) return std::string(text.substr(i, j - i));
    }
    pos = at;  // truncated or empty: try the previous one
  }
  return std::nullopt;
}

std::optional<std::string> extract_math_answer(std::string_view completion,
                                               const MathOptions& options) {
  std::string_view text = completion;
  if (options.after_think) {
    size_t end = text.rfind("</think>");
    if (end == std::string_view::npos) return std::nullopt;
    text = text.substr(end + 8);
  }
  if (options.location == AnswerLocation::boxed) return last_boxed(text);
  if (options.location == AnswerLocation::any) {
    if (auto boxed = last_boxed(text)) return boxed;
  }
  auto block = last_block(text, "<answer>", "</answer>");
  if (!block) return std::nullopt;
  if (auto boxed = last_boxed(*block)) return boxed;
  std::string_view inner = trim(*block);
  if (inner.empty()) return std::nullopt;
  return std::string(inner);
}

std::string normalize_latex(std::string_view latex) {
  std::string s = brace_shorthands(clean_commands(trim(latex)));
  std::string_view v = trim(s);
  // Trailing sentence punctuation and line breaks are not part of the answer.
  for (;;) {
    if (!v.empty() && (v.back() == '.' || v.back() == ',')) {
      v.remove_suffix(1);
    } else if (v.size() >= 2 && v.substr(v.size() - 2) == "\\\\") {
      v.remove_suffix(2);
    } else {
      break;
    }
    v = trim(v);
  }
  return std::string(v);
}

}  // namespace grpo::reward
