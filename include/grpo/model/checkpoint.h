// Hugging Face folders <-> CausalLM: load config.json + safetensors (single or sharded) into
// fp32/bf16/fp16 with by-name checks, save back to a folder transformers loads unchanged, and
// build deterministic from-scratch models (`init: random`).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "grpo/core/config/model.h"
#include "grpo/model/modules.h"

namespace grpo::model {

at::ScalarType to_scalar_type(config::DType dtype);
// "float32" | "bfloat16" | "float16": the spelling config.json uses.
const char* dtype_name(at::ScalarType dtype);

// Loads dir/config.json and its weights. Missing, unexpected (all listed by name) or misshaped
// tensors are errors naming the file and tensor. The model is on the CPU in `dtype`.
CausalLM load_hf(const std::string& dir, at::ScalarType dtype,
                 ops::KernelPolicy kernels = ops::KernelPolicy::automatic);

// Writes config.json and model.safetensors (or shards + index above max_shard_bytes) into dir,
// in the model's dtype, and copies the tokenizer files found in tokenizer_dir (if not empty).
// LoRA-adapted projections are written merged (lora.h).
void save_hf(CausalLM& model, const std::string& dir, const std::string& tokenizer_dir = "",
             size_t max_shard_bytes = size_t{5} << 30);

// A model with freshly initialised weights: normal(0, initializer_range) for projections and
// embeddings, ones for norms, zeros for biases; identical for the same arch and seed.
CausalLM random_model(const ModelArch& arch, uint64_t seed, at::ScalarType dtype);

// The `model:` config section: pretrained from `path`, or random from `architecture` + `seed`,
// with LoRA adapters attached when model.lora.rank > 0 (A drawn from `seed`; lora.h).
// vocab_size is the tokenizer's (used when architecture.vocab_size is 0).
CausalLM build_model(const config::ModelConfig& config, int64_t vocab_size);

// model.kernels as the ops layer's policy.
ops::KernelPolicy kernel_policy(config::KernelChoice choice);

// Parameter counts: total, and active per token (shared weights plus top_k of the routed experts
// in each MoE layer; equal to total for dense models).
struct ParamCount {
  int64_t total = 0;
  int64_t active = 0;
};
ParamCount count_parameters(const ModelArch& arch);

}  // namespace grpo::model
