// Task names, the JSON form of an item, and generation of n items with presets + overrides.
#include "grpo/data/tasks.h"

#include "grpo/data/countdown.h"

namespace grpo::data {

const std::vector<std::pair<TaskKind, std::string>>& enum_names(TaskKind) {
  static const std::vector<std::pair<TaskKind, std::string>> k = {
      {TaskKind::countdown, "countdown"},
      {TaskKind::arithmetic, "arithmetic"},
      {TaskKind::equation, "equation"}};
  return k;
}

const std::vector<std::pair<Difficulty, std::string>>& enum_names(Difficulty) {
  static const std::vector<std::pair<Difficulty, std::string>> k = {
      {Difficulty::easy, "easy"}, {Difficulty::medium, "medium"}, {Difficulty::hard, "hard"}};
  return k;
}

nlohmann::json TaskItem::to_json(bool with_response) const {
  nlohmann::json j = extra;
  j["prompt"] = prompt;
  j["answer"] = answer;
  j["task"] = task;
  if (with_response) j["response"] = response;
  return j;
}

namespace {

template <class Options, class Make>
std::vector<TaskItem> generate(Options options, const config::Node& overrides,
                               const std::string& path, size_t n, uint64_t seed, Make make) {
  config::bind(overrides, options, path);
  std::vector<TaskItem> items;
  items.reserve(n);
  for (size_t i = 0; i < n; ++i) items.push_back(make(options, seed, i));
  return items;
}

}  // namespace

std::vector<TaskItem> generate_task(TaskKind task, Difficulty difficulty,
                                    const config::Node& overrides, size_t n, uint64_t seed) {
  switch (task) {
    case TaskKind::countdown:
      return generate(countdown_preset(difficulty), overrides, "countdown", n, seed,
                      make_countdown);
    case TaskKind::arithmetic:
      return generate(arithmetic_preset(difficulty), overrides, "arithmetic", n, seed,
                      make_arithmetic);
    case TaskKind::equation:
      return generate(equation_preset(difficulty), overrides, "equation", n, seed, make_equation);
  }
  return {};
}

}  // namespace grpo::data
