// `model:` section: which weights to train (an HF folder, or a model built from scratch).
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "grpo/core/config_bind.h"

namespace grpo::config {

// sft: the base is the output of an SFT stage (`sft_config`), trained first or reused.
enum class ModelInit { pretrained, random, sft };
inline const std::vector<std::pair<ModelInit, std::string>>& enum_names(ModelInit) {
  static const std::vector<std::pair<ModelInit, std::string>> k{
      {ModelInit::pretrained, "pretrained"},
      {ModelInit::random, "random"},
      {ModelInit::sft, "sft"}};
  return k;
}

enum class DType { float32, bfloat16, float16 };
inline const std::vector<std::pair<DType, std::string>>& enum_names(DType) {
  static const std::vector<std::pair<DType, std::string>> k{
      {DType::float32, "float32"}, {DType::bfloat16, "bfloat16"}, {DType::float16, "float16"}};
  return k;
}

enum class KernelChoice { automatic, all, reference };
inline const std::vector<std::pair<KernelChoice, std::string>>& enum_names(KernelChoice) {
  static const std::vector<std::pair<KernelChoice, std::string>> k{
      {KernelChoice::automatic, "auto"},
      {KernelChoice::all, "all"},
      {KernelChoice::reference, "reference"}};
  return k;
}

// Shape of a model built from scratch (`init: random`); mirrors HF config.json names.
struct ModelArchitecture {
  std::string model_type = "qwen2";
  int vocab_size = 0;  // 0: the tokenizer's vocabulary size
  int hidden_size = 64;
  int intermediate_size = 256;
  int num_hidden_layers = 2;
  int num_attention_heads = 4;
  int num_key_value_heads = 2;
  int max_position_embeddings = 1024;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = true;
  int head_dim = 0;  // 0: hidden_size / num_attention_heads
  // Mixture of experts (qwen2_moe, qwen3_moe, mixtral); 0 experts for the dense families.
  int num_experts = 0;
  int num_experts_per_tok = 2;
  int moe_intermediate_size = 0;            // 0: intermediate_size
  int shared_expert_intermediate_size = 0;  // qwen2_moe: shared expert width (0: none)
  bool norm_topk_prob = true;
  double router_aux_loss_coef = 0.0;
  double router_z_loss_coef = 0.0;

  template <class V>
  void visit(V& v) {
    v("model_type", model_type, non_empty());
    v("vocab_size", vocab_size, at_least(0));
    v("hidden_size", hidden_size, at_least(1));
    v("intermediate_size", intermediate_size, at_least(1));
    v("num_hidden_layers", num_hidden_layers, at_least(1));
    v("num_attention_heads", num_attention_heads, at_least(1));
    v("num_key_value_heads", num_key_value_heads, at_least(1));
    v("max_position_embeddings", max_position_embeddings, at_least(1));
    v("rope_theta", rope_theta, greater_than(0));
    v("rms_norm_eps", rms_norm_eps, greater_than(0));
    v("tie_word_embeddings", tie_word_embeddings);
    v("head_dim", head_dim, at_least(0));
    v("num_experts", num_experts, at_least(0));
    v("num_experts_per_tok", num_experts_per_tok, at_least(1));
    v("moe_intermediate_size", moe_intermediate_size, at_least(0));
    v("shared_expert_intermediate_size", shared_expert_intermediate_size, at_least(0));
    v("norm_topk_prob", norm_topk_prob);
    v("router_aux_loss_coef", router_aux_loss_coef, at_least(0));
    v("router_z_loss_coef", router_z_loss_coef, at_least(0));
  }
  void check(Checker& c) const {
    c.require(head_dim > 0 || hidden_size % num_attention_heads == 0, "num_attention_heads",
              "must divide hidden_size (" + std::to_string(hidden_size) + ")");
    c.require(num_attention_heads % num_key_value_heads == 0, "num_key_value_heads",
              "must divide num_attention_heads (" + std::to_string(num_attention_heads) + ")");
  }
};

// LoRA adapters (docs/training.md, "LoRA"): each target projection y = x W^T + b becomes
// y + (alpha / rank) (x A^T) B^T with A (rank, in) drawn at random and B (out, rank) zero, and
// only A and B train. rank 0: off (full fine-tuning).
struct LoraConfig {
  int rank = 0;
  double alpha = 16.0;
  std::vector<std::string> target_modules = known_targets();  // all of them

  static const std::vector<std::string>& known_targets() {
    static const std::vector<std::string> k{"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                            "gate_proj", "up_proj", "down_proj"};
    return k;
  }
  template <class V>
  void visit(V& v) {
    v("rank", rank, at_least(0));
    v("alpha", alpha, greater_than(0));
    v("target_modules", target_modules);
  }
  void check(Checker& c) const {
    const auto& k = known_targets();
    std::string names;
    for (const auto& n : k) names += (names.empty() ? "" : ", ") + n;
    for (const auto& t : target_modules) {
      c.require(std::find(k.begin(), k.end(), t) != k.end(), "target_modules",
                "'" + t + "' is not a projection LoRA attaches to: " + names);
    }
    c.require(rank == 0 || !target_modules.empty(), "target_modules",
              "is empty: with rank > 0, name the projections to adapt");
  }
};

struct ModelConfig {
  std::string path;                        // HF folder (config.json + *.safetensors)
  ModelInit init = ModelInit::pretrained;  // random: build `architecture` from `seed`
  std::string sft_config;        // init sft: the `grpo sft` config whose final policy is the base
  std::string sft_run_dir;       // init sft: where that stage runs; "": <run-dir>/sft
  DType dtype = DType::float32;  // parameter and compute dtype
  // auto: fused paths that have passed their tests (docs/kernels.md; ops::KernelPolicy).
  KernelChoice kernels = KernelChoice::automatic;
  int seed = 0;
  ModelArchitecture architecture;
  LoraConfig lora;

  template <class V>
  void visit(V& v) {
    v("path", path);
    v("init", init);
    v("sft_config", sft_config);
    v("sft_run_dir", sft_run_dir);
    v("dtype", dtype);
    v("kernels", kernels);
    v("seed", seed, at_least(0));
    v("architecture", architecture);
    v("lora", lora);
  }
  void check(Checker& c) const {
    c.require(init != ModelInit::pretrained || !path.empty(), "path",
              "is required when init is pretrained (or set init: random)");
    c.require(init != ModelInit::sft || !sft_config.empty(), "sft_config",
              "is required when init is sft: the grpo sft config of the base model's stage");
  }
};

}  // namespace grpo::config
