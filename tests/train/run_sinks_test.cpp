// RunSinks: one step's metrics reach metrics.jsonl, the event file and the console; a resumed
// run continues the files without duplicate steps.
#include "grpo/train/run_sinks.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace fs = std::filesystem;

namespace {

std::vector<int64_t> steps_in_jsonl(const fs::path& path) {
  std::ifstream in(path);
  std::vector<int64_t> steps;
  for (std::string line; std::getline(in, line);) {
    steps.push_back(nlohmann::json::parse(line)["step"].get<int64_t>());
  }
  return steps;
}

std::vector<int64_t> steps_in_events(const fs::path& dir) {
  std::vector<int64_t> steps;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().find("tfevents") != std::string::npos) {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());  // same second: the name's counter orders them
  for (const auto& f : files) {
    const auto scan = grpo::tensorboard::read_records(f.string());
    for (size_t i = 1; i < scan.records.size(); ++i) {  // 0: file version
      steps.push_back(grpo::tensorboard::event_step(scan.records[i]));
    }
  }
  return steps;
}

void run_steps(const fs::path& run, int64_t from, int64_t to, std::optional<int64_t> resume) {
  grpo::config::LoggingConfig logging;
  grpo::train::RunSinks sinks(run.string(), logging, 10, resume,
                              grpo::metrics::ProgressMode::never);
  for (int64_t s = from; s <= to; ++s) {
    grpo::metrics::StepMetrics m(s);
    m.set("reward/mean", 0.1 * static_cast<double>(s));
    sinks.write(m);
    grpo::metrics::SampleRecord sample;
    sample.step = s;
    sinks.write_samples({sample});
  }
}

}  // namespace

TEST(RunSinks, FreshThenResumedRunHasEachStepOnce) {
  const fs::path run = fs::temp_directory_path() / ("grpo_sinks_" + std::to_string(getpid()));
  fs::remove_all(run);
  run_steps(run, 1, 5, std::nullopt);
  EXPECT_EQ(steps_in_jsonl(run / "metrics.jsonl"), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  // The run was checkpointed at step 3 and died after step 5; it resumes at 4.
  run_steps(run, 4, 6, int64_t{3});
  const std::vector<int64_t> expected{1, 2, 3, 4, 5, 6};
  EXPECT_EQ(steps_in_jsonl(run / "metrics.jsonl"), expected);
  EXPECT_EQ(steps_in_jsonl(run / "samples.jsonl"), expected);
  // Two events per step: the scalars, then the samples as text (TensorBoard's Text tab).
  EXPECT_EQ(steps_in_events(run), (std::vector<int64_t>{1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6}));
  fs::remove_all(run);
}
