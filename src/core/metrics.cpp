// Step metrics, the JSONL sinks (with resume truncation) and the console progress line.
#include "grpo/core/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "grpo/core/error.h"
#include "grpo/core/safetensors.h"

namespace grpo::metrics {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

void StepMetrics::set(const std::string& name, double value) {
  for (auto& [key, v] : values_) {
    if (key == name) {
      v = value;
      return;
    }
  }
  values_.emplace_back(name, value);
}

void StepMetrics::add(const std::string& name, double value) {
  for (auto& [key, v] : values_) {
    if (key == name) {
      v += value;
      return;
    }
  }
  values_.emplace_back(name, value);
}

std::optional<double> StepMetrics::get(const std::string& name) const {
  for (const auto& [key, v] : values_) {
    if (key == name) return v;
  }
  return std::nullopt;
}

PhaseTimer::PhaseTimer(StepMetrics& metrics, const std::string& phase)
    : metrics_(metrics), name_("time/" + phase), start_(std::chrono::steady_clock::now()) {}

PhaseTimer::~PhaseTimer() {
  const std::chrono::duration<double> d = std::chrono::steady_clock::now() - start_;
  metrics_.add(name_, d.count());
}

namespace {

// Keeps the complete lines of `path` whose "step" is <= max_step. A torn last line (no newline:
// the process died mid-write) is dropped; a malformed complete line is an error, since it means
// the file is not ours or was edited.
std::string kept_prefix(const std::string& path, int64_t max_step) {
  std::ifstream in(path, std::ios::binary);
  GRPO_CHECK(in, "cannot read ", path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::string kept;
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    if (end == std::string::npos) break;  // torn last line
    ++line_no;
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty()) continue;
    ojson j = ojson::parse(line, nullptr, /*allow_exceptions=*/false);
    GRPO_CHECK(j.is_object() && j.contains("step") && j["step"].is_number_integer(), path, ":",
               line_no, ": expected a JSON object with an integer \"step\"; cannot resume into it");
    if (j["step"].get<int64_t>() <= max_step) kept += line + "\n";
  }
  return kept;
}

// JSON has no NaN/Inf: they become null, so a reader sees "missing" rather than a parse error.
ojson number(double v) { return std::isfinite(v) ? ojson(v) : ojson(nullptr); }

}  // namespace

StepJsonlWriter::StepJsonlWriter(const std::string& path, std::optional<int64_t> resume_step)
    : path_(path) {
  const fs::path p(path);
  if (p.has_parent_path()) fs::create_directories(p.parent_path());
  if (resume_step && fs::exists(p)) {
    safetensors::write_text_atomic(path, kept_prefix(path, *resume_step));
    out_.open(path, std::ios::binary | std::ios::app);
  } else {
    out_.open(path, std::ios::binary | std::ios::trunc);
  }
  GRPO_CHECK(out_, "cannot open ", path, " for writing");
}

void StepJsonlWriter::write_line(const std::string& json_object) {
  out_ << json_object << '\n';
  out_.flush();
  GRPO_CHECK(out_, "write to ", path_, " failed");
}

void MetricsJsonlWriter::write(const StepMetrics& metrics) {
  ojson j;
  j["step"] = metrics.step();
  for (const auto& [name, value] : metrics.values()) j[name] = number(value);
  file_.write_line(j.dump(-1, ' ', false, ojson::error_handler_t::replace));
}

namespace {

std::string indented(const std::string& text) {
  std::string out = "    ";
  for (char c : text) {
    out += c;
    if (c == '\n') out += "    ";
  }
  return out + "\n";
}

std::string short_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

}  // namespace

std::string samples_markdown(const std::vector<SampleRecord>& samples) {
  std::string out;
  std::vector<int64_t> shown;
  for (const auto& s : samples) {
    out += "### prompt " + std::to_string(s.prompt_index) + ", sample " +
           std::to_string(s.sample_index) + "\n\nreward " + short_number(s.reward);
    if (!s.reward_parts.empty()) {
      out += " (";
      for (size_t i = 0; i < s.reward_parts.size(); ++i) {
        out += (i ? ", " : "") + s.reward_parts[i].first + " " +
               short_number(s.reward_parts[i].second);
      }
      out += ")";
    }
    out += ", advantage " + short_number(s.advantage) + ", " + std::to_string(s.completion_tokens) +
           " tokens, " + s.finish_reason + "\n\n";
    if (std::find(shown.begin(), shown.end(), s.prompt_index) == shown.end()) {
      shown.push_back(s.prompt_index);
      out += "prompt:\n\n" + indented(s.prompt) + "\n";
    }
    out += "completion:\n\n" + indented(s.completion) + "\n";
  }
  return out;
}

