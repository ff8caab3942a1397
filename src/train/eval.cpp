// Benchmark evaluation: loading items, sampling K completions per item, scoring, pass@k and
// cons@k; see grpo/train/eval.h and docs/evaluation.md.
#include "grpo/train/eval.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <utility>

#include "grpo/core/error.h"
#include "grpo/core/jsonl.h"
#include "grpo/core/log.h"
#include "grpo/reward/math_answer.h"

namespace grpo::train {
namespace {

// The pipeline treats a component score >= 1 as correct (as the training `accuracy` does).
constexpr double kCorrectAt = 1.0 - 1e-9;

}  // namespace

double pass_at_k(int64_t n, int64_t c, int64_t k) {
  GRPO_CHECK(n >= 1 && c >= 0 && c <= n && k >= 1 && k <= n, "pass@k needs 0 <= c <= n and ",
             "1 <= k <= n, got n=", n, " c=", c, " k=", k);
  if (n - c < k) return 1.0;  // every k-subset holds a correct sample
  // C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i): no large binomials.
  double all_wrong = 1.0;
  for (int64_t i = n - c + 1; i <= n; ++i) {
    all_wrong *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
  }
  return 1.0 - all_wrong;
}

std::vector<int64_t> pass_ks(int64_t n) {
  std::vector<int64_t> ks;
  for (int64_t k = 1; k < n; k *= 2) ks.push_back(k);
  ks.push_back(std::max<int64_t>(n, 1));
  return ks;
}

EvalFields eval_fields(const config::SuiteBenchmark& benchmark) {
  return {benchmark.prompt_field, benchmark.answer_field, benchmark.tests_field, benchmark.id_field,
          benchmark.tests_from};
}

std::vector<EvalItem> load_eval_items(const std::string& path, const EvalFields& fields,
                                      size_t limit) {
  std::vector<EvalItem> items;
  size_t with_answer = 0;
  jsonl::Reader reader(path);
  for (nlohmann::json o; (limit == 0 || items.size() < limit) && reader.next(o);) {
    const jsonl::Location& where = reader.location();
    EvalItem item;
    item.index = items.size();
    auto p = o.find(fields.prompt);
    if (p == o.end()) {
      std::string keys;
      for (auto it = o.begin(); it != o.end(); ++it) keys += (keys.empty() ? "" : ", ") + it.key();
      GRPO_FAIL(where.str(), ": no prompt field '", fields.prompt, "' (the line has: ", keys,
                "); name it with --prompt-field (grpo eval) or validation.prompt_field");
    }
    GRPO_CHECK(p->is_string() && !p->get<std::string>().empty(), where.str(), ": field '",
               fields.prompt, "' must be a non-empty string");
    item.prompt = p->get<std::string>();
    if (!fields.answer.empty()) {
      auto a = o.find(fields.answer);
      if (a != o.end() && !a->is_null()) {
        try {
          item.answer = gold_answer_text(*a);
        } catch (const Error& e) {
          GRPO_FAIL(where.str(), ": field '", fields.answer, "': ", e.what());
        }
        with_answer += !item.answer.empty();
      }
    }
    if (!fields.tests_from.empty()) {
      item.tests = nlohmann::json::object();
      for (const auto& [key, field] : fields.tests_from) {
        auto t = o.find(field);
        GRPO_CHECK(t != o.end(), where.str(), ": no field '", field, "' for the tests' '", key,
                   "'");
        item.tests[key] = *t;
      }
    } else if (!fields.tests.empty()) {
      auto t = o.find(fields.tests);
      if (t != o.end()) item.tests = *t;
    }
    if (!fields.id.empty()) {
      auto id = o.find(fields.id);
      GRPO_CHECK(id != o.end(), where.str(), ": no id field '", fields.id, "'");
      item.id = *id;
    }
    items.push_back(std::move(item));
  }
  GRPO_CHECK(!items.empty(), path, ": no items (the file is empty)");
  if (!fields.answer.empty() && with_answer == 0) {
    log::warn(path, ": no line has an '", fields.answer,
              "' answer; check --answer-field (math rewards will score 0)");
  }
  return items;
}

EvalSummary::EvalSummary(int64_t n, std::vector<std::string> reward_names, bool has_vote)
    : n_(n), reward_names_(std::move(reward_names)), has_vote_(has_vote) {
  for (int64_t k : pass_ks(n_)) pass_sums_[k] = 0.0;
  component_sums_.assign(reward_names_.size(), 0.0);
}

void EvalSummary::add(const EvalItemResult& item) {
  GRPO_CHECK(static_cast<int64_t>(item.samples.size()) == n_, "an item has ", item.samples.size(),
             " samples, expected ", n_);
  ++items_;
  for (auto& [k, sum] : pass_sums_) sum += pass_at_k(n_, item.correct, k);
  cons_hits_ += item.vote_correct;
  for (const auto& s : item.samples) {
    reward_sum_ += s.score.reward;
    length_sum_ += static_cast<double>(s.tokens);
    truncated_ += s.finish_reason == rollout::FinishReason::length;
    for (size_t f = 0; f < component_sums_.size(); ++f) component_sums_[f] += s.score.components[f];
  }
}

double EvalSummary::pass_at(int64_t k) const {
  auto it = pass_sums_.find(k);
  GRPO_CHECK(it != pass_sums_.end(), "pass@", k, " is not reported for n = ", n_);
  return items_ ? it->second / static_cast<double>(items_) : 0.0;
}

double EvalSummary::cons() const { return items_ ? cons_hits_ / static_cast<double>(items_) : 0.0; }

nlohmann::json EvalSummary::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  j["items"] = items_;
  j["n"] = n_;
  for (const auto& [k, sum] : pass_sums_) j["pass@" + std::to_string(k)] = pass_at(k);
  if (has_vote_) j["cons@" + std::to_string(n_)] = cons();
  const double samples = std::max(1.0, static_cast<double>(items_ * n_));
  j["reward/mean"] = reward_sum_ / samples;
  for (size_t f = 0; f < reward_names_.size(); ++f) {
    j["reward/" + reward_names_[f] + "/mean"] = component_sums_[f] / samples;
  }
  j["response_length/mean"] = length_sum_ / samples;
  j["truncated_fraction"] = truncated_ / samples;
  return j;
}

