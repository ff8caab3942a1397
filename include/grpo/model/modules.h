// The decoder as LibTorch modules, registered under the Hugging Face weight names
// (model.layers.N.self_attn.q_proj.weight, ...) so that loading a checkpoint is a lookup by name.
// RMSNorm, RoPE, attention and MoE dispatch go through the ops layer.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "grpo/model/config.h"

namespace grpo::model {

// Keys and values of every layer for incremental decoding. Preallocated to `capacity`
// positions; `length` of them are filled. Inference only (writes in place, no autograd).
class KVCache {
 public:
  KVCache(const ModelArch& arch, int64_t batch, int64_t capacity, at::TensorOptions options);

  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  int64_t batch() const { return batch_; }
  // Keeps the given batch rows, in that order (drop finished sequences, or repeat a prompt's
  // cache for its G samples). rows (B') int64.
  void select(const at::Tensor& rows);
  void reset() { length_ = 0; }

  // For the attention of layer `layer`: writes k, v (B, Hkv, T, D) at [length, length+T) and
  // returns views of the filled keys and values (B, Hkv, length+T, D). advance() moves length.
  std::pair<at::Tensor, at::Tensor> append(int64_t layer, const at::Tensor& k, const at::Tensor& v);
  void advance(int64_t tokens) { length_ += tokens; }

 private:
  std::vector<at::Tensor> k_, v_;  // per layer (B, Hkv, capacity, D)
  int64_t batch_, capacity_, length_ = 0;
};

// Keys and values (after RoPE) of every layer for a batch of prefixes, with autograd: rows that
// continue a prefix attend to it in a training forward, where the KVCache (inference only) cannot
// serve. The trainer runs each distinct prompt once and its G completions continue it.
struct PrefixKV {
  std::vector<at::Tensor> keys, values;  // per layer (prefixes, Hkv, P, D)
  int64_t length() const { return keys.empty() ? 0 : keys.front().size(2); }
};

struct ForwardOptions {
  KVCache* cache = nullptr;  // when set: the input continues the cached sequence
  // When set: the forward stores every layer's keys and values of this input here.
  PrefixKV* record_prefix = nullptr;
  // When set (not with `cache`): row b of the input continues row prefix_rows[b] of `prefix`;
  // attention_mask then covers the prefix's P positions and the input's T, (B, P + T).
  const PrefixKV* prefix = nullptr;
  at::Tensor prefix_rows;      // (B) int64
  at::Tensor position_ids;     // (B, T) int64; default: cache length + 0..T-1
  at::Tensor attention_mask;   // (B, past + T) 1 = real token, 0 = padding; default: all real
  bool router_losses = false;  // compute the MoE load-balancing and z losses
  // 0: logits at every position; n > 0: only at the last min(n, T) positions (a prefill needs
  // the next-token logits of its last position only, and skips the (B, T, V) output product).
  int64_t logits_to_keep = 0;
  // No output projection at all (ForwardOutput::logits undefined): for callers that project
  // only some hidden rows themselves (train::token_outputs, through ops::token_logprobs).
  bool hidden_only = false;
  // (H, V) contiguous, equal to output_embedding().t(): multiplied instead of the (V, H)
  // weight. OpenBLAS repacks the transposed weight on every product; the rollout engine makes
  // this copy once per generate() call on the CPU (the weights cannot change during one).
  at::Tensor output_weight_t;
};

struct ForwardOutput {
  at::Tensor logits;             // (B, T, V) in the model dtype; (B, T', V) with logits_to_keep
  at::Tensor hidden;             // (B, T, H) final hidden states (after the last norm)
  at::Tensor aux_loss;           // scalar fp32: aux_coef * balance + z_coef * z (MoE + requested)
  at::Tensor balance_loss;       // scalar fp32, mean over MoE layers
  at::Tensor z_loss;             // scalar fp32, mean over MoE layers
  at::Tensor tokens_per_expert;  // (MoE layers, E) int64: router statistics (MoE only)
};

// Linear and Embedding without their random initialisation: weights are either
// loaded (load_hf) or drawn by random_model, so building even a large model is only an
// allocation. A CausalLM constructed directly holds uninitialised weights.
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in, int64_t out, bool bias);
  at::Tensor forward(const at::Tensor& x);  // (..., in) -> (..., out)
  at::Tensor weight;                        // (out, in)
  at::Tensor bias;                          // (out) or undefined

  // A LoRA adapter (grpo/model/lora.h): forward adds lora_scale (x A^T) B^T while enabled.
  at::Tensor lora_a;  // (rank, in), the parameter "lora_A"; undefined without an adapter
  at::Tensor lora_b;  // (out, rank), "lora_B"
  double lora_scale = 0.0;
  bool lora_enabled = true;
  bool has_lora() const { return lora_a.defined(); }
  // W + lora_scale B A: the weight of the equivalent plain projection (W without an adapter).
  at::Tensor merged_weight() const;
};
TORCH_MODULE(Linear);

class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t vocab, int64_t dim);
  at::Tensor forward(const at::Tensor& ids);  // (B, T) int64 -> (B, T, dim)
  at::Tensor weight;                          // (vocab, dim)
};
TORCH_MODULE(Embedding);

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps, ops::KernelPolicy kernels = ops::KernelPolicy::automatic);
  at::Tensor forward(const at::Tensor& x);  // (..., dim)

 private:
  at::Tensor weight_;  // (dim)
  double eps_;
  ops::KernelPolicy kernels_;
};
TORCH_MODULE(RMSNorm);

