// format_think_answer and language_consistency (see format_rewards.h for the rules).
#include "grpo/reward/format_rewards.h"

#include <array>
#include <cctype>
#include <cstdint>

namespace grpo::reward {
namespace {

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
constexpr std::string_view kAnswerOpen = "<answer>";
constexpr std::string_view kAnswerClose = "</answer>";

int count(std::string_view text, std::string_view tag) {
  int n = 0;
  for (size_t at = text.find(tag); at != std::string_view::npos; at = text.find(tag, at + 1)) ++n;
  return n;
}

bool blank(std::string_view s) {
  for (char c : s) {
    if (!std::isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool strict_ok(std::string_view text, const FormatOptions& o) {
  text = trim(text);
  for (auto tag : {kThinkOpen, kThinkClose, kAnswerOpen, kAnswerClose}) {
    if (count(text, tag) != 1) return false;
  }
  if (text.substr(0, kThinkOpen.size()) != kThinkOpen) return false;
  if (text.size() < kAnswerClose.size() ||
      text.substr(text.size() - kAnswerClose.size()) != kAnswerClose) {
    return false;
  }
  size_t think_end = text.find(kThinkClose);
  size_t answer_start = text.find(kAnswerOpen);
  if (answer_start < think_end) return false;
  std::string_view think = text.substr(kThinkOpen.size(), think_end - kThinkOpen.size());
  std::string_view between =
      text.substr(think_end + kThinkClose.size(), answer_start - think_end - kThinkClose.size());
  size_t body = answer_start + kAnswerOpen.size();
  std::string_view answer = text.substr(body, text.size() - kAnswerClose.size() - body);
  if (!blank(between)) return false;
  return !o.require_nonempty || (!blank(think) && !blank(answer));
}

bool lenient_ok(std::string_view text, const FormatOptions& o) {
  size_t think_open = text.find(kThinkOpen);
  if (think_open == std::string_view::npos) return false;
  size_t think_close = text.find(kThinkClose, think_open);
  if (think_close == std::string_view::npos) return false;
  size_t answer_open = text.find(kAnswerOpen, think_close);
  if (answer_open == std::string_view::npos) return false;
  size_t answer_close = text.find(kAnswerClose, answer_open);
  if (answer_close == std::string_view::npos) return false;
  if (!o.require_nonempty) return true;
  size_t t = think_open + kThinkOpen.size();
  size_t a = answer_open + kAnswerOpen.size();
  return !blank(text.substr(t, think_close - t)) && !blank(text.substr(a, answer_close - a));
}

// Decodes one UTF-8 code point at s[i], advancing i; malformed bytes decode as U+FFFD.
std::uint32_t next_code_point(std::string_view s, size_t& i) {
  auto b = static_cast<unsigned char>(s[i++]);
  if (b < 0x80) return b;
  int extra = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : b >= 0xC0 ? 1 : -1;
  if (extra < 0) return 0xFFFD;
  std::uint32_t cp = b & (0x3F >> extra);
  for (int k = 0; k < extra; ++k) {
    if (i >= s.size() || (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) return 0xFFFD;
    cp = (cp << 6) | (static_cast<unsigned char>(s[i++]) & 0x3F);
  }
  return cp;
}

// Letter classes by Unicode block; `none` for digits, punctuation, symbols and spaces.
enum class Letter {
  none,
  latin,
  cyrillic,
  greek,
  arabic,
  hebrew,
  devanagari,
  thai,
  han,
  kana,
  hangul
};

Letter classify(std::uint32_t c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return Letter::latin;
  if ((c >= 0xC0 && c <= 0x24F && c != 0xD7 && c != 0xF7) || (c >= 0x1E00 && c <= 0x1EFF)) {
    return Letter::latin;
  }
  if (c >= 0x370 && c <= 0x3FF) return Letter::greek;
  if (c >= 0x400 && c <= 0x52F) return Letter::cyrillic;
  if (c >= 0x590 && c <= 0x5FF) return Letter::hebrew;
  if ((c >= 0x600 && c <= 0x6FF) || (c >= 0x750 && c <= 0x77F)) return Letter::arabic;
  if (c >= 0x900 && c <= 0x97F) return Letter::devanagari;
  if (c >= 0xE00 && c <= 0xE7F) return Letter::thai;
  if ((c >= 0x3040 && c <= 0x30FF) || (c >= 0x31F0 && c <= 0x31FF)) return Letter::kana;
  if ((c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
      (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0xF900 && c <= 0xFAFF)) {
    return Letter::han;
  }
  if ((c >= 0xAC00 && c <= 0xD7AF) || (c >= 0x1100 && c <= 0x11FF) ||
      (c >= 0x3130 && c <= 0x318F)) {
    return Letter::hangul;
  }
  return Letter::none;
}

bool in_target(Letter l, Script target) {
  switch (target) {
    case Script::latin:
      return l == Letter::latin;
    case Script::cyrillic:
      return l == Letter::cyrillic;
    case Script::greek:
      return l == Letter::greek;
    case Script::arabic:
      return l == Letter::arabic;
    case Script::hebrew:
      return l == Letter::hebrew;
    case Script::devanagari:
      return l == Letter::devanagari;
    case Script::thai:
      return l == Letter::thai;
    case Script::chinese:
      return l == Letter::han;
    case Script::japanese:
      return l == Letter::han || l == Letter::kana;
    case Script::korean:
      return l == Letter::hangul;
  }
  return false;
}

// The chain of thought: from the last <think> (or the start) to the next </think> (or the end).
std::string_view think_segment(std::string_view text) {
  size_t open = text.rfind(kThinkOpen);
  size_t start = open == std::string_view::npos ? 0 : open + kThinkOpen.size();
  size_t close = text.find(kThinkClose, start);
  if (open == std::string_view::npos && close == std::string_view::npos) return text;
  return text.substr(start, close == std::string_view::npos ? text.size() - start : close - start);
}

}  // namespace

const std::vector<std::pair<FormatMode, std::string>>& enum_names(FormatMode) {
  static const std::vector<std::pair<FormatMode, std::string>> k = {
      {FormatMode::strict, "strict"},
      {FormatMode::lenient, "lenient"},
      {FormatMode::tag_count, "tag_count"}};
  return k;
}

const std::vector<std::pair<Script, std::string>>& enum_names(Script) {
  static const std::vector<std::pair<Script, std::string>> k = {
      {Script::latin, "latin"},       {Script::cyrillic, "cyrillic"},
      {Script::greek, "greek"},       {Script::arabic, "arabic"},
      {Script::hebrew, "hebrew"},     {Script::devanagari, "devanagari"},
      {Script::thai, "thai"},         {Script::chinese, "chinese"},
      {Script::japanese, "japanese"}, {Script::korean, "korean"}};
  return k;
}

const std::vector<std::pair<TextSegment, std::string>>& enum_names(TextSegment) {
  static const std::vector<std::pair<TextSegment, std::string>> k = {
      {TextSegment::think, "think"}, {TextSegment::completion, "completion"}};
  return k;
}

double format_score(std::string_view completion, const FormatOptions& options) {
  std::string with_open;
  std::string_view text = completion;
  if (options.think_in_prompt) {
    with_open = std::string(kThinkOpen) + std::string(completion);
    text = with_open;
  }
  switch (options.mode) {
    case FormatMode::strict:
      return strict_ok(text, options) ? 1.0 : 0.0;
    case FormatMode::lenient:
      return lenient_ok(text, options) ? 1.0 : 0.0;
    case FormatMode::tag_count: {
      double s = 0.0;
      for (auto tag : {kThinkOpen, kThinkClose, kAnswerOpen, kAnswerClose}) {
        if (count(text, tag) == 1) s += 0.25;
      }
      return s;
    }
  }
  return 0.0;
}

RewardResult FormatThinkAnswer::score(const Sample& sample) const {
  RewardResult r;
  r.score = format_score(sample.completion, options_);
  return r;
}

WordCounts count_words(std::string_view text, Script target) {
  WordCounts wc;
  Letter run = Letter::none;
  int run_length = 0;
  auto end_run = [&] {
    // Single Latin letters are variables (x, n), not words.
    bool word = run != Letter::none && !(run == Letter::latin && run_length == 1);
    if (word) {
      ++wc.total;
      if (in_target(run, target)) ++wc.target;
    }
    run = Letter::none;
    run_length = 0;
  };
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '<') {  // a tag such as <think> or </answer> is markup, not words
      size_t j = i + 1;
      if (j < text.size() && text[j] == '/') ++j;
      while (j < text.size() && std::isalpha(static_cast<unsigned char>(text[j]))) ++j;
      if (j < text.size() && text[j] == '>' && j > i + 1) {
        end_run();
        i = j + 1;
        continue;
      }
    }
    if (text[i] == '\\') {  // a LaTeX command: \frac, \sqrt
      end_run();
      ++i;
      while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
      continue;
    }
    Letter l = classify(next_code_point(text, i));
    if (l == Letter::han || l == Letter::kana) {
      end_run();
      ++wc.total;
      if (in_target(l, target)) ++wc.target;
      continue;
    }
    if (l != run) end_run();
    if (l != Letter::none) {
      run = l;
      ++run_length;
    }
  }
  end_run();
  return wc;
}

RewardResult LanguageConsistency::score(const Sample& sample) const {
  std::string_view text = sample.completion;
  if (options_.segment == TextSegment::think) text = think_segment(text);
  WordCounts wc = count_words(text, options_.target);
  RewardResult r;
  r.score = wc.total == 0 ? options_.empty_score : static_cast<double>(wc.target) / wc.total;
  r.details["words"] = wc.total;
  return r;
}

}  // namespace grpo::reward
