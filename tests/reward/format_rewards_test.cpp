// format_think_answer (strict, lenient, tag_count, think_in_prompt) and language_consistency;
// expected scores are read off the R1-Zero layout rules by hand.
#include <gtest/gtest.h>

#include "grpo/reward/format_rewards.h"

namespace grpo::reward {
namespace {

double strict(const std::string& text) { return format_score(text, FormatOptions{}); }

TEST(FormatStrict, AcceptsExactlyOneThinkThenOneAnswer) {
  EXPECT_EQ(strict("<think>reason</think><answer>5</answer>"), 1.0);
  EXPECT_EQ(strict("  <think>\nreason\n</think>\n<answer>\n5\n</answer>\n"), 1.0);
}

TEST(FormatStrict, RejectsEverythingElse) {
  EXPECT_EQ(strict("<think>a</think><answer>5</answer><answer>6</answer>"), 0.0);   // two answers
  EXPECT_EQ(strict("<think>a</think><think>b</think><answer>5</answer>"), 0.0);     // two thinks
  EXPECT_EQ(strict("<think>a <think>b</think> c</think><answer>5</answer>"), 0.0);  // nested
  EXPECT_EQ(strict("<think>a <answer>x</answer></think>"), 0.0);       // answer inside think
  EXPECT_EQ(strict("intro <think>a</think><answer>5</answer>"), 0.0);  // text before
  EXPECT_EQ(strict("<think>a</think><answer>5</answer> bye"), 0.0);    // text after
  EXPECT_EQ(strict("<think>a</think> so <answer>5</answer>"), 0.0);    // text between
  EXPECT_EQ(strict("<answer>5</answer><think>a</think>"), 0.0);        // wrong order
  EXPECT_EQ(strict("<think>a</think><answer>5"), 0.0);                 // unclosed
  EXPECT_EQ(strict("<think> </think><answer>5</answer>"), 0.0);        // empty think
  EXPECT_EQ(strict("<think>a</think><answer> </answer>"), 0.0);        // empty answer
  FormatOptions o;
  o.require_nonempty = false;
  EXPECT_EQ(format_score("<think></think><answer></answer>", o), 1.0);
}

TEST(FormatStrict, ThinkOpenedByThePrompt) {
  FormatOptions o;
  o.think_in_prompt = true;
  EXPECT_EQ(format_score("reason</think><answer>5</answer>", o), 1.0);
  EXPECT_EQ(format_score("<think>reason</think><answer>5</answer>", o), 0.0);
}

TEST(FormatLenient, AllowsTextAroundAndRepeats) {
  FormatOptions o;
  o.mode = FormatMode::lenient;
  EXPECT_EQ(format_score("hi <think>a</think> so <answer>5</answer> bye", o), 1.0);
  EXPECT_EQ(format_score("<think>a</think><answer>5</answer><answer>6</answer>", o), 1.0);
  EXPECT_EQ(format_score("<answer>5</answer><think>a</think>", o), 0.0);
  EXPECT_EQ(format_score("<think>a</think> no answer", o), 0.0);
}

TEST(FormatTagCount, QuarterPerUniqueTag) {
  FormatOptions o;
  o.mode = FormatMode::tag_count;
  EXPECT_EQ(format_score("<think>a</think><answer>5</answer>", o), 1.0);
  EXPECT_EQ(format_score("<think>a</think>", o), 0.5);
  EXPECT_EQ(format_score("<think>a</think><answer>5</answer><answer>", o), 0.75);
  EXPECT_EQ(format_score("nothing", o), 0.0);
}

TEST(Language, CountsWordsByScript) {
  WordCounts wc = count_words("Let x be 5, so \\frac{1}{2} works", Script::latin);
  EXPECT_EQ(wc.total, 4);  // Let, be, so, works; x and \frac are not words
  EXPECT_EQ(wc.target, 4);
  wc = count_words("我们 have 三个", Script::chinese);
  EXPECT_EQ(wc.total, 5);  // four Han characters + "have"
  EXPECT_EQ(wc.target, 4);
  wc = count_words("Привет world", Script::cyrillic);
  EXPECT_EQ(wc.total, 2);
  EXPECT_EQ(wc.target, 1);
  wc = count_words("ひらがな漢字", Script::japanese);
  EXPECT_EQ(wc.target, 6);
  EXPECT_EQ(wc.total, 6);
}

TEST(Language, ScoresTheThinkSegment) {
  LanguageConsistency r{LanguageOptions{}};
  Sample s;
  s.completion = "<think>we compute the sum 我们</think><answer>答案</answer>";
  EXPECT_DOUBLE_EQ(r.score(s).score, 4.0 / 6.0);  // we, compute, the, sum vs 2 Han
  LanguageOptions o;
  o.segment = TextSegment::completion;
  EXPECT_DOUBLE_EQ(LanguageConsistency(o).score(s).score, 4.0 / 8.0);
  s.completion = "<think>123 + 4 = 127</think>";
  EXPECT_EQ(r.score(s).score, 0.0);  // no words: empty_score
  o.empty_score = 1.0;
  o.segment = TextSegment::think;
  EXPECT_EQ(LanguageConsistency(o).score(s).score, 1.0);
}

}  // namespace
}  // namespace grpo::reward
