// Majority vote (cons@k) over extracted answers: grouping by the math checker's equality, the
// tie rule (earliest first appearance, as Python's Counter.most_common), and non-votes.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "grpo/reward/answer_vote.h"

namespace gr = grpo::reward;
using Answers = std::vector<std::optional<std::string>>;

TEST(MajorityVote, EqualValuesShareAGroup) {
  // {2, 4/2} has two votes, {3, 3.0, 3} three; the missing answer does not vote.
  const Answers a = {"2", "\\frac{4}{2}", "3", std::nullopt, "3.0", "3"};
  const auto v = gr::majority_vote(a, gr::MathOptions{});
  EXPECT_EQ(v.winner, 2);
  EXPECT_EQ(v.votes, 3);
  EXPECT_EQ(v.groups, 2);
  EXPECT_EQ(v.answered, 5);
}

TEST(MajorityVote, NormalisedSpellingsAreOneAnswer) {
  const Answers a = {"\\frac{1}{2}", "0.5", "\\dfrac12", "1/3", "\\frac{1}{3}", "(1,2)"};
  const auto v = gr::majority_vote(a, gr::MathOptions{});
  EXPECT_EQ(v.winner, 0);
  EXPECT_EQ(v.votes, 3);
  EXPECT_EQ(v.groups, 3);
}

TEST(MajorityVote, TieGoesToTheEarliestFirstAppearance) {
  EXPECT_EQ(gr::majority_vote(Answers{"5", "7", "7", "5"}, gr::MathOptions{}).winner, 0);
  EXPECT_EQ(gr::majority_vote(Answers{"7", "5", "5", "7"}, gr::MathOptions{}).winner, 0);
  // A later group that overtakes wins; one that only draws level does not.
  EXPECT_EQ(gr::majority_vote(Answers{"1", "2", "2", "1", "2"}, gr::MathOptions{}).winner, 1);
  EXPECT_EQ(gr::majority_vote(Answers{std::nullopt, "9", "8", "8", "9"}, gr::MathOptions{}).winner,
            1);
}

TEST(MajorityVote, NoAnswersNoWinner) {
  const auto v =
      gr::majority_vote(Answers{std::nullopt, "", "  ", std::nullopt}, gr::MathOptions{});
  EXPECT_EQ(v.winner, -1);
  EXPECT_EQ(v.votes, 0);
  EXPECT_EQ(v.groups, 0);
  EXPECT_EQ(v.answered, 0);
  EXPECT_EQ(gr::majority_vote(Answers{}, gr::MathOptions{}).winner, -1);
}

TEST(MajorityVote, OptionsDecideEquality) {
  // With tuple_vs_set lenient, (1,2) and \{2,1\} are one answer; strict keeps them apart and
  // the tie goes to the first.
  const Answers a = {"\\{2,1\\}", "(1,2)", "(1,2)"};
  gr::MathOptions lenient;
  lenient.tuple_vs_set = gr::TupleSetPolicy::lenient;
  EXPECT_EQ(gr::majority_vote(a, lenient).votes, 3);
  const auto strict = gr::majority_vote(a, gr::MathOptions{});
  EXPECT_EQ(strict.winner, 1);
  EXPECT_EQ(strict.votes, 2);
}
