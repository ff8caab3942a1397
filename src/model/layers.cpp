// The dense parts of the decoder (norms, attention, MLP, decoder layer, causal LM) and the KV
// cache; the MoE block is in moe_block.cpp. See include/grpo/model/modules.h.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "grpo/core/error.h"
#include "grpo/model/modules.h"
#include "grpo/ops/attention.h"
#include "grpo/ops/rms_norm.h"
#include "grpo/ops/rope.h"

namespace grpo::model {

KVCache::KVCache(const ModelArch& arch, int64_t batch, int64_t capacity, at::TensorOptions options)
    : batch_(batch), capacity_(capacity) {
  GRPO_CHECK(batch > 0 && capacity > 0, "KVCache: batch and capacity must be positive");
  for (int64_t i = 0; i < arch.num_layers; ++i) {
    k_.push_back(at::zeros({batch, arch.num_kv_heads, capacity, arch.head_dim}, options));
    v_.push_back(at::zeros({batch, arch.num_kv_heads, capacity, arch.head_dim}, options));
  }
}

void KVCache::select(const at::Tensor& rows) {
  for (auto& t : k_) t = t.index_select(0, rows.to(t.device()));
  for (auto& t : v_) t = t.index_select(0, rows.to(t.device()));
  batch_ = rows.size(0);
}

std::pair<at::Tensor, at::Tensor> KVCache::append(int64_t layer, const at::Tensor& k,
                                                  const at::Tensor& v) {
  const int64_t t = k.size(2);
  GRPO_CHECK(length_ + t <= capacity_, "KV cache full: ", length_, " + ", t,
             " positions exceed its capacity ", capacity_);
  GRPO_CHECK(k.size(0) == batch_, "KV cache holds ", batch_, " sequences, input has ", k.size(0));
  k_[layer].narrow(2, length_, t).copy_(k);
  v_[layer].narrow(2, length_, t).copy_(v);
  return {k_[layer].narrow(2, 0, length_ + t), v_[layer].narrow(2, 0, length_ + t)};
}

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias) {
  weight = register_parameter("weight", torch::empty({out, in}));
  if (with_bias) bias = register_parameter("bias", torch::empty({out}));
}

at::Tensor LinearImpl::forward(const at::Tensor& x) {
  at::Tensor y = at::linear(x, weight, bias);
  if (has_lora() && lora_enabled) y = y + at::linear(at::linear(x, lora_a), lora_b) * lora_scale;
  return y;
}

at::Tensor LinearImpl::merged_weight() const {
  if (!has_lora()) return weight;
  // In fp32 whatever the dtype, rounded once at the end.
  const at::Tensor delta = at::mm(lora_b.to(at::kFloat), lora_a.to(at::kFloat)) * lora_scale;
  return (weight.to(at::kFloat) + delta).to(weight.scalar_type());
}

EmbeddingImpl::EmbeddingImpl(int64_t vocab, int64_t dim) {
  weight = register_parameter("weight", torch::empty({vocab, dim}));
}

at::Tensor EmbeddingImpl::forward(const at::Tensor& ids) { return at::embedding(weight, ids); }

RMSNormImpl::RMSNormImpl(int64_t dim, double eps, ops::KernelPolicy kernels)
    : eps_(eps), kernels_(kernels) {
  weight_ = register_parameter("weight", torch::ones({dim}));
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
  return ops::rms_norm(x, weight_, eps_, kernels_);
}

MlpImpl::MlpImpl(int64_t hidden, int64_t intermediate, bool bias, const std::string& gate_name,
                 const std::string& up_name, const std::string& down_name) {
  gate_ = register_module(gate_name, Linear(hidden, intermediate, bias));
  up_ = register_module(up_name, Linear(hidden, intermediate, bias));
  down_ = register_module(down_name, Linear(intermediate, hidden, bias));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  if (c10::InferenceMode::is_enabled() && x.device().is_cpu() && !gate_->bias.defined() &&
      !up_->bias.defined() && !down_->bias.defined() && !gate_->has_lora() && !up_->has_lora() &&
      !down_->has_lora()) {
    // Inference on the CPU (the rollout engine): the same products with the weights on the
    // left, W (out, in) x^T (in, rows). OpenBLAS runs this layout faster than x W^T, whose
    // transposed weight it repacks on every call (decode MLP of the benchmark model, 32 rows:
    // 763 -> 577 us, equal results). Autograd forwards (training) keep the form below.
    const at::Tensor xt = x.reshape({-1, x.size(-1)}).t();  // (in, rows)
    const at::Tensor a =
        at::silu(at::mm(gate_->weight, xt)) * at::mm(up_->weight, xt);  // (I, rows)
    std::vector<int64_t> sizes = x.sizes().vec();
    sizes.back() = down_->weight.size(0);
    return at::mm(down_->weight, a).t().reshape(sizes);
  }
  return down_(at::silu(gate_(x)) * up_(x));
}

