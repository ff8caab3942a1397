// LoRA adapters on a CausalLM (docs/training.md, "LoRA"): each adapted projection
// y = x W^T + b gains (alpha / rank) (x A^T) B^T, A (rank, in) drawn uniformly in
// +-1/sqrt(in) and B (out, rank) zero (so the adapted model starts as the base), and only A and
// B train. Adapters are written and read in PEFT's layout (adapter_config.json +
// adapter_model.safetensors, tensors base_model.model.<module>.lora_A.weight), and save_hf
// writes the merged weights W + (alpha / rank) B A, so a checkpoint's policy folder is a plain
// model for generate, eval and transformers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "grpo/core/config/model.h"
#include "grpo/model/modules.h"

namespace grpo::model {

struct LoraSpec {
  int64_t rank = 0;
  double alpha = 16.0;
  std::vector<std::string> targets;  // module names (q_proj, ..., down_proj)
  uint64_t seed = 0;                 // draws A
};
LoraSpec lora_spec(const config::LoraConfig& config, uint64_t seed);

// Attaches an adapter to every Linear whose module name ends in one of spec.targets (a routed
// expert's projections excepted: the grouped expert products read their weights directly) and
// freezes every other parameter. Returns the number of adapted projections; throws when there
// is none or the model has adapters already.
int64_t attach_lora(CausalLM& model, const LoraSpec& spec);
bool has_lora(CausalLM& model);

// The base model for its lifetime: every adapter of `model` is switched off (the frozen
// reference of a LoRA run is the policy with its adapters off, not a second copy).
class LoraDisabled {
 public:
  explicit LoraDisabled(CausalLM& model);
  ~LoraDisabled();
  LoraDisabled(const LoraDisabled&) = delete;
  LoraDisabled& operator=(const LoraDisabled&) = delete;

 private:
  std::vector<LinearImpl*> linears_;
};

// Writes `model`'s adapters into dir as PEFT does (adapter_config.json names `base_model`).
void save_lora_adapter(CausalLM& model, const LoraSpec& spec, const std::string& dir,
                       const std::string& base_model = "");
// Reads dir's adapter_model.safetensors into the adapters attached to `model` (same targets and
// rank: adapter_config.json must agree with `spec`); errors name the folder and the tensor.
void load_lora_adapter(CausalLM& model, const LoraSpec& spec, const std::string& dir);

// The spec a PEFT adapter folder describes (r, lora_alpha, target_modules of
// adapter_config.json; plain LoRA only, as load_lora_adapter). seed is 0 (A is read, not drawn).
LoraSpec read_lora_spec(const std::string& dir);
// Attaches the adapters of a PEFT adapter folder to `model` and reads their weights: a base
// model folder plus an adapter trained here or by PEFT (`grpo generate/eval --adapter`).
void apply_lora_adapter(CausalLM& model, const std::string& dir);

}  // namespace grpo::model
