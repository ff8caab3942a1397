// Hugging Face pre-tokenizers for byte-level BPE: Split (regex or literal) and ByteLevel, alone or
// in a Sequence. Regexes are Oniguruma syntax in tokenizer.json and run here on PCRE2 (JIT, UCP).
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace grpo::text {

// Rewrites an Oniguruma pattern for PCRE2: Oniguruma's \s is [\t-\r\x{85}\p{Z}], PCRE2's (with
// UCP) also matches U+180E. Throws on constructs whose meaning would differ.
std::string onig_to_pcre2(const std::string& pattern);

class RegexSplitter {
 public:
  explicit RegexSplitter(const std::string& onig_pattern);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Appends the matches of the pattern in `text` and the stretches between them; with `remove`,
  // the matches are dropped instead. `text` must be valid UTF-8.
  void split(std::string_view text, bool remove, std::vector<std::string_view>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8
};

class PreTokenizer {
 public:
  // `j` is tokenizer.json's "pre_tokenizer" (null allowed: the whole text is one piece).
  static PreTokenizer from_json(const nlohmann::json& j);

  // True when a ByteLevel step is present: the model works on bytes, not characters.
  bool byte_level() const { return byte_level_; }

  // Splits `text` into pre-tokens. Pieces that a step rewrites (a prefix space) live in `arena`.
  void split(std::string_view text, std::vector<std::string_view>& out,
             std::deque<std::string>& arena) const;

 private:
  struct Step {
    std::shared_ptr<RegexSplitter> regex;  // null: the prefix-space step
    bool remove = false;
  };
  void add(const nlohmann::json& j);

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace grpo::text
