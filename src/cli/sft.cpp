// `grpo sft --config FILE [--set k=v]... [--run-dir DIR] [--resume auto|PATH]`: supervised
// fine-tuning on JSONL (prompt + response with the prompt masked out of the loss, or plain text).
// Writes config.resolved.yaml, metrics.jsonl, the TensorBoard event file and checkpoints/ into
// the run directory, like grpo train (docs/training.md). SIGINT/SIGTERM finish the current step,
// write a checkpoint and exit 0; a second signal kills.
#include <CLI/CLI.hpp>

#include <memory>

#include "grpo/core/log.h"
#include "grpo/train/sft.h"
#include "grpo/train/stop_signal.h"
#include "run_verb.h"
#include "verbs.h"

namespace grpo::cli {

void add_sft_verb(CLI::App& app) {
  auto* cmd = app.add_subcommand("sft", "Supervised fine-tuning on JSONL from a YAML config");
  auto args = std::make_shared<RunArgs>();
  add_run_options(*cmd, *args, "YAML run config (its sft: section)", "trainer.lr=1e-4");
  cmd->callback([cmd, args] {
    auto loaded = load_run_config(*cmd, *args);
    train::TrainOptions options = run_options(*args);
    train::StopSignal stop;
    // One process group for an earlier SFT stage (when the config names one) and this run.
    const auto ranks = rank_group(loaded.config, options.dist);
    options.data_parallel = ranks.get();
    if (!train::prepare_base_model(loaded.config, options.run_dir, &stop, ranks.get())) {
      log::warn("stopped by signal in the base model's SFT stage; rerun the command to continue");
      return;
    }
    log_run_end(train::run_sft(loaded.config, options, &stop), options.run_dir);
  });
}

}  // namespace grpo::cli