void SamplesJsonlWriter::write(const std::vector<SampleRecord>& samples) {
  for (const auto& s : samples) {
    ojson parts = ojson::object();
    for (const auto& [name, value] : s.reward_parts) parts[name] = number(value);
    ojson j;
    j["step"] = s.step;
    j["prompt_index"] = s.prompt_index;
    j["sample_index"] = s.sample_index;
    j["reward"] = number(s.reward);
    j["reward_parts"] = parts;
    j["advantage"] = number(s.advantage);
    j["completion_tokens"] = s.completion_tokens;
    j["finish_reason"] = s.finish_reason;
    j["prompt"] = s.prompt;
    j["completion"] = s.completion;
    // Model output may contain invalid UTF-8 (a multi-byte character cut by max_tokens).
    file_.write_line(j.dump(-1, ' ', false, ojson::error_handler_t::replace));
  }
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto total = static_cast<int64_t>(std::llround(seconds));
  const int64_t h = total / 3600, m = (total / 60) % 60, s = total % 60;
  char buf[64];
  if (h > 0) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm%02llds", static_cast<long long>(h),
                  static_cast<long long>(m), static_cast<long long>(s));
  } else if (m > 0) {
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(m),
                  static_cast<long long>(s));
  } else {
    std::snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(s));
  }
  return buf;
}

std::string progress_line(const StepMetrics& metrics, int64_t total_steps, int64_t steps_done,
                          double elapsed_s, const std::vector<std::string>& keys) {
  constexpr int kBarWidth = 20;
  const int64_t step = metrics.step();
  const double frac =
      total_steps > 0 ? std::min(1.0, std::max(0.0, static_cast<double>(step) / total_steps)) : 0;
  const int filled = static_cast<int>(frac * kBarWidth);
  std::ostringstream out;
  out << "step " << step << "/" << total_steps << " [" << std::string(filled, '#')
      << std::string(kBarWidth - filled, '.') << "] " << static_cast<int>(frac * 100) << "%";
  for (const auto& key : keys) {
    if (auto v = metrics.get(key)) out << " | " << key << " " << std::setprecision(4) << *v;
  }
  if (steps_done > 0) {
    const double per_step = elapsed_s / static_cast<double>(steps_done);
    out << " | " << std::fixed << std::setprecision(2) << per_step << " s/step | ETA "
        << format_duration(per_step *
                           static_cast<double>(std::max<int64_t>(0, total_steps - step)));
  }
  return out.str();
}

ConsoleProgress::ConsoleProgress(int64_t total_steps, ProgressMode mode, std::ostream& out,
                                 std::vector<std::string> keys)
    : total_steps_(total_steps),
      enabled_(mode == ProgressMode::always ||
               (mode == ProgressMode::automatic && isatty(STDERR_FILENO))),
      rewrite_(mode == ProgressMode::automatic),
      out_(out),
      keys_(std::move(keys)),
      start_(std::chrono::steady_clock::now()) {}

ConsoleProgress::~ConsoleProgress() { finish(); }

void ConsoleProgress::update(const StepMetrics& metrics) {
  ++steps_done_;
  if (!enabled_) return;
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start_;
  const std::string line =
      progress_line(metrics, total_steps_, steps_done_, elapsed.count(), keys_);
  if (rewrite_) {
    // "\33[2K" clears the previous (possibly longer) line before rewriting it.
    out_ << "\r\33[2K" << line << std::flush;
    line_open_ = true;
  } else {
    out_ << line << '\n' << std::flush;
  }
}

void ConsoleProgress::finish() {
  if (line_open_) out_ << '\n' << std::flush;
  line_open_ = false;
}

std::vector<std::string> ConsoleProgress::default_keys() {
  return {"reward/mean", "accuracy", "response_length/mean", "kl/mean"};
}

}  // namespace grpo::metrics
