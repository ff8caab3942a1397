// Internal to the math checker: the tokens of a normalised LaTeX answer (numbers, letters,
// functions, commands, words, symbols) and the token-level clean-ups that run before parsing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "math_value.h"

namespace grpo::reward::math {

enum class Tok : std::uint8_t { end, number, ident, func, cmd, text, sym };

struct Token {
  Tok kind = Tok::end;
  std::string s;  // ident name, command name, text content, or the symbol
  double value = 0.0;
  bool integer = false;
  Fn fn = Fn::sin;
};

inline bool is_sym(const Token& t, const char* s) { return t.kind == Tok::sym && t.s == s; }
inline bool is_cmd(const Token& t, const char* s) { return t.kind == Tok::cmd && t.s == s; }

// Splits `s` into tokens; false when it is malformed or longer than `max_tokens`.
bool tokenize(std::string_view s, size_t max_tokens, std::vector<Token>& out);

// Words next to mathematics (units, "dollars") are dropped; "and"/"or" become separators;
// "percent" a percent sign. `all_text` is set when there is nothing but words.
std::vector<Token> drop_words(std::vector<Token> in, bool& all_text);

// 1,234,567 (and only a whole answer shaped like that) loses its thousands separators.
std::string strip_thousands(std::string_view s);

}  // namespace grpo::reward::math
