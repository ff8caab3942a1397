// Training checkpoints in a run directory:
//   <run>/checkpoints/step_000050/{policy/, optimizer.pt, trainer_state.json}
// written atomically (into step_000050.tmp/, every file fsynced, then renamed), keeping the last
// K, and found again by `--resume auto|PATH`. Writing the policy and optimizer files is the
// caller's job (callbacks), so this file knows neither the model nor the optimizer.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "grpo/core/config.h"

namespace grpo::train {

inline constexpr const char* kPolicyDir = "policy";
inline constexpr const char* kOptimizerFile = "optimizer.pt";
// Only when the reference model is no longer the initial policy (algorithm.ref_reset_every).
inline constexpr const char* kReferenceDir = "reference";
// Only with LoRA (model.lora): the adapters in PEFT's layout; policy/ holds the merged weights.
inline constexpr const char* kAdapterDir = "adapter";
inline constexpr const char* kTrainerStateFile = "trainer_state.json";
// The resolved config of the run that wrote the checkpoint, for comparing on resume.
inline constexpr const char* kConfigFile = "config.yaml";

// Everything besides weights and optimizer moments that a resumed run needs to continue
// exactly where the checkpointed one stood.
struct TrainerState {
  int64_t step = 0;         // optimizer steps completed
  std::string config_hash;  // config::config_hash() of the run that wrote it
  nlohmann::json data_cursor = nlohmann::json::object();  // the data loader's position
  std::map<std::string, std::string> rng_states;          // name -> raw generator state bytes
  nlohmann::json extra = nlohmann::json::object();        // counters (non-finite steps, ...)
  // config::to_yaml() of that run: save() writes it to config.yaml beside trainer_state.json
  // (when not empty); read_trainer_state() leaves it empty.
  std::string config_yaml;
};

// trainer_state.json text (rng states as base64), and back. Parse errors name `source` and
// the field.
std::string trainer_state_to_json(const TrainerState& state);
TrainerState trainer_state_from_json(const std::string& text, const std::string& source);
TrainerState read_trainer_state(const std::string& path);

std::string base64_encode(const std::string& bytes);
// Throws grpo::Error naming `what` on characters outside the base64 alphabet or bad padding.
std::string base64_decode(const std::string& text, const std::string& what);

// LibTorch's default generators: "torch_cpu" and "torch_cuda<i>" for each visible GPU.
std::map<std::string, std::string> capture_torch_rng();
// Restores the generators captured by capture_torch_rng(); names not present are ignored, and a
// "torch_cuda<i>" for a GPU that is not visible is an error.
void restore_torch_rng(const std::map<std::string, std::string>& states);

// "step_000050" (at least six digits).
std::string checkpoint_dir_name(int64_t step);

// Callbacks that fill a checkpoint folder; an empty one writes nothing. For example
//   writers.policy = [&](const std::string& dir) { model::save_hf(policy, dir, tokenizer_dir); };
//   writers.optimizer = [&](const std::string& path) { save_optimizer(*adamw, path); };
struct CheckpointWriters {
  std::function<void(const std::string& policy_dir)> policy;
  std::function<void(const std::string& optimizer_path)> optimizer;
  std::function<void(const std::string& reference_dir)> reference;
  std::function<void(const std::string& adapter_dir)> adapter;
};

struct CheckpointInfo {
  int64_t step = 0;
  std::string dir;
};

class CheckpointManager {
 public:
  // Checkpoints live in run_dir/checkpoints; keep_last >= 1.
  CheckpointManager(const std::string& run_dir, int keep_last);

  // Writes checkpoints/step_<state.step>/ atomically and returns its path. Only once it is
  // complete are older checkpoints beyond keep_last and leftover *.tmp folders (from a crash)
  // deleted. Saving a step that exists replaces it.
  std::string save(const TrainerState& state, const CheckpointWriters& writers);

  // Complete checkpoints (final name, readable trainer_state.json of the same step), ascending.
  std::vector<CheckpointInfo> complete() const;
  // The highest complete checkpoint, if any.
  std::optional<CheckpointInfo> latest() const;
  const std::string& checkpoints_dir() const { return dir_; }

 private:
  std::string dir_;
  int keep_last_;
};

struct ResumePoint {
  std::string dir;  // the checkpoint folder
  TrainerState state;
};

// Resolves `--resume`:
//   ""     -> no resume (fresh run);
//   "auto" -> the latest complete checkpoint of run_dir, or a fresh run when there is none;
//   PATH   -> a checkpoint folder (with trainer_state.json), or a run / checkpoints folder whose
//             latest complete checkpoint is used; an error when none is found.
// The checkpoint's config.yaml is compared with `config`: changed keys that resume_may_change()
// allows are logged; any other change is a config error naming each key and both values,
// unless `force` (then a warning). A checkpoint without config.yaml is compared by hash.
std::optional<ResumePoint> resolve_resume(const std::string& resume, const std::string& run_dir,
                                          const config::Config& config, bool force);

// Keys a run may change when it resumes (or reuses a finished SFT stage): how the work is spread,
// batched into micro-batches, checkpointed, validated and logged, and how long the run goes on
// (trainer.steps, sft.epochs), but nothing else that decides what is learned.
bool resume_may_change(const std::string& key);

// How `config` differs from the config that wrote checkpoint `dir` (whose trainer_state.json
// holds `state`), split by resume_may_change(). Without a readable config.yaml and with another
// hash, `learned` holds one "config hash" change.
struct ConfigDrift {
  std::vector<config::ConfigChange> learned;  // changes what is learned
  std::vector<config::ConfigChange> allowed;  // resume_may_change()
};
ConfigDrift config_drift(const std::string& dir, const TrainerState& state,
                         const config::Config& config);

// "trainer.lr 1e-06 -> 2e-06, data.seed 1 -> 2".
std::string describe_changes(const std::vector<config::ConfigChange>& changes);

}  // namespace grpo::train
