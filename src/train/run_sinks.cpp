// Opens the per-step outputs of a run and fans each step's metrics out to them.
#include "grpo/train/run_sinks.h"

#include <filesystem>
#include <iostream>

namespace grpo::train {

namespace fs = std::filesystem;

RunSinks::RunSinks(const std::string& run_dir, const config::LoggingConfig& logging,
                   int64_t total_steps, std::optional<int64_t> resume_step,
                   metrics::ProgressMode progress)
    : metrics_((fs::path(run_dir) / "metrics.jsonl").string(), resume_step),
      progress_(total_steps, progress, std::cerr) {
  if (logging.samples_per_step > 0) {
    samples_ = std::make_unique<metrics::SamplesJsonlWriter>(
        (fs::path(run_dir) / "samples.jsonl").string(), resume_step);
  }
  if (logging.tensorboard) {
    events_ = std::make_unique<tensorboard::EventFileWriter>(run_dir, resume_step);
  }
}

void RunSinks::write(const metrics::StepMetrics& metrics) {
  write_record(metrics);
  progress_.update(metrics);
}

void RunSinks::write_record(const metrics::StepMetrics& metrics) {
  metrics_.write(metrics);
  if (events_) events_->write(metrics);
}

void RunSinks::write_samples(const std::vector<metrics::SampleRecord>& samples) {
  if (samples_) samples_->write(samples);
  if (events_ && !samples.empty()) {
    events_->write_text(samples.front().step, "samples", metrics::samples_markdown(samples));
  }
}

}  // namespace grpo::train
