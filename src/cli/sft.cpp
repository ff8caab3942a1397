// `grpo sft --config FILE [--set k=v]... [--run-dir DIR] [--resume auto|PATH]`: supervised
// fine-tuning on JSONL (prompt + response with the prompt masked out of the loss, or plain text).
// Writes config.resolved.yaml, metrics.jsonl, the TensorBoard event file and checkpoints/ into
// the run directory, like grpo train (docs/training.md). SIGINT/SIGTERM finish the current step,
// write a checkpoint and exit 0; a second signal kills.
#include <CLI/CLI.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "grpo/core/config.h"
#include "grpo/core/log.h"
#include "grpo/train/sft.h"
#include "grpo/train/stop_signal.h"
#include "verbs.h"

namespace grpo::cli {
namespace {

struct SftArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::string run_dir;
  std::string resume;
  bool force_resume = false;
};

}  // namespace

void add_sft_verb(CLI::App& app) {
  auto* cmd = app.add_subcommand("sft", "Supervised fine-tuning on JSONL from a YAML config");
  auto args = std::make_shared<SftArgs>();
  cmd->add_option("--config", args->config, "YAML run config (its sft: section)")->required();
  cmd->add_option("--set", args->overrides, "Override a key: --set trainer.lr=1e-4 (repeatable)");
  cmd->add_option("--run-dir", args->run_dir, "Output folder (default: runs/<config name>)");
  cmd->add_option("--resume", args->resume,
                  "auto (latest checkpoint of the run dir, if any) or a checkpoint/run folder");
  cmd->add_flag("--force-resume", args->force_resume,
                "Resume even if the checkpoint was written with a different config");
  cmd->callback([cmd, args] {
    auto loaded = config::load_config(args->config, args->overrides);
    if (cmd->get_parent()->get_option("--log-level")->count() == 0) {
      log::set_level(loaded.config.logging.level);
    }
    train::TrainOptions options;
    options.run_dir =
        args->run_dir.empty()
            ? (std::filesystem::path("runs") / std::filesystem::path(args->config).stem()).string()
            : args->run_dir;
    options.resume = args->resume;
    options.force_resume = args->force_resume;
    train::StopSignal stop;
    if (!train::prepare_base_model(loaded.config, options.run_dir, &stop)) {
      log::warn("stopped by signal in the base model's SFT stage; rerun the command to continue");
      return;
    }
    auto summary = train::run_sft(loaded.config, options, &stop);
    if (summary.stopped_by_signal) {
      log::warn("stopped by signal after step ", summary.last_step, "; resume with --resume auto");
    }
    log::info(
        "done: ", summary.last_step, " steps in ", options.run_dir,
        summary.last_checkpoint.empty() ? "" : ", last checkpoint " + summary.last_checkpoint);
  });
}

}  // namespace grpo::cli
