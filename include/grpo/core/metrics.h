// Per-step training metrics and their text sinks: metrics.jsonl, samples.jsonl and the console
// progress line. The TensorBoard sink is in tensorboard.h. Metric names and their meaning are
// listed in docs/training.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <fstream>
#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace grpo::metrics {

// The scalars of one training step, in the order they were first set (the order of the JSON
// keys and of the console line).
class StepMetrics {
 public:
  explicit StepMetrics(int64_t step = 0) : step_(step) {}

  int64_t step() const { return step_; }
  void set(const std::string& name, double value);
  // Adds to the value (0 when absent): phase times summed over the minibatches of a step.
  void add(const std::string& name, double value);
  std::optional<double> get(const std::string& name) const;
  const std::vector<std::pair<std::string, double>>& values() const { return values_; }

 private:
  int64_t step_;
  std::vector<std::pair<std::string, double>> values_;
};

// Adds the seconds between construction and destruction to "time/<phase>". On CUDA the caller
// synchronises before the phase ends, or the time measured is the launch time.
class PhaseTimer {
 public:
  PhaseTimer(StepMetrics& metrics, const std::string& phase);
  ~PhaseTimer();
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

 private:
  StepMetrics& metrics_;
  std::string name_;
  std::chrono::steady_clock::time_point start_;
};

// A JSONL file with one object per line, each carrying an integer "step". A fresh run
// (resume_step empty) starts the file empty; a resumed run keeps the lines with
// step <= *resume_step and drops the rest (steps the crashed run did after its checkpoint, and a
// torn last line), so the file never holds a step twice. Every line is flushed when written.
class StepJsonlWriter {
 public:
  StepJsonlWriter(const std::string& path, std::optional<int64_t> resume_step);
  // `json_object` is one serialised JSON object without a newline.
  void write_line(const std::string& json_object);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

// metrics.jsonl: {"step": N, "<name>": value, ...}; non-finite values are written as null.
class MetricsJsonlWriter {
 public:
  MetricsJsonlWriter(const std::string& path, std::optional<int64_t> resume_step)
      : file_(path, resume_step) {}
  void write(const StepMetrics& metrics);

 private:
  StepJsonlWriter file_;
};

// One completion written to samples.jsonl.
struct SampleRecord {
  int64_t step = 0;
  int64_t prompt_index = 0;  // index of the prompt within the step's batch
  int64_t sample_index = 0;  // index within the prompt's group of G
  std::string prompt;
  std::string completion;
  double reward = 0.0;
  std::vector<std::pair<std::string, double>> reward_parts;  // per reward function
  double advantage = 0.0;
  int64_t completion_tokens = 0;
  std::string finish_reason;  // "stop", "length", ...
};

// A step's samples as markdown for TensorBoard's Text tab: per completion a heading (prompt and
// sample index), the reward with its parts, the advantage, the length and finish reason, then the
// prompt (the first time its index appears) and the completion as indented code blocks, so no
// text of theirs is read as markdown.
std::string samples_markdown(const std::vector<SampleRecord>& samples);

// samples.jsonl: one object per completion, with the fields of SampleRecord.
class SamplesJsonlWriter {
 public:
  SamplesJsonlWriter(const std::string& path, std::optional<int64_t> resume_step)
      : file_(path, resume_step) {}
  void write(const std::vector<SampleRecord>& samples);

 private:
  StepJsonlWriter file_;
};

// "1h02m03s", "4m05s", "7s".
std::string format_duration(double seconds);

// The console progress line, e.g.
//   step 12/100 [#####...............] 12% | reward/mean 0.412 | 3.21 s/step | ETA 4m42s
// `steps_done` and `elapsed_s` count only this process's steps (a resumed run's ETA uses its own
// pace). `keys` selects the metrics shown (absent ones are skipped).
std::string progress_line(const StepMetrics& metrics, int64_t total_steps, int64_t steps_done,
                          double elapsed_s, const std::vector<std::string>& keys);

enum class ProgressMode { automatic, always, never };

// Prints progress_line() to a stream: in automatic mode only when stderr is a terminal
// (rewriting one line with '\r'); `always` prints one line per step on any stream (logs, tests).
class ConsoleProgress {
 public:
  ConsoleProgress(int64_t total_steps, ProgressMode mode, std::ostream& out,
                  std::vector<std::string> keys = default_keys());
  ~ConsoleProgress();
  void update(const StepMetrics& metrics);
  // Ends the rewritten line so later log output starts on a fresh line.
  void finish();
  static std::vector<std::string> default_keys();

 private:
  int64_t total_steps_;
  bool enabled_;
  bool rewrite_;  // terminal: '\r' in place; otherwise one line per step
  bool line_open_ = false;
  std::ostream& out_;
  std::vector<std::string> keys_;
  int64_t steps_done_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace grpo::metrics