size_t pass_reward_entry(const reward::RewardPipeline& pipeline, const std::string& pass_reward) {
  const auto& entries = pipeline.entries();
  std::string names;
  for (size_t f = 0; f < entries.size(); ++f) {
    const bool named = pass_reward.empty() ? reward::is_correctness_reward(entries[f].name)
                                           : entries[f].name == pass_reward;
    if (named) return f;
    names += (names.empty() ? "" : ", ") + entries[f].name;
  }
  GRPO_CHECK_KIND(usage, false,
                  pass_reward.empty()
                      ? "no correctness reward (math_boxed, countdown or code_tests) among: "
                      : "the pass reward '" + pass_reward + "' is not among: ",
                  names);
  return 0;  // not reached
}

std::vector<double> EvalSummary::sums() const {
  std::vector<double> out{static_cast<double>(items_), cons_hits_, reward_sum_, length_sum_,
                          truncated_};
  for (const auto& [k, sum] : pass_sums_) out.push_back(sum);
  out.insert(out.end(), component_sums_.begin(), component_sums_.end());
  return out;
}

void EvalSummary::set_sums(const std::vector<double>& sums) {
  GRPO_CHECK(sums.size() == 5 + pass_sums_.size() + component_sums_.size(), "set_sums: got ",
             sums.size(), " values for ", pass_sums_.size(), " pass@k and ", component_sums_.size(),
             " rewards");
  items_ = static_cast<int64_t>(std::llround(sums[0]));
  cons_hits_ = sums[1];
  reward_sum_ = sums[2];
  length_sum_ = sums[3];
  truncated_ = sums[4];
  size_t i = 5;
  for (auto& [k, sum] : pass_sums_) sum = sums[i++];
  for (auto& c : component_sums_) c = sums[i++];
}

