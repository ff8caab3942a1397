// The countdown verifier: answer extraction, spec parsing and exact checking; see countdown.h.
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "grpo/core/error.h"
#include "grpo/data/countdown.h"
#include "grpo/data/expression.h"

namespace grpo::data {
namespace {

std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\n";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::string join_numbers(const std::vector<int64_t>& v) {
  std::string out;
  for (int64_t x : v) out += (out.empty() ? "" : ", ") + std::to_string(x);
  return out;
}

CountdownVerdict verdict(double score, std::string name, std::string detail) {
  return CountdownVerdict{score, std::move(name), std::move(detail)};
}

}  // namespace

std::string CountdownProblem::spec() const {
  return nlohmann::json{{"numbers", numbers}, {"target", target}}.dump();
}

CountdownProblem CountdownProblem::parse_spec(const std::string& spec, const std::string& where) {
  const std::string at = where.empty() ? "" : where + ": ";
  nlohmann::json j = nlohmann::json::parse(spec, nullptr, false);
  GRPO_CHECK(j.is_object() && j.contains("numbers") && j.contains("target"), at,
             "countdown answer must be {\"numbers\": [...], \"target\": N}, got '", spec, "'");
  const auto& nums = j["numbers"];
  const auto& target = j["target"];
  GRPO_CHECK(nums.is_array() && !nums.empty(), at, "countdown 'numbers' must be a non-empty list");
  CountdownProblem p;
  for (const auto& n : nums) {
    GRPO_CHECK(n.is_number_integer() && n.get<int64_t>() >= 0, at,
               "countdown numbers must be whole numbers >= 0, got ", n.dump());
    p.numbers.push_back(n.get<int64_t>());
  }
  GRPO_CHECK(target.is_number_integer(), at, "countdown 'target' must be an integer, got ",
             target.dump());
  p.target = target.get<int64_t>();
  return p;
}

std::string last_answer_block(std::string_view completion, bool* found) {
  const std::string_view open = "<answer>", close = "</answer>";
  const size_t end = completion.rfind(close);
  size_t begin =
      end == std::string_view::npos ? std::string_view::npos : completion.rfind(open, end);
  *found = begin != std::string_view::npos;
  if (!*found) return {};
  begin += open.size();
  return std::string(trim(completion.substr(begin, end - begin)));
}

CountdownVerdict check_countdown(std::string_view expression, const CountdownProblem& problem,
                                 const CountdownOptions& options) {
  std::string_view text = trim(expression);
  if (text.empty()) return verdict(0.0, "no_answer", "empty answer");
  // "3 * 7 + 1 = 22": the part after '=' must be the target itself.
  const size_t eq = text.find('=');
  if (eq != std::string_view::npos) {
    Evaluation claimed = evaluate(text.substr(eq + 1));
    if (!claimed.ok || claimed.numbers.size() != 1 || claimed.value != Rational{problem.target, 1})
      return verdict(options.format_score, "wrong_value",
                     "the text after '=' is not the target " + std::to_string(problem.target));
    text = text.substr(0, eq);
  }
  Evaluation e = evaluate(text);
  if (e.division_by_zero) return verdict(options.format_score, "division_by_zero", e.error);
  if (!e.ok) return verdict(0.0, "parse_error", e.error);

  std::map<int64_t, int> left;
  for (int64_t n : problem.numbers) ++left[n];
  for (int64_t n : e.numbers) {
    auto it = left.find(n);
    if (it == left.end())
      return verdict(options.format_score, "unknown_number",
                     std::to_string(n) + " is not one of " + join_numbers(problem.numbers));
    if (it->second == 0)
      return verdict(options.format_score, "number_reuse",
                     "uses " + std::to_string(n) + " more often than given");
    --it->second;
  }
  if (options.use_all_numbers) {
    for (const auto& [n, count] : left) {
      if (count > 0)
        return verdict(options.format_score, "unused_number", "does not use " + std::to_string(n));
    }
  }
  if (options.integer_intermediates && !e.integer_intermediates)
    return verdict(options.format_score, "non_integer_intermediate",
                   "a sub-result is not a whole number");
  if (e.value != Rational{problem.target, 1})
    return verdict(options.format_score, "wrong_value",
                   "= " + to_string(e.value) + ", target " + std::to_string(problem.target));
  return verdict(1.0, "correct", "");
}

CountdownVerdict score_countdown(std::string_view completion, const std::string& spec,
                                 const CountdownOptions& options) {
  const CountdownProblem problem = CountdownProblem::parse_spec(spec);
  bool found = false;
  std::string answer = last_answer_block(completion, &found);
  if (!found) {
    if (options.require_answer_tags) return verdict(0.0, "no_answer", "no <answer> block");
    answer = std::string(trim(completion));
  }
  return check_countdown(answer, problem, options);
}

}  // namespace grpo::data
