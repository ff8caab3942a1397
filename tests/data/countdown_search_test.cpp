// The countdown generator's search form: the chain trials of small number sets enumerated by
// hand, the text of a trial, and properties every search solution must have (each trial one of
// the chains with its own steps, each step's arithmetic right, each check true, a found trial
// as the answer, a give-up guessing any expression over the numbers).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "grpo/core/error.h"
#include "grpo/data/countdown.h"
#include "grpo/data/expression.h"

namespace grpo::data {
namespace {

std::map<std::string, int64_t> by_expression(const std::vector<CountdownTrial>& trials) {
  std::map<std::string, int64_t> out;
  for (const auto& t : trials) out[t.expression] = t.value;
  EXPECT_EQ(out.size(), trials.size()) << "a trial is listed twice";
  return out;
}

TEST(CountdownSearch, TrialsOfTwoNumbers) {
  // 2 + 3, 2 * 3 (smaller first), 3 - 2 (larger first); 2 - 3 is negative.
  const auto trials = countdown_chain_trials({2, 3}, 50);
  const std::map<std::string, int64_t> want{{"2 + 3", 5}, {"2 * 3", 6}, {"3 - 2", 1}};
  EXPECT_EQ(by_expression(trials), want);
}

TEST(CountdownSearch, TrialsOfThreeNumbersUnderACap) {
  // [2, 3, 4], every intermediate in 1..6, by hand: first steps 2+3=5, 2*3=6, 3-2=1, 2+4=6,
  // 4-2=2, 4-3=1 (2*4, 3+4, 3*4 exceed 6); then the third number by +, -, * or "n - x".
  const auto trials = countdown_chain_trials({2, 3, 4}, 6);
  const std::map<std::string, int64_t> want{
      {"(2 + 3) - 4", 1}, {"(2 * 3) - 4", 2}, {"(3 - 2) + 4", 5}, {"(3 - 2) * 4", 4},
      {"4 - (3 - 2)", 3}, {"(2 + 4) - 3", 3}, {"(4 - 2) + 3", 5}, {"(4 - 2) * 3", 6},
      {"3 - (4 - 2)", 1}, {"(4 - 3) + 2", 3}, {"(4 - 3) * 2", 2}, {"2 - (4 - 3)", 1}};
  EXPECT_EQ(by_expression(trials), want);
  for (const auto& t : trials) {
    if (t.expression == "4 - (3 - 2)") {
      EXPECT_EQ(t.steps, (std::vector<std::string>{"3 - 2 = 1", "4 - 1 = 3"}));
    }
    if (t.expression == "(3 - 2) * 4") {
      EXPECT_EQ(t.steps, (std::vector<std::string>{"3 - 2 = 1", "1 * 4 = 4"}));
    }
  }
}

TEST(CountdownSearch, TrialsInTheOrderGiven) {
  // [3, 2, 4] in order, every intermediate in 1..6, by hand: first steps 3 + 2 = 5, 3 * 2 = 6
  // (written in the order given, not smaller first) and 3 - 2 = 1; then 4 by +, -, * or
  // "4 - x": 5 - 4, 6 - 4, 1 + 4, 1 * 4, 4 - 1 (the rest exceed 6 or are not positive).
  const std::map<std::string, int64_t> want{{"(3 + 2) - 4", 1},
                                            {"(3 * 2) - 4", 2},
                                            {"(3 - 2) + 4", 5},
                                            {"(3 - 2) * 4", 4},
                                            {"4 - (3 - 2)", 3}};
  EXPECT_EQ(by_expression(countdown_chain_trials({3, 2, 4}, 6, true)), want);
  // The first two in increasing order: - still writes the larger first.
  const std::map<std::string, int64_t> two{{"2 + 3", 5}, {"2 * 3", 6}, {"3 - 2", 1}};
  EXPECT_EQ(by_expression(countdown_chain_trials({2, 3}, 50, true)), two);
}

TEST(CountdownSearch, FixedOrderOfTrials) {
  // [3, 2, 4] in order under 30, by hand: first steps 3 + 2 = 5, 3 - 2 = 1, 3 * 2 = 6, each
  // followed by + 4, - 4, * 4, 4 - x where whole and in 1..30 (1 - 4 and 4 - 5, 4 - 6 are not).
  std::vector<std::string> got;
  for (const auto& t : countdown_fixed_order(countdown_chain_trials({3, 2, 4}, 30, true))) {
    got.push_back(t.expression);
  }
  const std::vector<std::string> want{"(3 + 2) + 4", "(3 + 2) - 4", "(3 + 2) * 4",
                                      "(3 - 2) + 4", "(3 - 2) * 4", "4 - (3 - 2)",
                                      "(3 * 2) + 4", "(3 * 2) - 4", "(3 * 2) * 4"};
  EXPECT_EQ(got, want);
}

TEST(CountdownSearch, EqualNumbersGiveEachTrialOnce) {
  // [5, 5]: 5 + 5 and 5 * 5 (5 - 5 = 0 is not positive), once each.
  const std::map<std::string, int64_t> want{{"5 + 5", 10}, {"5 * 5", 25}};
  EXPECT_EQ(by_expression(countdown_chain_trials({5, 5}, 50)), want);
}

TEST(CountdownSearch, TrialText) {
  CountdownTrial t;
  t.steps = {"7 + 9 = 16", "16 + 10 = 26"};
  t.expression = "(7 + 9) + 10";
  t.value = 26;
  EXPECT_EQ(countdown_trial_text(t, 26),
            "Try (7 + 9) + 10: 7 + 9 = 16. 16 + 10 = 26. Check: 26 is 26, found.");
  EXPECT_EQ(countdown_trial_text(t, 25),
            "Try (7 + 9) + 10: 7 + 9 = 16. 16 + 10 = 26. Check: 26 is not 25.");
}

// "a op b = c" -> whether c is right.
bool step_is_right(const std::string& step) {
  const size_t eq = step.find(" = ");
  if (eq == std::string::npos) return false;
  const Evaluation e = evaluate(step.substr(0, eq));
  return e.ok && e.value == Rational{std::stoll(step.substr(eq + 3)), 1};
}

std::vector<std::string> split_sentences(const std::string& think) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < think.size()) {
    size_t end = think.find(". ", at);
    if (end == std::string::npos) end = think.size();
    out.push_back(think.substr(at, end - at));
    at = end + 2;
  }
  return out;
}