Evaluator::Evaluator(model::CausalLM model, const text::Tokenizer& tokenizer,
                     const text::PromptTemplate& prompt_template,
                     const reward::RewardPipeline& pipeline, EvalOptions options)
    : model_(std::move(model)),
      tokenizer_(tokenizer),
      template_(prompt_template),
      pipeline_(pipeline),
      options_(std::move(options)) {
  GRPO_CHECK_KIND(usage, options_.n >= 1, "the samples per item (n) must be >= 1, got ",
                  options_.n);
  GRPO_CHECK_KIND(usage, options_.items_per_batch >= 1, "items per batch must be >= 1, got ",
                  options_.items_per_batch);
  pass_entry_ = pass_reward_entry(pipeline_, options_.pass_reward);
  const auto& entries = pipeline_.entries();
  for (size_t f = 0; f < entries.size() && !math_entry_; ++f) {
    if (dynamic_cast<const reward::MathBoxedReward*>(entries[f].function.get())) math_entry_ = f;
  }
}

EvalItemResult Evaluator::score_item(std::vector<EvalSample> samples) const {
  EvalItemResult r;
  r.samples = std::move(samples);
  std::vector<std::optional<std::string>> answers;
  for (auto& s : r.samples) {
    s.correct = s.score.components[pass_entry_] >= kCorrectAt;
    r.correct += s.correct;
    if (math_entry_) {
      const auto& d = s.score.details[*math_entry_];
      auto e = d.find("extracted");
      if (e != d.end() && e->is_string()) s.extracted = e->get<std::string>();
    }
    answers.push_back(s.extracted);
  }
  if (math_entry_) {
    const auto* math = dynamic_cast<const reward::MathBoxedReward*>(
        pipeline_.entries()[*math_entry_].function.get());
    r.vote = reward::majority_vote(answers, math->options());
    if (r.vote.winner >= 0) {
      r.vote_correct =
          r.samples[static_cast<size_t>(r.vote.winner)].score.components[*math_entry_] >=
          kCorrectAt;
    }
  }
  return r;
}

EvalSummary Evaluator::new_summary() const {
  std::vector<std::string> names;
  for (const auto& e : pipeline_.entries()) names.push_back(e.name);
  return EvalSummary(options_.n, names, has_vote());
}

EvalSummary Evaluator::run(
    const std::vector<EvalItem>& items,
    const std::function<void(const EvalItem&, const EvalItemResult&)>& on_item) {
  EvalSummary summary = new_summary();
  rollout::RolloutEngine engine(model_, &tokenizer_, options_.engine);
  const auto start = std::chrono::steady_clock::now();
  int64_t tokens = 0;
  const size_t per = static_cast<size_t>(options_.items_per_batch);
  for (size_t begin = 0; begin < items.size(); begin += per) {
    const size_t end = std::min(items.size(), begin + per);
    std::vector<std::vector<int32_t>> prompts;
    std::vector<std::string> rendered;
    for (size_t i = begin; i < end; ++i) {
      rendered.push_back(template_.render(items[i].prompt));
      prompts.push_back(tokenizer_.encode(rendered.back()));
    }
    rollout::SamplingParams params = options_.sampling;
    // Item i draws the same numbers whatever the batching.
    params.first_prompt_index = options_.sampling.first_prompt_index + static_cast<int64_t>(begin);
    const auto rollouts = engine.generate(prompts, options_.n, params);

    std::vector<reward::Sample> samples;
    samples.reserve(rollouts.size());
    for (const auto& ro : rollouts) {
      const EvalItem& item = items[begin + static_cast<size_t>(ro.prompt_index)];
      samples.push_back(reward::Sample{rendered[static_cast<size_t>(ro.prompt_index)], ro.text,
                                       item.answer, item.tests});
    }
    auto scores = pipeline_.score(samples);
    for (size_t i = begin; i < end; ++i) {
      std::vector<EvalSample> group;
      for (int64_t g = 0; g < options_.n; ++g) {
        const size_t at = (i - begin) * static_cast<size_t>(options_.n) + static_cast<size_t>(g);
        const auto& ro = rollouts[at];
        tokens += static_cast<int64_t>(ro.completion_ids.size());
        group.push_back(EvalSample{ro.text, ro.finish_reason,
                                   static_cast<int64_t>(ro.completion_ids.size()),
                                   std::move(scores[at]), false, std::nullopt});
      }
      EvalItemResult result = score_item(std::move(group));
      summary.add(result);
      if (on_item) on_item(items[i], result);
    }
    if (!options_.log_progress) continue;
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    log::info("eval: ", end, "/", items.size(), " items, pass@1 ", summary.pass_at(1), ", ",
              static_cast<int64_t>(static_cast<double>(tokens) / std::max(s, 1e-9)), " tokens/s");
  }
  return summary;
}

