// Majority vote over extracted answers; see answer_vote.h for the grouping and tie rule.
#include "grpo/reward/answer_vote.h"

namespace grpo::reward {

VoteResult majority_vote(const std::vector<std::optional<std::string>>& answers,
                         const MathOptions& options) {
  struct Group {
    int first;
    std::string normalized;
    int votes;
  };
  std::vector<Group> groups;
  VoteResult result;
  for (size_t i = 0; i < answers.size(); ++i) {
    if (!answers[i]) continue;
    const std::string& answer = *answers[i];
    std::string normalized = normalize_latex(answer);
    if (normalized.empty()) continue;  // `\boxed{}`: nothing to vote for
    ++result.answered;
    bool placed = false;
    for (auto& g : groups) {
      if (g.normalized == normalized ||
          math_answers_equal(*answers[static_cast<size_t>(g.first)], answer, options)) {
        ++g.votes;
        placed = true;
        break;
      }
    }
    if (!placed) groups.push_back(Group{static_cast<int>(i), std::move(normalized), 1});
  }
  for (const auto& g : groups) {  // strictly more votes: the earliest group keeps a tie
    if (g.votes > result.votes) {
      result.votes = g.votes;
      result.winner = g.first;
    }
  }
  result.groups = static_cast<int>(groups.size());
  return result;
}

}  // namespace grpo::reward