// The easy preset in the search form, intermediates up to 30.
CountdownTaskOptions search_options(int max_number, double give_up_rate, int max_trials) {
  CountdownTaskOptions o = countdown_preset(Difficulty::easy);
  o.search = true;
  o.max_number = max_number;
  o.max_value = 30;
  o.give_up_rate = give_up_rate;
  o.max_trials = max_trials;
  return o;
}

TEST(CountdownSearch, EverySolutionSearchesHonestly) {
  CountdownTaskOptions o = search_options(9, 0.3, 6);
  o.style.direct_rate = 0.4;
  CountdownOptions strict;
  strict.use_all_numbers = true;
  strict.integer_intermediates = true;
  int direct = 0, found = 0, gave_up = 0;
  const int n = 400;
  for (uint64_t i = 0; i < n; ++i) {
    const TaskItem item = make_countdown(o, 3, i);
    const auto p = CountdownProblem::parse_spec(item.answer);
    ASSERT_EQ(p.numbers.size(), 3u);
    EXPECT_GE(p.target, 1);
    EXPECT_LE(p.target, o.max_target);
    EXPECT_EQ(std::count(p.numbers.begin(), p.numbers.end(), p.target), 0);
    EXPECT_EQ(check_countdown(item.extra["solution"].get<std::string>(), p, strict).verdict,
              "correct");
    const std::string& r = item.response;
    const std::string open = "<think> ", close = " </think> <answer> ";
    ASSERT_EQ(r.rfind(open, 0), 0u) << r;
    const size_t mid = r.find(close);
    ASSERT_NE(mid, std::string::npos) << r;
    std::string think = r.substr(open.size(), mid - open.size());
    std::string answer = r.substr(mid + close.size());
    answer = answer.substr(0, answer.find(" </answer>"));
    if (think.rfind("Let me guess: ", 0) == 0) {
      ++direct;
      EXPECT_EQ(think, "Let me guess: " + answer + ".") << r;
      continue;
    }
    // Sentences: steps, then "Check: v is not T" or "Check: v is T, found"; a give-up ends
    // with "Let me guess: <the answer>.".
    const bool found_it = think.size() > 7 && think.compare(think.size() - 7, 7, " found.") == 0;
    if (!found_it) {
      const std::string tail = " Let me guess: " + answer + ".";
      ASSERT_GE(think.size(), tail.size()) << r;
      ASSERT_EQ(think.substr(think.size() - tail.size()), tail) << r;
      think.erase(think.size() - tail.size());
    }
    if (!think.empty() && think.back() == '.') think.pop_back();
    const auto all = countdown_chain_trials(p.numbers, o.max_value);
    std::set<std::string> tried;
    std::vector<std::string> steps;
    std::string named;  // the expression after "Try"
    int trials = 0;
    int64_t running = 0;
    for (std::string s : split_sentences(think)) {
      if (s.rfind("Try ", 0) == 0) {
        const size_t colon = s.find(": ");
        ASSERT_NE(colon, std::string::npos) << r;
        named = s.substr(4, colon - 4);
        s = s.substr(colon + 2);
      }
      if (s.rfind("Check: ", 0) == 0) {
        ++trials;
        // The steps are those of the trial named after "Try".
        for (const auto& t : all) {
          if (t.expression == named) {
            EXPECT_EQ(t.steps, steps) << r;
            tried.insert(t.expression);
          }
        }
        steps.clear();
        named.clear();
        const std::string t = std::to_string(p.target);
        const std::string v = std::to_string(running);
        if (running == p.target) {
          EXPECT_EQ(s, "Check: " + v + " is " + t + ", found") << r;
        } else {
          EXPECT_EQ(s, "Check: " + v + " is not " + t) << r;
        }
        continue;
      }
      steps.push_back(s);
      EXPECT_TRUE(step_is_right(s)) << s << " in " << r;
      running = std::stoll(s.substr(s.find(" = ") + 3));
      EXPECT_LE(running, o.max_value);
      EXPECT_GE(running, 1);
    }
    EXPECT_GE(trials, 1) << r;
    EXPECT_LE(trials, o.max_trials) << r;
    EXPECT_EQ(tried.size(), static_cast<size_t>(trials)) << "a trial repeats or is no chain: " << r;
    const auto verdict = score_countdown(r, item.answer, strict).verdict;
    if (found_it) {
      ++found;
      EXPECT_EQ(verdict, "correct") << r;
    } else {
      ++gave_up;
      // The guess is an expression over every number, its value not checked.
      const Evaluation e = evaluate(answer);
      EXPECT_TRUE(e.ok || e.division_by_zero) << r;
      std::vector<int64_t> used = e.numbers, given = p.numbers;
      std::sort(used.begin(), used.end());
      std::sort(given.begin(), given.end());
      EXPECT_EQ(used, given) << r;
    }
  }
  // 0.4 of 400 answer at once (binomial sd about 10); the rest search.
  EXPECT_NEAR(direct, 160, 40);
  EXPECT_GT(found, 40);
  EXPECT_GT(gave_up, 40);
}