// SwiGLU MLP: down(silu(gate(x)) * up(x)); the three projections are named as the family
// names them (gate_proj/up_proj/down_proj, or Mixtral's w1/w3/w2).
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t hidden, int64_t intermediate, bool bias,
          const std::string& gate_name = "gate_proj", const std::string& up_name = "up_proj",
          const std::string& down_name = "down_proj");
  at::Tensor forward(const at::Tensor& x);  // (..., hidden)
  // The three projections' weights (out, in), for the MoE block's grouped expert products.
  const at::Tensor& gate_weight() const { return gate_->weight; }
  const at::Tensor& up_weight() const { return up_->weight; }
  const at::Tensor& down_weight() const { return down_->weight; }

 private:
  Linear gate_{nullptr}, up_{nullptr}, down_{nullptr};
};
TORCH_MODULE(Mlp);

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const ModelArch& arch, int64_t layer);
  // x (B, T, H); cos/sin (B, T, D); key_mask (B, S) bool or undefined -> (B, T, H).
  // Keys and values beyond the input's own come from (or go to) options.cache / prefix /
  // record_prefix.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const at::Tensor& key_mask, const ForwardOptions& options);

 private:
  int64_t layer_, num_heads_, num_kv_heads_, head_dim_;
  ops::KernelPolicy kernels_;
  Linear q_proj_{nullptr}, k_proj_{nullptr}, v_proj_{nullptr}, o_proj_{nullptr};
  RMSNorm q_norm_{nullptr}, k_norm_{nullptr};
};
TORCH_MODULE(Attention);

// Per-forward MoE bookkeeping, filled by every MoE layer.
struct MoeStats {
  bool want_losses = false;
  at::Tensor token_mask;                       // (N) bool or undefined
  std::vector<at::Tensor> balance, z, counts;  // one entry per MoE layer
};

// "gate": the router's (E, H) projection and, when configured, DeepSeek's per-expert score
// correction bias (a parameter without gradient: it is adjusted outside the optimizer).
class RouterImpl : public torch::nn::Module {
 public:
  RouterImpl(int64_t num_experts, int64_t hidden, bool correction_bias);
  at::Tensor weight;           // (E, H)
  at::Tensor correction_bias;  // (E) fp32, or undefined
};
TORCH_MODULE(Router);

// Router + routed experts (+ optional shared expert and its gate).
class MoeBlockImpl : public torch::nn::Module {
 public:
  explicit MoeBlockImpl(const ModelArch& arch);
  at::Tensor forward(const at::Tensor& x, MoeStats& stats);  // (B, T, H) -> (B, T, H)

 private:
  at::Tensor experts_forward(const at::Tensor& rows, const ops::Dispatch& d);

  ops::RouterParams router_;
  int64_t num_experts_;
  Router gate_{nullptr};
  torch::nn::ModuleList experts_{nullptr};
  Mlp shared_expert_{nullptr};
  Linear shared_expert_gate_{nullptr};
};
TORCH_MODULE(MoeBlock);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ModelArch& arch, int64_t layer);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const at::Tensor& key_mask, const ForwardOptions& options, MoeStats& stats);
  // forward() with activation checkpointing (recompute.cpp): runs without recording autograd
  // and keeps only the layer's inputs; the backward runs the layer again, recording, and
  // backpropagates through that. Same results; for autograd forwards without a KV cache.
  at::Tensor forward_recomputed(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                const at::Tensor& key_mask, const ForwardOptions& options,
                                MoeStats& stats);

 private:
  int64_t layer_, num_layers_;
  RMSNorm input_layernorm_{nullptr}, post_attention_layernorm_{nullptr};
  Attention self_attn_{nullptr};
  Mlp mlp_{nullptr};
  MoeBlock moe_{nullptr};
};
TORCH_MODULE(DecoderLayer);

// "model.*": embeddings, layers, final norm.
class DecoderImpl : public torch::nn::Module {
 public:
  explicit DecoderImpl(const ModelArch& arch);
  Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(Decoder);

class CausalLMImpl : public torch::nn::Module {
 public:
  explicit CausalLMImpl(ModelArch arch);
  // input_ids (B, T) int64.
  ForwardOutput forward(const at::Tensor& input_ids, const ForwardOptions& options = {});
  const ModelArch& arch() const { return arch_; }
  // (V, H): lm_head.weight, or the embedding matrix when tied.
  at::Tensor output_embedding() const;
  KVCache make_cache(int64_t batch, int64_t capacity) const;
  // Activation (gradient) checkpointing, trainer.gradient_checkpointing: forwards that record
  // autograd (grad mode on, no KV cache) keep each decoder layer's input only and recompute the
  // layer in the backward, trading about one more forward for the layers' activations.
  // Inference and no-grad forwards are unaffected.
  void set_gradient_checkpointing(bool on) { gradient_checkpointing_ = on; }
  bool gradient_checkpointing() const { return gradient_checkpointing_; }

 private:
  // The router statistics and losses of a forward into `out`.
  ForwardOutput finish_moe_outputs(ForwardOutput& out, const MoeStats& stats,
                                   bool router_losses) const;
  ModelArch arch_;
  ops::RopeTable rope_;
  Decoder model_{nullptr};
  Linear lm_head_{nullptr};
  bool gradient_checkpointing_ = false;
};
TORCH_MODULE(CausalLM);

}  // namespace grpo::model
