// The math_boxed reward's entry points: option names and checks, the top-level comparison
// (normalise, parse, expand \pm, compare under a deadline) and the RewardFunction.
#include "grpo/reward/math_answer.h"

#include "math_value.h"

namespace grpo::reward {

const std::vector<std::pair<AnswerLocation, std::string>>& enum_names(AnswerLocation) {
  static const std::vector<std::pair<AnswerLocation, std::string>> k = {
      {AnswerLocation::boxed, "boxed"},
      {AnswerLocation::answer_tag, "answer_tag"},
      {AnswerLocation::any, "any"}};
  return k;
}

const std::vector<std::pair<PercentPolicy, std::string>>& enum_names(PercentPolicy) {
  static const std::vector<std::pair<PercentPolicy, std::string>> k = {
      {PercentPolicy::either, "either"},
      {PercentPolicy::fraction, "fraction"},
      {PercentPolicy::number, "number"}};
  return k;
}

const std::vector<std::pair<TupleSetPolicy, std::string>>& enum_names(TupleSetPolicy) {
  static const std::vector<std::pair<TupleSetPolicy, std::string>> k = {
      {TupleSetPolicy::strict, "strict"}, {TupleSetPolicy::lenient, "lenient"}};
  return k;
}

namespace {

// A \pm answer stands for the set of its sign choices: 1 \pm \sqrt{2} = {1+sqrt2, 1-sqrt2}.
void expand_pm(math::Parsed& p) {
  if (p.pm_count == 0) return;
  if (p.root.kind != math::Kind::expr && p.root.kind != math::Kind::equation) return;
  math::Value set;
  set.kind = math::Kind::group;
  set.open = '{';
  set.close = '}';
  for (unsigned mask = 0; mask < (1U << p.pm_count); ++mask) {
    math::Value v = p.root;
    v.pm_mask = mask;
    set.items.push_back(v);
  }
  p.root = std::move(set);
}

}  // namespace

bool math_answers_equal(std::string_view gold, std::string_view prediction,
                        const MathOptions& options) {
  if (static_cast<int>(prediction.size()) > options.max_answer_chars) return false;
  // A box inside the answer (\boxed{\boxed{3}}) is markup too.
  auto unbox = [](std::string_view s) {
    if (s.find("\\boxed") == std::string_view::npos && s.find("\\fbox") == std::string_view::npos) {
      return std::string(s);
    }
    auto inner = last_boxed(s);
    return inner ? *inner : std::string(s);
  };
  std::string g = normalize_latex(unbox(gold));
  std::string p = normalize_latex(unbox(prediction));
  if (p.empty() || g.empty()) return false;
  if (g == p) return true;
  math::Parsed gp, pp;
  bool g_ok = math::parse_answer(g, options, gp);
  bool p_ok = math::parse_answer(p, options, pp);
  if (!g_ok || !p_ok || gp.root.kind == math::Kind::text || pp.root.kind == math::Kind::text) {
    // Text answers and anything we cannot parse: letters and digits must agree.
    std::string cg = math::canonical_text(g);
    return !cg.empty() && cg == math::canonical_text(p);
  }
  if (!options.allow_unreduced_fractions && pp.unreduced_fraction) return false;
  expand_pm(gp);
  expand_pm(pp);
  auto budget = std::chrono::duration<double, std::milli>(options.time_limit_ms);
  math::Deadline deadline{std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::steady_clock::duration>(budget)};
  return math::values_equal(gp, pp, options, deadline);
}

MathBoxedReward::MathBoxedReward(MathOptions options) : options_(options) {}

RewardResult MathBoxedReward::score(const Sample& sample) const {
  RewardResult r;
  auto extracted = extract_math_answer(sample.completion, options_);
  // A gold answer may itself be a solution ending in \boxed{...}.
  std::string gold = sample.answer;
  if (gold.find("\\boxed") != std::string::npos || gold.find("\\fbox") != std::string::npos) {
    if (auto boxed = last_boxed(gold)) gold = *boxed;
  }
  bool correct = extracted && math_answers_equal(gold, *extracted, options_);
  r.score = correct ? options_.correct_score : options_.wrong_score;
  r.details["extracted"] = extracted ? nlohmann::json(*extracted) : nlohmann::json(nullptr);
  r.details["correct"] = correct;
  return r;
}

}  // namespace grpo::reward
