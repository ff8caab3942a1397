// Writing and reading the policy of a checkpoint, with or without LoRA adapters.
#include "grpo/train/policy_io.h"

#include <filesystem>

#include "grpo/model/checkpoint.h"
#include "grpo/model/lora.h"

namespace grpo::train {
namespace fs = std::filesystem;

namespace {
model::LoraSpec spec(const config::ModelConfig& c) {
  return model::lora_spec(c.lora, static_cast<uint64_t>(c.seed));
}
}  // namespace

void set_policy_writers(CheckpointWriters& writers, model::CausalLM& policy,
                        const config::ModelConfig& config, const std::string& tokenizer_dir) {
  writers.policy = [&policy, tokenizer_dir](const std::string& dir) {
    model::save_hf(policy, dir, tokenizer_dir);
  };
  if (config.lora.rank > 0) {
    writers.adapter = [&policy, &config](const std::string& dir) {
      model::save_lora_adapter(policy, spec(config), dir, config.path);
    };
  }
}

model::CausalLM load_checkpoint_policy(model::CausalLM policy, const config::ModelConfig& config,
                                       const std::string& checkpoint_dir) {
  if (config.lora.rank > 0) {
    model::load_lora_adapter(policy, spec(config),
                             (fs::path(checkpoint_dir) / kAdapterDir).string());
    return policy;
  }
  return model::load_hf((fs::path(checkpoint_dir) / kPolicyDir).string(),
                        model::to_scalar_type(config.dtype), model::kernel_policy(config.kernels));
}

}  // namespace grpo::train
