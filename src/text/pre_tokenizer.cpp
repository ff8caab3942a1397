// Pre-tokenizers on PCRE2 with JIT: the Unicode-category regexes of GPT-2, Llama-3 and Qwen2
// match on UTF-8 directly, with no copy of the text.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "pre_tokenizer.h"

#include <pcre2.h>

#include <nlohmann/json.hpp>

#include "grpo/core/error.h"

namespace grpo::text {

namespace {

// The regex the ByteLevel pre-tokenizer uses when use_regex is true (GPT-2's).
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr const char* kOnigSpace = R"(\t-\r\x{85}\p{Z})";

// Per-thread match state: pcre2 match data and a JIT stack large enough for long runs.
struct MatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  MatchState() { pcre2_jit_stack_assign(context, nullptr, stack); }
  ~MatchState() {
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(data);
  }
};

std::string literal_pattern(const std::string& s) {
  std::string out = "\\Q";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 2, "\\E") == 0) {
      out += "\\E\\\\E\\Q";
      ++i;
    } else {
      out += s[i];
    }
  }
  return out + "\\E";
}

}  // namespace

std::string onig_to_pcre2(const std::string& pattern) {
  std::string out;
  bool in_class = false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 's') {
        out += in_class ? std::string(kOnigSpace) : "[" + std::string(kOnigSpace) + "]";
      } else if (e == 'S') {
        GRPO_CHECK(!in_class, "tokenizer.json: regex '", pattern,
                   "': \\S inside a character class is not supported");
        out += "[^" + std::string(kOnigSpace) + "]";
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    GRPO_CHECK(!(c == '[' && in_class), "tokenizer.json: regex '", pattern,
               "': nested character classes are not supported");
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

RegexSplitter::RegexSplitter(const std::string& onig_pattern) {
  const std::string pattern = onig_to_pcre2(onig_pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    GRPO_FAIL("tokenizer.json: cannot compile regex '", onig_pattern, "' at offset ", offset, ": ",
              reinterpret_cast<const char*>(message));
  }
  // Without JIT (a platform PCRE2 lacks) pcre2_match still works, only slower.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  code_ = code;
}

RegexSplitter::~RegexSplitter() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void RegexSplitter::split(std::string_view text, bool remove,
                          std::vector<std::string_view>& out) const {
  thread_local MatchState state;
  auto* code = static_cast<pcre2_code*>(code_);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t pos = 0, emitted = 0;
  while (pos <= text.size()) {
    const int rc =
        pcre2_match(code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, state.data, state.context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    GRPO_CHECK(rc >= 0, "pre-tokenizer regex failed with PCRE2 error ", rc);
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(state.data);
    const std::size_t start = ov[0], stop = ov[1];
    if (stop == start) {  // an empty match: step over one character
      pos = stop + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    if (start > emitted) out.push_back(text.substr(emitted, start - emitted));
    if (!remove) out.push_back(text.substr(start, stop - start));
    emitted = pos = stop;
  }
  if (emitted < text.size()) out.push_back(text.substr(emitted));
}

PreTokenizer PreTokenizer::from_json(const nlohmann::json& j) {
  PreTokenizer p;
  if (!j.is_null()) p.add(j);
  return p;
}

void PreTokenizer::add(const nlohmann::json& j) {
  const std::string type = j.value("type", "");
  if (type == "Sequence") {
    for (const auto& step : j.at("pretokenizers")) add(step);
  } else if (type == "ByteLevel") {
    byte_level_ = true;
    if (j.value("add_prefix_space", false)) steps_.push_back(Step{nullptr, false});
    if (j.value("use_regex", true)) {
      steps_.push_back(Step{std::make_shared<RegexSplitter>(kGpt2Pattern), false});
    }
  } else if (type == "Split") {
    GRPO_CHECK(!j.value("invert", false), "tokenizer.json: Split pre-tokenizer with invert=true ",
               "is not supported");
    const std::string behavior = j.value("behavior", "");
    GRPO_CHECK(behavior == "Isolated" || behavior == "Removed",
               "tokenizer.json: Split pre-tokenizer behavior '", behavior,
               "' is not supported (Isolated, Removed)");
    const auto& pattern = j.at("pattern");
    const std::string regex = pattern.contains("Regex")
                                  ? pattern.at("Regex").get<std::string>()
                                  : literal_pattern(pattern.at("String").get<std::string>());
    steps_.push_back(Step{std::make_shared<RegexSplitter>(regex), behavior == "Removed"});
  } else {
    GRPO_FAIL("tokenizer.json: pre_tokenizer type '", type,
              "' is not supported (Sequence, Split, ByteLevel)");
  }
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& out,
                         std::deque<std::string>& arena) const {
  if (steps_.empty()) {
    if (!text.empty()) out.push_back(text);
    return;
  }
  std::vector<std::string_view> current{text}, next;
  for (std::size_t s = 0; s < steps_.size(); ++s) {
    const Step& step = steps_[s];
    std::vector<std::string_view>& dest = s + 1 == steps_.size() ? out : next;
    for (std::string_view piece : current) {
      if (step.regex) {
        step.regex->split(piece, step.remove, dest);
      } else if (!piece.empty() && piece[0] == ' ') {
        dest.push_back(piece);
      } else {
        arena.push_back(" " + std::string(piece));
        dest.push_back(arena.back());
      }
    }
    if (&dest == &next) {
      current.swap(next);
      next.clear();
    }
  }
}

}  // namespace grpo::text
