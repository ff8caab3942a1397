// `grpo train --config FILE [--set k=v]... [--run-dir DIR] [--resume auto|PATH]`: GRPO training.
// Writes config.resolved.yaml, metrics.jsonl, the TensorBoard event file, samples.jsonl and
// checkpoints/ into the run directory (docs/training.md). SIGINT/SIGTERM finish the current
// step, write a checkpoint and exit 0; a second signal kills.
#include <CLI/CLI.hpp>

#include <memory>

#include "grpo/core/error.h"
#include "grpo/core/log.h"
#include "grpo/train/grpo_trainer.h"
#include "grpo/train/sft.h"
#include "grpo/train/stop_signal.h"
#include "run_verb.h"
#include "verbs.h"

namespace grpo::cli {

void add_train_verb(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train a policy with GRPO from a YAML config");
  auto args = std::make_shared<RunArgs>();
  add_run_options(*cmd, *args, "YAML run config", "trainer.lr=1e-6");
  cmd->callback([cmd, args] {
    auto loaded = load_run_config(*cmd, *args);
    train::TrainOptions options = run_options(*args);
    GRPO_CHECK_KIND(config, loaded.config.tokenizer.train.vocab_size == 0,
                    "tokenizer.train is for grpo sft; grpo train loads tokenizer.path or the "
                    "model folder's tokenizer");
    train::StopSignal stop;
    // One process group for the base model's SFT stage (trained by the ranks together when it
    // is not there yet) and the GRPO run.
    const auto ranks = rank_group(loaded.config, options.dist);
    options.data_parallel = ranks.get();
    if (!train::prepare_base_model(loaded.config, options.run_dir, &stop, ranks.get())) {
      log::warn("stopped by signal in the base model's SFT stage; rerun the command to continue");
      return;
    }
    log_run_end(train::run_grpo(loaded.config, options, &stop), options.run_dir);
  });
}

}  // namespace grpo::cli
