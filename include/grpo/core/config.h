// The whole run configuration: one typed struct per YAML section, loaded and validated once.
// Components take their own section; nothing looks keys up by string after loading.
#pragma once

#include <string>
#include <vector>

#include "grpo/core/config/algorithm.h"
#include "grpo/core/config/checkpoint.h"
#include "grpo/core/config/data.h"
#include "grpo/core/config/distributed.h"
#include "grpo/core/config/logging.h"
#include "grpo/core/config/model.h"
#include "grpo/core/config/reward.h"
#include "grpo/core/config/rollout.h"
#include "grpo/core/config/sft.h"
#include "grpo/core/config/tokenizer.h"
#include "grpo/core/config/trainer.h"
#include "grpo/core/config/validation.h"
#include "grpo/core/config_bind.h"
#include "grpo/core/config_node.h"

namespace grpo::config {

struct Config {
  ModelConfig model;
  TokenizerConfig tokenizer;
  DataConfig data;
  RolloutConfig rollout;
  RewardConfig reward;
  AlgorithmConfig algorithm;
  TrainerConfig trainer;
  DistributedConfig distributed;
  LoggingConfig logging;
  CheckpointConfig checkpoint;
  SftConfig sft;
  ValidationConfig validation;

  template <class V>
  void visit(V& v) {
    v("model", model);
    v("tokenizer", tokenizer);
    v("data", data);
    v("rollout", rollout);
    v("reward", reward);
    v("algorithm", algorithm);
    v("trainer", trainer);
    v("distributed", distributed);
    v("logging", logging);
    v("checkpoint", checkpoint);
    v("sft", sft);
    v("validation", validation);
  }
  void check(Checker& c) const {
    c.require(algorithm.overlong_buffer < rollout.max_new_tokens, "algorithm",
              "overlong_buffer (" + std::to_string(algorithm.overlong_buffer) +
                  ") must be smaller than rollout.max_new_tokens (" +
                  std::to_string(rollout.max_new_tokens) + ")");
    c.require(trainer.autocast == Autocast::none || model.dtype == DType::float32, "trainer",
              "autocast keeps float32 master weights: it needs model.dtype: float32");
    c.require(model.lora.rank == 0 || algorithm.ref_reset_every == 0, "algorithm",
              "ref_reset_every needs full fine-tuning: with model.lora the reference is the base "
              "model (the policy with its adapters off), which does not move");
  }
};

// A config together with the merged YAML tree it came from (for locating later errors).
struct LoadedConfig {
  Config config;
  Node tree;
};

// Loads `path` (resolving extends:), applies `--set` overrides in order, and validates.
// Throws grpo::Error (config or usage) naming file:line, the key path and what was expected.
LoadedConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Same from YAML text (tests, embedded defaults); `source` names it in errors.
LoadedConfig parse_config(const std::string& yaml, const std::string& source,
                          const std::vector<std::string>& overrides = {});

// The fully resolved config (every key, defaults included) as YAML.
std::string to_yaml(const Config& config);

// A stable hash of the resolved config (hex), to detect ranks or resumes with different configs.
std::string config_hash(const Config& config);

// One key whose value differs between two resolved configs: its path ("trainer.lr",
// "reward.functions[1].weight") and the two values, short ("(absent)" where a side has none).
struct ConfigChange {
  std::string key;
  std::string before;
  std::string after;
};

// Every differing leaf, in key order of `after` (then keys only `before` has). Lists of the
// same length are compared item by item; lists of different lengths are one change.
std::vector<ConfigChange> config_changes(const Config& before, const Config& after);

}  // namespace grpo::config
