// The GRPO training loop, as named and timed phases (docs/training.md):
//   prompts -> generate -> reward -> ref -> advantage -> update -> metrics -> checkpoint.
// The rollout engine runs the policy module itself, so the behaviour log-probs it records are
// the old log-probs of the loss (no recomputation phase, no weight copy).
#pragma once

#include <cstdint>
#include <string>

#include "grpo/core/config.h"
#include "grpo/dist/env.h"

namespace grpo::train {

class StopSignal;
class DataParallel;

struct TrainOptions {
  std::string run_dir;        // created if missing
  std::string resume;         // "" (fresh), "auto", or a checkpoint / run folder
  bool force_resume = false;  // resume even when the checkpoint's config hash differs
  int reward_threads = 0;     // 0: one per hardware thread
  dist::Env dist;             // this process's rank (dist::env_from_process()); default: alone
  // The ranks' process group when the caller already made one (grpo train's SFT stage and its
  // GRPO run share it; it must have been made for `dist`); null: the run makes its own.
  DataParallel* data_parallel = nullptr;
};

struct TrainSummary {
  int64_t first_step = 0;  // 0, or the resumed checkpoint's step
  int64_t last_step = 0;   // steps completed when run() returned
  bool stopped_by_signal = false;
  std::string last_checkpoint;  // folder, empty when none was written
};

// Runs `config` to trainer.steps (or until `stop` is requested: the current step finishes and
// a checkpoint is written). Throws grpo::Error on bad input or an unrecoverable step.
TrainSummary run_grpo(const config::Config& config, const TrainOptions& options,
                      const StopSignal* stop = nullptr);

}  // namespace grpo::train