TEST(CountdownSearch, NoGivingUpFindsTheTargetWithinTheList) {
  // give_up_rate 0 and a budget above the number of trials: every solution ends in "found".
  const CountdownTaskOptions o = search_options(6, 0.0, 64);
  CountdownOptions strict;
  strict.use_all_numbers = true;
  for (uint64_t i = 0; i < 100; ++i) {
    const TaskItem item = make_countdown(o, 5, i);
    EXPECT_NE(item.response.find(", found. </think>"), std::string::npos) << item.response;
    EXPECT_EQ(score_countdown(item.response, item.answer, strict).verdict, "correct");
  }
}

TEST(CountdownSearch, InOrderTrialsAndTargetsThatNeedEveryNumber) {
  // in_order: the hidden solution and every trial are chains in the order given, and with no
  // giving up every solution finds the target; the target is none of the numbers and no chain
  // over two of them (in any order) reaches it.
  CountdownTaskOptions o = search_options(9, 0.0, 64);
  o.in_order = true;
  CountdownOptions strict;
  strict.use_all_numbers = true;
  for (uint64_t i = 0; i < 200; ++i) {
    const TaskItem item = make_countdown(o, 7, i);
    const auto p = CountdownProblem::parse_spec(item.answer);
    ASSERT_EQ(p.numbers.size(), 3u);
    const auto ordered = by_expression(countdown_chain_trials(p.numbers, o.max_value, true));
    EXPECT_EQ(ordered.count(item.extra["solution"].get<std::string>()), 1u) << item.response;
    EXPECT_EQ(std::count(p.numbers.begin(), p.numbers.end(), p.target), 0);
    for (size_t a = 0; a < 3; ++a) {
      for (size_t b = a + 1; b < 3; ++b) {
        for (const auto& t : countdown_chain_trials({p.numbers[a], p.numbers[b]}, o.max_value)) {
          EXPECT_NE(t.value, p.target) << t.expression << " in " << item.response;
        }
      }
    }
    const std::string& r = item.response;
    for (size_t at = r.find("Try "); at != std::string::npos; at = r.find("Try ", at + 4)) {
      const std::string named = r.substr(at + 4, r.find(": ", at) - at - 4);
      EXPECT_EQ(ordered.count(named), 1u) << named << " in " << r;
    }
    EXPECT_NE(r.find(", found. </think>"), std::string::npos) << r;
    EXPECT_EQ(score_countdown(r, item.answer, strict).verdict, "correct") << r;
  }
}

