// The reward registry (name -> typed options -> RewardFunction) and the weighted pipeline.
#include "grpo/reward/pipeline.h"

#include <algorithm>
#include <functional>
#include <thread>

#include "grpo/core/error.h"
#include "grpo/reward/code_tests.h"
#include "grpo/reward/countdown_reward.h"
#include "grpo/reward/external_reward.h"
#include "grpo/reward/format_rewards.h"
#include "grpo/reward/math_answer.h"

namespace grpo::reward {
namespace {

template <class Options, class Function>
std::unique_ptr<RewardFunction> build(const config::Node& node, const std::string& path) {
  Options options;
  config::bind(node, options, path);
  return std::make_unique<Function>(std::move(options));
}

using Factory = std::unique_ptr<RewardFunction> (*)(const config::Node&, const std::string&);

struct Registered {
  const char* name;
  Factory make;
};

// One line per reward function; docs/rewards.md documents each one's options.
const std::vector<Registered>& registry() {
  static const std::vector<Registered> k = {
      {"math_boxed", &build<MathOptions, MathBoxedReward>},
      {"format_think_answer", &build<FormatOptions, FormatThinkAnswer>},
      {"language_consistency", &build<LanguageOptions, LanguageConsistency>},
      {"external", &build<ExternalOptions, ExternalReward>},
      {"code_tests", &build<CodeTestsOptions, CodeTests>},
      {"countdown", &build<data::CountdownOptions, CountdownReward>},
  };
  return k;
}

// Runs fn(begin, end) over [0, n) split into contiguous chunks on up to `threads` threads.
void parallel_chunks(size_t n, int threads, const std::function<void(size_t, size_t)>& fn) {
  size_t t = std::min(n, static_cast<size_t>(std::max(1, threads)));
  if (t <= 1) {
    fn(0, n);
    return;
  }
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(t);
  size_t chunk = (n + t - 1) / t;
  for (size_t i = 0; i < t; ++i) {
    size_t begin = i * chunk, end = std::min(n, begin + chunk);
    if (begin >= end) break;
    pool.emplace_back([&, i, begin, end] {
      try {
        fn(begin, end);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    });
  }
  for (auto& th : pool) th.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

}  // namespace

bool is_correctness_reward(const std::string& name) {
  return name == "math_boxed" || name == "countdown" || name == "code_tests";
}

const std::vector<std::string>& reward_names() {
  static const std::vector<std::string> k = [] {
    std::vector<std::string> names;
    for (const auto& r : registry()) names.emplace_back(r.name);
    return names;
  }();
  return k;
}

std::unique_ptr<RewardFunction> make_reward(const std::string& name, const config::Node& options,
                                            const std::string& path) {
  for (const auto& r : registry()) {
    if (name == r.name) return r.make(options, path);
  }
  std::string known;
  for (const auto& n : reward_names()) known += (known.empty() ? "" : ", ") + n;
  std::string hint = config::suggest(name, reward_names());
  throw Error("unknown reward function '" + name + "' at " + path + "; known: " + known +
                  (hint.empty() ? "" : " (did you mean '" + hint + "'?)"),
              ErrorKind::config);
}

static std::vector<RewardPipeline::Entry> entries_from(const config::RewardConfig& config) {
  std::vector<RewardPipeline::Entry> entries;
  for (size_t i = 0; i < config.functions.size(); ++i) {
    const auto& f = config.functions[i];
    std::string path = "reward.functions[" + std::to_string(i) + "]";
    RewardPipeline::Entry e;
    e.name = f.name;
    e.weight = f.weight;
    e.function = make_reward(f.name, f.options, path + ".options");
    entries.push_back(std::move(e));
  }
  return entries;
}

RewardPipeline::RewardPipeline(const config::RewardConfig& config, int threads)
    : RewardPipeline(entries_from(config), threads) {}

RewardPipeline::RewardPipeline(std::vector<Entry> entries, int threads)
    : entries_(std::move(entries)), threads_(threads) {
  GRPO_CHECK_KIND(config, !entries_.empty(),
                  "reward.functions is empty: name at least one reward function (",
                  reward_names().front(), ", ...)");
  if (threads_ <= 0) threads_ = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Output keys must be unique: a second `external` becomes `external_2`.
  for (size_t i = 0; i < entries_.size(); ++i) {
    int copies = 1;
    for (size_t j = 0; j < i; ++j) {
      if (entries_[j].function->name() == entries_[i].function->name()) ++copies;
    }
    if (copies > 1) entries_[i].name += "_" + std::to_string(copies);
  }
}

std::vector<ScoredSample> RewardPipeline::score(const std::vector<Sample>& samples) const {
  std::vector<ScoredSample> out(samples.size());
  for (auto& s : out) {
    s.components.assign(entries_.size(), 0.0);
    s.details.assign(entries_.size(), nlohmann::json::object());
  }
  for (size_t f = 0; f < entries_.size(); ++f) {
    const RewardFunction& fn = *entries_[f].function;
    // Each chunk goes through score_batch, so functions with their own pool (code_tests) or
    // one process per batch (external) see batches, not single samples.
    parallel_chunks(samples.size(), threads_, [&](size_t begin, size_t end) {
      std::vector<Sample> chunk(samples.begin() + static_cast<std::ptrdiff_t>(begin),
                                samples.begin() + static_cast<std::ptrdiff_t>(end));
      std::vector<RewardResult> results = fn.score_batch(chunk);
      GRPO_CHECK(results.size() == chunk.size(), "reward '", entries_[f].name, "' returned ",
                 results.size(), " results for ", chunk.size(), " samples");
      for (size_t k = 0; k < results.size(); ++k) {
        out[begin + k].components[f] = results[k].score;
        out[begin + k].details[f] = std::move(results[k].details);
      }
    });
  }
  for (auto& s : out) {
    for (size_t f = 0; f < entries_.size(); ++f) s.reward += entries_[f].weight * s.components[f];
  }
  return out;
}

}  // namespace grpo::reward
