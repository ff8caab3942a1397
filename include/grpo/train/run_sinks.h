// The outputs a training run writes every step, opened together from the `logging:` section:
// metrics.jsonl, samples.jsonl, the TensorBoard event file and the console progress line. Only
// rank 0 of a distributed run owns one.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "grpo/core/config/logging.h"
#include "grpo/core/metrics.h"
#include "grpo/core/tensorboard.h"

namespace grpo::train {

class RunSinks {
 public:
  // resume_step: the step of the checkpoint the run resumes from (later records are dropped
  // from the files, see docs/training.md); empty for a fresh run.
  RunSinks(const std::string& run_dir, const config::LoggingConfig& logging, int64_t total_steps,
           std::optional<int64_t> resume_step,
           metrics::ProgressMode progress = metrics::ProgressMode::automatic);

  // metrics.jsonl, the event file (when logging.tensorboard) and the console.
  void write(const metrics::StepMetrics& metrics);
  // The same except the console line: a record that is not a training step (the validation
  // before the first step, step 0).
  void write_record(const metrics::StepMetrics& metrics);
  // samples.jsonl (nothing when logging.samples_per_step is 0).
  void write_samples(const std::vector<metrics::SampleRecord>& samples);
  // Ends the console's in-place line (before the final log messages).
  void finish() { progress_.finish(); }

 private:
  metrics::MetricsJsonlWriter metrics_;
  std::unique_ptr<metrics::SamplesJsonlWriter> samples_;
  std::unique_ptr<tensorboard::EventFileWriter> events_;
  metrics::ConsoleProgress progress_;
};

}  // namespace grpo::train
