// The policy's part of a training checkpoint, shared by grpo train and grpo sft: policy/ is a
// Hugging Face folder (with LoRA, the merged weights), and with LoRA adapter/ holds the adapters
// in PEFT's layout, from which a resumed run continues on the base it builds itself.
#pragma once

#include <string>

#include "grpo/core/config/model.h"
#include "grpo/model/modules.h"
#include "grpo/train/checkpoint.h"

namespace grpo::train {

// Sets writers.policy (and writers.adapter with model.lora) for `policy`, which must outlive
// the writers.
void set_policy_writers(CheckpointWriters& writers, model::CausalLM& policy,
                        const config::ModelConfig& config, const std::string& tokenizer_dir);

// The policy a checkpoint holds. `policy` is the model built at setup (model::build_model):
// with model.lora its adapters are read from checkpoint_dir/adapter and it is returned; else
// checkpoint_dir/policy is loaded in its place.
model::CausalLM load_checkpoint_policy(model::CausalLM policy, const config::ModelConfig& config,
                                       const std::string& checkpoint_dir);

}  // namespace grpo::train
