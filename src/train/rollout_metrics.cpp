// Step metrics computed from rollouts and their reward scores.
#include "grpo/train/rollout_metrics.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace grpo::train {
namespace {

// A component score that counts as a hit (accuracy, format rate).
constexpr double kHitAt = 1.0 - 1e-9;

bool is_word_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-';
}

std::string lower(const std::string& s) {
  std::string out = s;
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

double stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  double m = mean(v), s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}

}  // namespace

int count_reflection_words(const std::string& text, const std::vector<std::string>& words) {
  const std::string hay = lower(text);
  int count = 0;
  for (const auto& w : words) {
    const std::string needle = lower(w);
    if (needle.empty()) continue;
    for (size_t pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1)) {
      const bool start_ok = pos == 0 || !is_word_char(hay[pos - 1]);
      const size_t end = pos + needle.size();
      const bool end_ok = end == hay.size() || !is_word_char(hay[end]);
      if (start_ok && end_ok) ++count;
    }
  }
  return count;
}

void add_rollout_metrics(metrics::StepMetrics& metrics,
                         const std::vector<rollout::Rollout>& rollouts,
                         const std::vector<reward::ScoredSample>& scores,
                         const reward::RewardPipeline& pipeline,
                         const std::vector<std::string>& reflection_words) {
  std::vector<double> totals, lengths;
  std::vector<int> words_of;
  double truncated = 0, reflections = 0, with_reflection = 0;
  for (size_t i = 0; i < rollouts.size(); ++i) {
    totals.push_back(scores[i].reward);
    lengths.push_back(static_cast<double>(rollouts[i].completion_ids.size()));
    truncated += rollouts[i].finish_reason == rollout::FinishReason::length;
    int words = count_reflection_words(rollouts[i].text, reflection_words);
    words_of.push_back(words);
    reflections += words;
    with_reflection += words > 0;
  }
  const double n = static_cast<double>(std::max<size_t>(rollouts.size(), 1));
  metrics.set("reward/mean", mean(totals));
  metrics.set("reward/std", stddev(totals));
  const auto& entries = pipeline.entries();
  bool have_accuracy = false, have_format = false;
  for (size_t f = 0; f < entries.size(); ++f) {
    std::vector<double> component;
    double hits = 0;
    for (const auto& s : scores) {
      component.push_back(s.components[f]);
      hits += s.components[f] >= kHitAt;
    }
    metrics.set("reward/" + entries[f].name + "/mean", mean(component));
    if (!have_accuracy && reward::is_correctness_reward(entries[f].name)) {
      metrics.set("accuracy", hits / n);
      have_accuracy = true;
      // Lengths of correct and wrong completions apart (Dr. GRPO's plot: a length-normalised
      // loss lets wrong ones grow), and accuracy with and without reflection words (the "aha"
      // question: does reflecting pay?). A split with no completion is left out.
      std::vector<double> correct_len, wrong_len, with_hits, without_hits;
      for (size_t i = 0; i < rollouts.size(); ++i) {
        const bool right = scores[i].components[f] >= kHitAt;
        (right ? correct_len : wrong_len).push_back(lengths[i]);
        (words_of[i] > 0 ? with_hits : without_hits).push_back(right ? 1.0 : 0.0);
      }
      if (!correct_len.empty()) metrics.set("response_length/correct_mean", mean(correct_len));
      if (!wrong_len.empty()) metrics.set("response_length/incorrect_mean", mean(wrong_len));
      if (!with_hits.empty()) metrics.set("reflection/accuracy_with", mean(with_hits));
      if (!without_hits.empty()) metrics.set("reflection/accuracy_without", mean(without_hits));
    }
    if (!have_format && entries[f].name == "format_think_answer") {
      metrics.set("format_rate", hits / n);
      have_format = true;
    }
  }
  metrics.set("response_length/mean", mean(lengths));
  metrics.set("response_length/max",
              lengths.empty() ? 0.0 : *std::max_element(lengths.begin(), lengths.end()));
  metrics.set("response_length/truncated_fraction", truncated / n);
  metrics.set("reflection/per_completion", reflections / n);
  metrics.set("reflection/fraction", with_reflection / n);
}

}  // namespace grpo::train
