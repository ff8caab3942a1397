// The countdown generator's held-out split: the hash of a problem's canonical form decides its
// part, the train and holdout splits never share a problem, together they give every problem
// the unsplit generator gives, each is deterministic per seed, and bad options name themselves.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "grpo/core/config_node.h"
#include "grpo/core/error.h"
#include "grpo/data/countdown.h"
#include "grpo/data/tasks.h"

namespace grpo::data {
namespace {

std::vector<TaskItem> make(const std::vector<std::string>& sets, size_t n, uint64_t seed) {
  return generate_task(TaskKind::countdown, Difficulty::easy, config::overrides_map(sets), n, seed);
}

std::set<std::string> problems(const std::vector<TaskItem>& items) {
  std::set<std::string> out;
  for (const auto& item : items) out.insert(item.answer);
  return out;
}

// The countdown recipe's settings (docs/recipes.md): about 2500 distinct problems.
const std::vector<std::string> kRecipe = {"search=true", "in_order=true", "max_number=9",
                                          "max_value=30"};

std::vector<std::string> with(std::vector<std::string> sets, const std::vector<std::string>& more) {
  sets.insert(sets.end(), more.begin(), more.end());
  return sets;
}

TEST(CountdownHoldout, HashIgnoresTheOrderOfTheNumbers) {
  const CountdownProblem a{{3, 5, 7}, 22};
  const CountdownProblem b{{7, 3, 5}, 22};
  const CountdownProblem c{{3, 5, 7}, 23};
  EXPECT_EQ(countdown_problem_hash(a), countdown_problem_hash(b));
  EXPECT_NE(countdown_problem_hash(a), countdown_problem_hash(c));
  EXPECT_GE(countdown_problem_hash(a), 0.0);
  EXPECT_LT(countdown_problem_hash(a), 1.0);
  EXPECT_FALSE(countdown_in_holdout(a, 0.0));
}

TEST(CountdownHoldout, FractionOfAllProblemsHeldOut) {
  // Every multiset of 3 numbers in 1..9 (C(11, 3) = 165) with every target in 1..30: 4950
  // problems. A fraction f of them should be held out, within 4 binomial standard deviations
  // (f = 0.1: sd = sqrt(0.1 * 0.9 / 4950) = 0.0043).
  for (double f : {0.1, 0.5}) {
    size_t held = 0;
    size_t total = 0;
    for (int64_t a = 1; a <= 9; ++a)
      for (int64_t b = a; b <= 9; ++b)
        for (int64_t c = b; c <= 9; ++c)
          for (int64_t t = 1; t <= 30; ++t) {
            ++total;
            held += countdown_in_holdout({{a, b, c}, t}, f) ? 1 : 0;
          }
    ASSERT_EQ(total, 4950u);
    const double sd = std::sqrt(f * (1 - f) / 4950.0);
    EXPECT_NEAR(static_cast<double>(held) / 4950.0, f, 4 * sd) << "holdout=" << f;
  }
}

TEST(CountdownHoldout, SplitsAreDisjointAndTogetherTheUnsplitProblems) {
  // Two numbers in 1..3 and targets up to 9: few enough problems that a few thousand draws
  // see them all.
  const std::vector<std::string> small = {"count=2", "max_number=3", "max_target=9"};
  std::set<std::string> unsplit;
  std::set<std::string> train;
  std::set<std::string> held;
  for (uint64_t seed = 0; seed < 4; ++seed) {
    for (const auto& p : problems(make(small, 500, seed))) unsplit.insert(p);
    for (const auto& p : problems(make(with(small, {"holdout=0.5"}), 500, seed))) train.insert(p);
    for (const auto& p : problems(make(with(small, {"holdout=0.5", "split=holdout"}), 500, seed)))
      held.insert(p);
  }
  ASSERT_FALSE(train.empty());
  ASSERT_FALSE(held.empty());
  for (const auto& p : held) EXPECT_EQ(train.count(p), 0u) << p << " is in both splits";
  std::set<std::string> both = train;
  both.insert(held.begin(), held.end());
  EXPECT_EQ(both, unsplit);
  for (const auto& p : held)
    EXPECT_TRUE(countdown_in_holdout(CountdownProblem::parse_spec(p), 0.5));
  for (const auto& p : train)
    EXPECT_FALSE(countdown_in_holdout(CountdownProblem::parse_spec(p), 0.5));
}

TEST(CountdownHoldout, RecipeSplitsNeverShareAProblemOverManySeeds) {
  std::set<std::string> train;
  std::set<std::string> held;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    for (const auto& p : problems(make(with(kRecipe, {"holdout=0.1"}), 400, seed))) train.insert(p);
    for (const auto& p : problems(make(with(kRecipe, {"holdout=0.1", "split=holdout"}), 100, seed)))
      held.insert(p);
  }
  for (const auto& p : held) EXPECT_EQ(train.count(p), 0u) << p << " is in both splits";
  EXPECT_GT(held.size(), 50u);  // 500 held-out draws from about 250 held-out problems
}

TEST(CountdownHoldout, DeterministicPerSeedAndTrainKeepsUnsplitItems) {
  const auto sets = with(kRecipe, {"holdout=0.1", "split=holdout"});
  const auto a = make(sets, 30, 3);
  const auto b = make(sets, 30, 3);
  const auto c = make(sets, 30, 4);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].to_json(true), b[i].to_json(true));
  }
  EXPECT_NE(problems(a), problems(c));
  // The train split redraws only the items whose first draw is held out: the others are the
  // unsplit generator's items.
  const auto unsplit = make(kRecipe, 200, 1);
  const auto train = make(with(kRecipe, {"holdout=0.1"}), 200, 1);
  size_t same = 0;
  for (size_t i = 0; i < unsplit.size(); ++i) {
    const bool held = countdown_in_holdout(CountdownProblem::parse_spec(unsplit[i].answer), 0.1);
    if (!held) {
      EXPECT_EQ(train[i].to_json(true), unsplit[i].to_json(true)) << i;
      ++same;
    }
  }
  EXPECT_GT(same, 150u);
}

TEST(CountdownHoldout, BadValuesNameTheOption) {
  auto message = [](const std::vector<std::string>& sets) -> std::string {
    try {
      make(sets, 1, 0);
    } catch (const grpo::Error& e) {
      EXPECT_EQ(e.kind(), grpo::ErrorKind::config) << e.what();
      return e.what();
    }
    return "";
  };
  EXPECT_NE(message({"holdout=1.5"}).find("countdown.holdout"), std::string::npos);
  EXPECT_NE(message({"holdout=-0.1"}).find("countdown.holdout"), std::string::npos);
  EXPECT_NE(message({"holdout=1"}).find("countdown.holdout"), std::string::npos);
  EXPECT_NE(message({"holdout=0.1", "split=test"}).find("countdown.split"), std::string::npos);
  EXPECT_NE(message({"split=holdout"}).find("countdown.holdout"), std::string::npos);
  // A fraction so small that no problem of a tiny setting is held out: a clear error, not a
  // hang. Two numbers, both 1, target 2 only ("1 + 1"): one problem.
  const std::string tiny =
      message({"count=2", "max_number=1", "max_target=2", "holdout=1e-9", "split=holdout"});
  EXPECT_NE(tiny.find("countdown.holdout"), std::string::npos) << tiny;
}

}  // namespace
}  // namespace grpo::data
