// What `grpo train` and `grpo sft` share: the run options (--config, --set, --run-dir, --resume,
// --force-resume), loading the config with logging.level, and the end-of-run log lines.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "grpo/core/config.h"
#include "grpo/train/data_parallel.h"
#include "grpo/train/grpo_trainer.h"

namespace grpo::cli {

struct RunArgs {
  std::string config;
  std::vector<std::string> overrides;  // --set
  std::vector<std::string> bare;       // bare key=value arguments, applied after --set
  std::string run_dir;
  std::string resume;
  bool force_resume = false;
};

// Registers the run options on `cmd`; `config_help` and `set_example` word the help text.
// Overrides come as `--set key=value` or, Hydra-style, as bare `key=value` arguments.
void add_run_options(CLI::App& cmd, RunArgs& args, const std::string& config_help,
                     const std::string& set_example);

// A positional option collecting bare `key.path=value` arguments (Hydra-style) into `bare`, for
// verbs that take --set; the verb applies them after the --set ones (all_overrides).
void add_bare_overrides(CLI::App& cmd, std::vector<std::string>& bare);
std::vector<std::string> all_overrides(std::vector<std::string> set,
                                       const std::vector<std::string>& bare);

// Loads --config with the --set overrides; logging.level applies unless --log-level was given.
config::LoadedConfig load_run_config(const CLI::App& cmd, const RunArgs& args);

// run_dir (default runs/<config file stem>), resume and force_resume from the options, and this
// process's rank from the environment.
train::TrainOptions run_options(const RunArgs& args);

// The ranks' process group for `config` (on its trainer.device), shared by a run and the SFT
// stages before it (TrainOptions::data_parallel); one process: the identity.
std::unique_ptr<train::DataParallel> rank_group(const config::Config& config, const dist::Env& env);

// The closing lines: a resume hint when a signal stopped the run, then where it ended.
void log_run_end(const train::TrainSummary& summary, const std::string& run_dir);

}  // namespace grpo::cli
