// `grpo eval --suite`: what the summary of several benchmarks adds to their own figures, their
// equal-weight average and the table printed to the log (docs/evaluation.md, "Suites").
#pragma once

#include <nlohmann/json.hpp>

namespace grpo::cli {

// The figures every benchmark has, averaged with equal weight per benchmark (as papers report a
// suite's average); `per_benchmark` maps a name to grpo eval's figures for it.
nlohmann::json suite_average(const nlohmann::json& per_benchmark);

// One log line per benchmark (items, n, pass@1, cons@n, mean length) and one for the average.
void log_suite_table(const nlohmann::json& per_benchmark, const nlohmann::json& average);

}  // namespace grpo::cli
