// The summary of a `grpo eval --suite` run: the average over benchmarks and the log table.
#include "eval_suite.h"

#include <cstdio>
#include <string>

#include "grpo/core/log.h"

namespace grpo::cli {

nlohmann::json suite_average(const nlohmann::json& per_benchmark) {
  nlohmann::json avg = nlohmann::json::object();
  const auto& first = per_benchmark.begin().value();
  for (auto it = first.begin(); it != first.end(); ++it) {
    if (!it.value().is_number() || it.key() == "items" || it.key() == "n" || it.key() == "time_s") {
      continue;
    }
    double sum = 0;
    bool everywhere = true;
    for (const auto& b : per_benchmark) {
      const auto v = b.find(it.key());
      everywhere = everywhere && v != b.end() && v->is_number();
      if (everywhere) sum += v->get<double>();
    }
    if (everywhere) avg[it.key()] = sum / static_cast<double>(per_benchmark.size());
  }
  return avg;
}

void log_suite_table(const nlohmann::json& per_benchmark, const nlohmann::json& average) {
  const auto fmt = [](const nlohmann::json& j, const char* key) {
    const auto v = j.find(key);
    if (v == j.end() || !v->is_number()) return std::string("      -");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%7.4f", v->get<double>());
    return std::string(buf);
  };
  char line[160];
  std::snprintf(line, sizeof line, "%-22s %6s %4s %7s %7s %9s", "benchmark", "items", "n", "pass@1",
                "cons@n", "length");
  log::info(line);
  const auto row = [&](const std::string& name, const nlohmann::json& j, bool counts) {
    const std::string cons = [&] {
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (it.key().rfind("cons@", 0) == 0) return fmt(j, it.key().c_str());
      }
      return std::string("      -");
    }();
    std::snprintf(line, sizeof line, "%-22s %6s %4s %s %s %9.1f", name.c_str(),
                  counts ? std::to_string(j.value("items", 0)).c_str() : "",
                  counts ? std::to_string(j.value("n", 0)).c_str() : "", fmt(j, "pass@1").c_str(),
                  cons.c_str(), j.value("response_length/mean", 0.0));
    log::info(line);
  };
  for (auto it = per_benchmark.begin(); it != per_benchmark.end(); ++it) {
    row(it.key(), it.value(), true);
  }
  row("average", average, false);
}

}  // namespace grpo::cli