// The trials a fixed_order search makes (test reference): in the fixed order, each time the
// first untried trial whose last step moves towards the target, until one hits.
std::vector<std::string> fixed_search(const std::vector<CountdownTrial>& sorted, int64_t target) {
  std::vector<bool> tried(sorted.size(), false);
  std::vector<std::string> out;
  while (out.size() < sorted.size()) {
    size_t pick = sorted.size();
    for (size_t i = 0; i < sorted.size() && pick == sorted.size(); ++i) {
      const int64_t x = sorted[i].before_last, v = sorted[i].value;
      if (!tried[i] && ((x < target && v > x) || (x > target && v < x))) pick = i;
    }
    for (size_t i = 0; i < sorted.size() && pick == sorted.size(); ++i) {
      if (!tried[i]) pick = i;
    }
    tried[pick] = true;
    out.push_back(sorted[pick].expression);
    if (sorted[pick].value == target) break;
  }
  return out;
}

TEST(CountdownSearch, FixedOrderSearch) {
  // The reference on [3, 2, 4] and the target 10, by hand: (3 + 2) + 4 (5 -> 9, up), skip
  // (3 + 2) - 4 (down), (3 + 2) * 4, (3 - 2) + 4, (3 - 2) * 4, 4 - (3 - 2) (1 -> 3, up), then
  // (3 * 2) + 4 = 10.
  const auto sorted = countdown_fixed_order(countdown_chain_trials({3, 2, 4}, 30, true));
  EXPECT_EQ(fixed_search(sorted, 10),
            (std::vector<std::string>{"(3 + 2) + 4", "(3 + 2) * 4", "(3 - 2) + 4", "(3 - 2) * 4",
                                      "4 - (3 - 2)", "(3 * 2) + 4"}));
  // The generator's solutions (no giving up) try exactly those trials.
  CountdownTaskOptions o = search_options(9, 0.0, 64);
  o.in_order = true;
  o.fixed_order = true;
  for (uint64_t i = 0; i < 200; ++i) {
    const TaskItem item = make_countdown(o, 11, i);
    const auto p = CountdownProblem::parse_spec(item.answer);
    const auto want = fixed_search(
        countdown_fixed_order(countdown_chain_trials(p.numbers, o.max_value, true)), p.target);
    std::vector<std::string> named;
    const std::string& r = item.response;
    for (size_t at = r.find("Try "); at != std::string::npos; at = r.find("Try ", at + 4)) {
      named.push_back(r.substr(at + 4, r.find(": ", at) - at - 4));
    }
    EXPECT_EQ(named, want) << r;
  }
}

TEST(CountdownSearch, TooManyNumbersIsAConfigError) {
  CountdownTaskOptions o;
  o.search = true;
  o.count = 5;
  EXPECT_THROW(make_countdown(o, 0, 0), grpo::Error);
}

}  // namespace
}  // namespace grpo::data
