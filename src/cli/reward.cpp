// `grpo reward --input in.jsonl --output out.jsonl [--config FILE] [--reward NAME]...`: scores
// completions offline with the same pipeline as training. Each output line is the input line plus
// "reward", "rewards" {name: score}, "details" {name: {...}} and, from code_tests, "verdict",
// "tests_passed" and "tests_total".
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "grpo/core/config/data.h"
#include "grpo/core/config/reward.h"
#include "grpo/core/error.h"
#include "grpo/core/jsonl.h"
#include "grpo/core/log.h"
#include "grpo/reward/pipeline.h"
#include "reward_setup.h"
#include "verbs.h"

namespace grpo::cli {
namespace {

struct RewardArgs {
  std::string input;
  std::string output;
  std::string config_file;
  std::vector<std::string> rewards;
  bool skip_bad_lines = false;
  int threads = 0;
  int batch = 4096;
};

// A JSON string field as text; numbers (AMC's 27.0) keep their JSON spelling.
std::string text_field(const nlohmann::json& row, const std::string& key) {
  auto it = row.find(key);
  if (it == row.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

class Scorer {
 public:
  Scorer(const RewardArgs& args, const reward::RewardPipeline& pipeline,
         const config::DataConfig& data, jsonl::Writer& out)
      : args_(args), pipeline_(pipeline), data_(data), out_(out) {}

  // Parses one input line; returns false (after counting it) for a skipped bad line.
  bool add(const std::string& line, long line_no) {
    nlohmann::json row = nlohmann::json::parse(line, nullptr, false);
    std::string problem;
    if (row.is_discarded()) {
      problem = "not valid JSON";
    } else if (!row.is_object()) {
      problem = "not a JSON object";
    } else if (!row.contains("completion") || !row["completion"].is_string()) {
      problem = "no \"completion\" string";
    }
    if (!problem.empty()) {
      GRPO_CHECK(args_.skip_bad_lines, args_.input, ":", line_no, ": ", problem,
                 " (fix the line or pass --skip-bad-lines)");
      grpo::log::warn(args_.input, ":", line_no, ": ", problem, "; skipped");
      ++skipped_;
      return false;
    }
    reward::Sample s;
    s.completion = row["completion"].get<std::string>();
    s.prompt = text_field(row, data_.prompt_field);
    s.answer = text_field(row, data_.answer_field);
    if (row.contains(data_.tests_field)) s.tests = row[data_.tests_field];
    samples_.push_back(std::move(s));
    rows_.push_back(std::move(row));
    if (samples_.size() >= static_cast<size_t>(args_.batch)) flush();
    return true;
  }

  void flush() {
    if (samples_.empty()) return;
    auto scored = pipeline_.score(samples_);
    const auto& entries = pipeline_.entries();
    for (size_t i = 0; i < scored.size(); ++i) {
      nlohmann::json& row = rows_[i];
      row["reward"] = scored[i].reward;
      nlohmann::json rewards = nlohmann::json::object(), details = nlohmann::json::object();
      for (size_t f = 0; f < entries.size(); ++f) {
        rewards[entries[f].name] = scored[i].components[f];
        details[entries[f].name] = scored[i].details[f];
        sums_.resize(entries.size(), 0.0);
        sums_[f] += scored[i].components[f];
        for (const char* key : {"verdict", "tests_passed", "tests_total"}) {
          if (scored[i].details[f].contains(key)) row[key] = scored[i].details[f][key];
        }
      }
      row["rewards"] = std::move(rewards);
      row["details"] = std::move(details);
      total_ += scored[i].reward;
      out_.write(row);
    }
    scored_ += scored.size();
    samples_.clear();
    rows_.clear();
  }

  void summary() const {
    std::printf("scored %zu lines (%ld skipped) -> %s; mean reward %.4f\n", scored_, skipped_,
                args_.output.c_str(), scored_ ? total_ / static_cast<double>(scored_) : 0.0);
    const auto& entries = pipeline_.entries();
    for (size_t f = 0; f < sums_.size(); ++f) {
      std::printf("  %-24s weight %-6g mean %.4f\n", entries[f].name.c_str(), entries[f].weight,
                  sums_[f] / static_cast<double>(scored_));
    }
  }

 private:
  const RewardArgs& args_;
  const reward::RewardPipeline& pipeline_;
  const config::DataConfig& data_;
  jsonl::Writer& out_;
  std::vector<reward::Sample> samples_;
  std::vector<nlohmann::json> rows_;
  std::vector<double> sums_;
  double total_ = 0.0;
  size_t scored_ = 0;
  long skipped_ = 0;
};

void run_reward(const RewardArgs& args) {
  config::RewardConfig rc;
  config::DataConfig data;
  load_reward_setup(args.config_file, args.rewards, rc, data);
  reward::RewardPipeline pipeline(rc, args.threads);
  std::ifstream in(args.input);
  GRPO_CHECK_KIND(usage, in.good(), "--input '", args.input, "' cannot be read");
  jsonl::Writer out(args.output);  // atomic: a failed run leaves no half-written file
  Scorer scorer(args, pipeline, data, out);
  std::string line;
  long line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank line
    scorer.add(line, line_no);
  }
  scorer.flush();
  out.commit();
  scorer.summary();
}

}  // namespace

void add_reward_verb(CLI::App& app) {
  auto args = std::make_shared<RewardArgs>();
  CLI::App* cmd = app.add_subcommand("reward", "Score completions in a JSONL file with rewards");
  cmd->add_option("--input", args->input,
                  "JSONL: {\"completion\": str, \"answer\"?: str, \"tests\"?: ...} per line")
      ->required();
  cmd->add_option("--output", args->output, "JSONL written: each input line plus its rewards")
      ->required();
  cmd->add_option("--config", args->config_file,
                  "YAML with a reward: section (and optionally data: field names)");
  cmd->add_option("--reward", args->rewards,
                  "Reward function by name (repeatable); default options, weight 1")
      ->allow_extra_args(false);
  cmd->add_flag("--skip-bad-lines", args->skip_bad_lines,
                "Skip and count malformed lines instead of failing");
  cmd->add_option("--threads", args->threads, "Scoring threads; 0 = one per core")
      ->capture_default_str();
  cmd->callback([args] { run_reward(*args); });
}

}  // namespace grpo::cli