std::vector<size_t> kept_samples(const EvalItemResult& result, const KeepRule& rule) {
  std::vector<size_t> kept;
  std::set<std::string> seen;
  for (size_t g = 0; g < result.samples.size(); ++g) {
    if (rule.max_per_item > 0 && static_cast<int64_t>(kept.size()) >= rule.max_per_item) break;
    const EvalSample& s = result.samples[g];
    if (!s.correct || s.finish_reason == rollout::FinishReason::length) continue;
    bool ok = true;
    for (size_t e : rule.required) {
      GRPO_CHECK(e < s.score.components.size(), "keep rule names reward entry ", e, " of ",
                 s.score.components.size());
      ok = ok && s.score.components[e] >= kCorrectAt;
    }
    if (ok && seen.insert(s.completion).second) kept.push_back(g);
  }
  return kept;
}

nlohmann::json Evaluator::item_json(const EvalItem& item, const EvalItemResult& result) const {
  nlohmann::json j = nlohmann::json::object();
  j["index"] = item.index;
  if (!item.id.is_null()) j["id"] = item.id;
  j["prompt"] = item.prompt;
  j["answer"] = item.answer;
  j["n"] = options_.n;
  j["correct"] = result.correct;
  j["pass@1"] = static_cast<double>(result.correct) / static_cast<double>(options_.n);
  if (has_vote()) {
    nlohmann::json cons = {{"answer", nullptr},
                           {"votes", result.vote.votes},
                           {"groups", result.vote.groups},
                           {"correct", result.vote_correct}};
    if (result.vote.winner >= 0) {
      cons["answer"] = *result.samples[static_cast<size_t>(result.vote.winner)].extracted;
      cons["sample"] = result.vote.winner;
    }
    j["cons"] = std::move(cons);
  }
  const auto& entries = pipeline_.entries();
  nlohmann::json samples = nlohmann::json::array();
  for (const auto& s : result.samples) {
    nlohmann::json rewards = nlohmann::json::object();
    for (size_t f = 0; f < entries.size(); ++f) rewards[entries[f].name] = s.score.components[f];
    nlohmann::json one = {{"completion", s.completion},
                          {"finish_reason", rollout::finish_reason_name(s.finish_reason)},
                          {"completion_tokens", s.tokens},
                          {"reward", s.score.reward},
                          {"rewards", std::move(rewards)},
                          {"correct", s.correct}};
    if (has_vote())
      one["extracted"] = s.extracted ? nlohmann::json(*s.extracted) : nlohmann::json(nullptr);
    samples.push_back(std::move(one));
  }
  j["samples"] = std::move(samples);
  return j;
}

}  // namespace grpo::train