AttentionImpl::AttentionImpl(const ModelArch& a, int64_t layer)
    : layer_(layer),
      num_heads_(a.num_heads),
      num_kv_heads_(a.num_kv_heads),
      head_dim_(a.head_dim),
      kernels_(a.kernels) {
  const int64_t h = a.hidden_size;
  q_proj_ = register_module("q_proj", Linear(h, num_heads_ * head_dim_, a.qkv_bias));
  k_proj_ = register_module("k_proj", Linear(h, num_kv_heads_ * head_dim_, a.qkv_bias));
  v_proj_ = register_module("v_proj", Linear(h, num_kv_heads_ * head_dim_, a.qkv_bias));
  o_proj_ = register_module("o_proj", Linear(num_heads_ * head_dim_, h, a.o_bias));
  if (a.qk_norm) {
    q_norm_ = register_module("q_norm", RMSNorm(head_dim_, a.rms_norm_eps, a.kernels));
    k_norm_ = register_module("k_norm", RMSNorm(head_dim_, a.rms_norm_eps, a.kernels));
  }
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                  const at::Tensor& key_mask, const ForwardOptions& o) {
  const int64_t b = x.size(0), t = x.size(1);
  // (B, T, H*D) -> (B, T, H, D); the q/k norms act per head, before the rotation.
  at::Tensor q = q_proj_(x).view({b, t, num_heads_, head_dim_});
  at::Tensor k = k_proj_(x).view({b, t, num_kv_heads_, head_dim_});
  at::Tensor v = v_proj_(x).view({b, t, num_kv_heads_, head_dim_}).transpose(1, 2);
  if (q_norm_) {
    q = q_norm_(q);
    k = k_norm_(k);
  }
  q = ops::apply_rope(q.transpose(1, 2), cos, sin, kernels_);  // (B, Hq, T, D)
  k = ops::apply_rope(k.transpose(1, 2), cos, sin, kernels_);  // (B, Hkv, T, D)
  if (o.record_prefix != nullptr) {
    o.record_prefix->keys[layer_] = k;
    o.record_prefix->values[layer_] = v;
  }
  if (o.cache != nullptr) {
    std::tie(k, v) = o.cache->append(layer_, k, v);  // (B, Hkv, S, D)
  } else if (o.prefix != nullptr) {
    k = at::cat({o.prefix->keys[layer_].index_select(0, o.prefix_rows), k}, 2);
    v = at::cat({o.prefix->values[layer_].index_select(0, o.prefix_rows), v}, 2);
  }
  const at::Tensor out =
      ops::causal_attention(q, k, v, 1.0 / std::sqrt(static_cast<double>(head_dim_)), key_mask,
                            kernels_);  // (B, Hq, T, D)
  return o_proj_(out.transpose(1, 2).reshape({b, t, num_heads_ * head_dim_}));
}

DecoderLayerImpl::DecoderLayerImpl(const ModelArch& a, int64_t layer)
    : layer_(layer), num_layers_(a.num_layers) {
  input_layernorm_ =
      register_module("input_layernorm", RMSNorm(a.hidden_size, a.rms_norm_eps, a.kernels));
  self_attn_ = register_module("self_attn", Attention(a, layer));
  post_attention_layernorm_ = register_module("post_attention_layernorm",
                                              RMSNorm(a.hidden_size, a.rms_norm_eps, a.kernels));
  if (a.is_moe_layer(layer)) {
    moe_ = register_module(a.moe_module_name, MoeBlock(a));
  } else {
    mlp_ = register_module("mlp", Mlp(a.hidden_size, a.intermediate_size, a.mlp_bias));
  }
}

at::Tensor DecoderLayerImpl::forward(const at::Tensor& x, const at::Tensor& cos,
                                     const at::Tensor& sin, const at::Tensor& key_mask,
                                     const ForwardOptions& options, MoeStats& stats) {
  const at::Tensor h = x + self_attn_(input_layernorm_(x), cos, sin, key_mask, options);
  const at::Tensor normed = post_attention_layernorm_(h);
  return h + (moe_ ? moe_->forward(normed, stats) : mlp_(normed));
}

