// The architecture of a decoder-only model, read from a Hugging Face config.json (both the
// transformers 4 `rope_theta`/`rope_scaling` and the transformers 5 `rope_parameters` forms) or
// built from the `model.architecture` config section for models trained from scratch.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "grpo/core/config/model.h"
#include "grpo/ops/moe.h"
#include "grpo/ops/rope.h"

namespace grpo::model {

// The model families this layer implements; anything else is refused by name.
inline const std::vector<std::string>& supported_model_types() {
  static const std::vector<std::string> k{"llama",     "mistral",   "qwen2",  "qwen3",
                                          "qwen2_moe", "qwen3_moe", "mixtral"};
  return k;
}

struct ModelArch {
  std::string model_type;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;  // dense MLP layers
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  ops::RopeParams rope;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // q/k/v projections carry a bias (Qwen2, Llama attention_bias)
  bool o_bias = false;    // o_proj carries a bias (Llama attention_bias)
  bool mlp_bias = false;  // Llama mlp_bias
  bool qk_norm = false;   // per-head RMSNorm of q and k before RoPE (Qwen3)

  // Mixture of experts (num_experts == 0: every layer is dense).
  int64_t num_experts = 0;
  int64_t moe_intermediate_size = 0;
  int64_t shared_expert_intermediate_size = 0;  // 0: no shared expert
  bool shared_expert_gate = false;              // Qwen2-MoE: sigmoid gate on the shared expert
  ops::RouterParams router;
  bool router_correction_bias = false;   // per-expert bias used only for choosing experts
  int64_t decoder_sparse_step = 1;       // layer i is MoE iff (i + 1) % step == 0 ...
  std::vector<int64_t> mlp_only_layers;  // ... and i is not listed here
  std::string moe_module_name = "mlp";   // "block_sparse_moe" for Mixtral
  std::string expert_gate = "gate_proj", expert_up = "up_proj", expert_down = "down_proj";
  double router_aux_loss_coef = 0.0;
  double router_z_loss_coef = 0.0;

  // Fused paths or the ATen reference (model.kernels; not part of config.json).
  ops::KernelPolicy kernels = ops::KernelPolicy::automatic;  // see config::ModelConfig::kernels

  // The config.json this came from, kept so that saving writes back the same keys.
  nlohmann::json source;

  bool is_moe_layer(int64_t layer) const;
  bool is_moe() const { return num_experts > 0; }
};

// Parses a config.json object; `where` names the file in errors. Unsupported model types,
// enabled sliding windows, unknown rope types and inconsistent sizes are config errors.
ModelArch parse_hf_config(const nlohmann::json& config, const std::string& where);
ModelArch read_hf_config(const std::string& config_json_path);

// The config.json to save next to the weights: `source` with the fields this layer owns
// refreshed (dtype), or, for a from-scratch model, a complete transformers-loadable config.
nlohmann::json to_hf_config(const ModelArch& arch, const std::string& dtype_name);

// A from-scratch architecture from the `model.architecture` config section. vocab_size 0 in the
// section means: use `vocab_size` (the tokenizer's).
ModelArch arch_from_config(const config::ModelArchitecture& a, int64_t vocab_size);

}  // namespace grpo::model
