// `grpo train --config FILE [--set k=v]... [--run-dir DIR] [--resume auto|PATH]`: GRPO training.
// Writes config.resolved.yaml, metrics.jsonl, the TensorBoard event file, samples.jsonl and
// checkpoints/ into the run directory (docs/training.md). SIGINT/SIGTERM finish the current
// step, write a checkpoint and exit 0; a second signal kills.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "grpo/core/config.h"
#include "grpo/core/error.h"
#include "grpo/core/log.h"
#include "grpo/dist/env.h"
#include "grpo/train/grpo_trainer.h"
#include "grpo/train/sft.h"
#include "grpo/train/stop_signal.h"
#include "verbs.h"

namespace grpo::cli {
namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::string run_dir;
  std::string resume;
  bool force_resume = false;
};

// runs/<config file stem>, next to wherever the command runs.
std::string default_run_dir(const std::string& config_path) {
  return (std::filesystem::path("runs") / std::filesystem::path(config_path).stem()).string();
}

}  // namespace

void add_train_verb(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train a policy with GRPO from a YAML config");
  auto args = std::make_shared<TrainArgs>();
  cmd->add_option("--config", args->config, "YAML run config")->required();
  cmd->add_option("--set", args->overrides, "Override a key: --set trainer.lr=1e-6 (repeatable)");
  cmd->add_option("--run-dir", args->run_dir, "Output folder (default: runs/<config name>)");
  cmd->add_option("--resume", args->resume,
                  "auto (latest checkpoint of the run dir, if any) or a checkpoint/run folder");
  cmd->add_flag("--force-resume", args->force_resume,
                "Resume even if the checkpoint was written with a different config");
  cmd->callback([cmd, args] {
    auto loaded = config::load_config(args->config, args->overrides);
    // logging.level applies unless --log-level was given on the command line.
    if (cmd->get_parent()->get_option("--log-level")->count() == 0) {
      log::set_level(loaded.config.logging.level);
    }
    train::TrainOptions options;
    options.run_dir = args->run_dir.empty() ? default_run_dir(args->config) : args->run_dir;
    options.resume = args->resume;
    options.force_resume = args->force_resume;
    options.dist = dist::env_from_process();
    GRPO_CHECK_KIND(config, loaded.config.tokenizer.train.vocab_size == 0,
                    "tokenizer.train is for grpo sft; grpo train loads tokenizer.path or the "
                    "model folder's tokenizer");
    train::StopSignal stop;
    // With several ranks the base model's SFT stage must exist already (one process trains).
    if (!train::prepare_base_model(loaded.config, options.run_dir, &stop,
                                   options.dist.world_size == 1)) {
      log::warn("stopped by signal in the base model's SFT stage; rerun the command to continue");
      return;
    }
    auto summary = train::run_grpo(loaded.config, options, &stop);
    if (summary.stopped_by_signal) {
      log::warn("stopped by signal after step ", summary.last_step, "; resume with --resume auto");
    }
    log::info(
        "done: ", summary.last_step, " steps in ", options.run_dir,
        summary.last_checkpoint.empty() ? "" : ", last checkpoint " + summary.last_checkpoint);
  });
}

}  // namespace grpo::cli