DecoderImpl::DecoderImpl(const ModelArch& a) {
  embed_tokens = register_module("embed_tokens", Embedding(a.vocab_size, a.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < a.num_layers; ++i) layers->push_back(DecoderLayer(a, i));
  norm = register_module("norm", RMSNorm(a.hidden_size, a.rms_norm_eps, a.kernels));
}

CausalLMImpl::CausalLMImpl(ModelArch arch) : arch_(std::move(arch)) {
  rope_ = ops::rope_table(arch_.head_dim, arch_.max_position_embeddings, arch_.rope);
  model_ = register_module("model", Decoder(arch_));
  if (!arch_.tie_word_embeddings) {
    lm_head_ = register_module("lm_head", Linear(arch_.hidden_size, arch_.vocab_size, false));
  }
}

at::Tensor CausalLMImpl::output_embedding() const {
  return lm_head_ ? lm_head_->weight : model_->embed_tokens->weight;
}

KVCache CausalLMImpl::make_cache(int64_t batch, int64_t capacity) const {
  const at::Tensor w = model_->embed_tokens->weight;
  return KVCache(arch_, batch, capacity, w.options().requires_grad(false));
}

ForwardOutput CausalLMImpl::forward(const at::Tensor& input_ids, const ForwardOptions& o) {
  GRPO_CHECK(input_ids.dim() == 2, "forward: input_ids must be (B, T), got ", input_ids.sizes());
  const int64_t b = input_ids.size(0), t = input_ids.size(1);
  GRPO_CHECK(o.cache == nullptr || o.prefix == nullptr,
             "forward: a KV cache and a prefix cannot both be given");
  if (o.prefix != nullptr) {
    GRPO_CHECK(static_cast<int64_t>(o.prefix->keys.size()) == arch_.num_layers &&
                   o.prefix->values.size() == o.prefix->keys.size(),
               "forward: the prefix holds ", o.prefix->keys.size(), " layers, the model ",
               arch_.num_layers);
    GRPO_CHECK(o.prefix_rows.defined() && o.prefix_rows.dim() == 1 && o.prefix_rows.size(0) == b &&
                   o.prefix_rows.scalar_type() == at::kLong,
               "forward: prefix_rows must be (", b, ") int64");
  }
  if (o.record_prefix != nullptr) {
    o.record_prefix->keys.assign(static_cast<size_t>(arch_.num_layers), at::Tensor());
    o.record_prefix->values.assign(static_cast<size_t>(arch_.num_layers), at::Tensor());
  }
  const int64_t past = o.cache != nullptr    ? o.cache->length()
                       : o.prefix != nullptr ? o.prefix->length()
                                             : 0;
  at::Tensor positions = o.position_ids;
  if (!positions.defined()) {
    positions = at::arange(past, past + t, input_ids.options().dtype(at::kLong))
                    .unsqueeze(0)
                    .expand({b, t});
  }
  GRPO_CHECK(o.logits_to_keep >= 0, "forward: logits_to_keep must be >= 0, got ", o.logits_to_keep);
  GRPO_CHECK(positions.sizes() == input_ids.sizes(), "forward: position_ids ", positions.sizes(),
             " must match input_ids ", input_ids.sizes());
  at::Tensor key_mask;
  MoeStats stats;
  stats.want_losses = o.router_losses;
  if (o.attention_mask.defined()) {
    GRPO_CHECK(o.attention_mask.dim() == 2 && o.attention_mask.size(0) == b &&
                   o.attention_mask.size(1) == past + t,
               "forward: attention_mask must be (", b, ", ", past + t, "), got ",
               o.attention_mask.sizes());
    key_mask = o.attention_mask.to(at::kBool);
    stats.token_mask = key_mask.narrow(1, past, t).reshape({-1});
  }
  at::Tensor x = model_->embed_tokens(input_ids);                                // (B, T, H)
  const auto [cos, sin] = ops::rope_cos_sin(rope_, positions, x.scalar_type());  // (B, T, D)
  // The KV cache is inference only: a forward through it never recomputes.
  const bool recompute =
      gradient_checkpointing_ && at::GradMode::is_enabled() && o.cache == nullptr;
  for (const auto& layer : *model_->layers) {
    auto* decoder_layer = layer->as<DecoderLayer>();
    x = recompute ? decoder_layer->forward_recomputed(x, cos, sin, key_mask, o, stats)
                  : decoder_layer->forward(x, cos, sin, key_mask, o, stats);
  }
  if (o.cache != nullptr) o.cache->advance(t);
  ForwardOutput out;
  out.hidden = model_->norm(x);
  if (o.hidden_only) return finish_moe_outputs(out, stats, o.router_losses);
  const int64_t keep = o.logits_to_keep > 0 ? std::min(o.logits_to_keep, t) : t;
  const at::Tensor kept = keep == t ? out.hidden : out.hidden.narrow(1, t - keep, keep);
  at::Tensor weight_t = output_embedding().t();  // (H, V)
  if (o.output_weight_t.defined()) {
    GRPO_CHECK(o.output_weight_t.sizes() == weight_t.sizes(), "forward: output_weight_t must be ",
               weight_t.sizes(), ", got ", o.output_weight_t.sizes());
    weight_t = o.output_weight_t;
  }
  out.logits = at::matmul(kept, weight_t);  // (B, keep, V)
  return finish_moe_outputs(out, stats, o.router_losses);
}

ForwardOutput CausalLMImpl::finish_moe_outputs(ForwardOutput& out, const MoeStats& stats,
                                               bool router_losses) const {
  if (!stats.counts.empty()) {
    out.tokens_per_expert = at::stack(stats.counts);
    if (router_losses) {
      out.balance_loss = at::stack(stats.balance).mean();
      out.z_loss = at::stack(stats.z).mean();
      out.aux_loss =
          out.balance_loss * arch_.router_aux_loss_coef + out.z_loss * arch_.router_z_loss_coef;
    }
  }
  return std::move(out);
}

}  // namespace grpo::model
