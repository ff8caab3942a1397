// Model-level checks of the CUDA kernels as the model itself calls them, shared by the GPU tests
// (cuda_kernels_test.cpp) and the emulated device (tests/emu/model_emu_test.cpp, whose ops and
// model layers are compiled with the emulated kernels linked): a model with every fused path on
// (KernelPolicy::all) against the same model on the reference path in its dtype and in float32,
// under kernel_checks.h's rule. Three uses: the logits of a forward, incremental decoding through
// the KV cache as the rollout engine runs it, and the parameter gradients of a training forward
// with shared prompts as the GRPO update runs it (also with LoRA adapters and activation
// checkpointing: lora_with_checkpointing()).
#pragma once

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "grpo/core/config/model.h"
#include "grpo/model/checkpoint.h"
#include "grpo/model/config.h"
#include "grpo/model/lora.h"
#include "grpo/model/modules.h"
#include "kernel_checks.h"

namespace grpo::kernel_checks {

// A Qwen3-MoE-shaped model (q/k norms, grouped-query attention, every layer MoE) with a head dim
// the kernels take. Every expert for every token: with top-k below the expert count a near tie
// between the k-th and the next expert flips under bfloat16 rounding, differently in the bf16
// reference and in the kernel path, and one flip dominates the maximum error; the ratio of two
// such errors is no test of the kernels. Selection and empty experts are the routing and
// dispatch checks' business.
struct TinyModel {
  int64_t vocab = 256, hidden = 256, heads = 4, kv_heads = 2, layers = 2, experts = 8,
          moe_intermediate = 128;

  model::ModelArch arch(ops::KernelPolicy policy) const {
    config::ModelArchitecture a;
    a.vocab_size = vocab;
    a.hidden_size = hidden;
    a.num_attention_heads = heads;
    a.num_key_value_heads = kv_heads;
    a.intermediate_size = 2 * hidden;
    a.num_hidden_layers = layers;
    a.num_experts = experts;
    a.num_experts_per_tok = experts;
    a.model_type = "qwen3_moe";
    a.moe_intermediate_size = moe_intermediate;
    model::ModelArch arch = model::arch_from_config(a, vocab);
    arch.kernels = policy;
    return arch;
  }
};

// The three models of every check, from the same weights: reference float32, reference in
// `dtype`, and `kernels` (the kernels' policy: `all`, or `automatic` once it takes them) in
// `dtype`.
inline std::vector<std::pair<at::ScalarType, ops::KernelPolicy>> model_runs(
    at::ScalarType dtype, ops::KernelPolicy kernels = ops::KernelPolicy::all) {
  return {{at::kFloat, ops::KernelPolicy::reference},
          {dtype, ops::KernelPolicy::reference},
          {dtype, kernels}};
}

inline model::CausalLM make_model(const TinyModel& tm, ops::KernelPolicy policy, at::Device device,
                                  at::ScalarType dtype) {
  model::CausalLM m = model::random_model(tm.arch(policy), 11, at::kFloat);
  m->to(device);
  m->to(dtype);
  return m;
}

// Runs `fn` on each of the three models; returns its outputs in model_runs' order.
inline std::vector<at::Tensor> on_each_model(const TinyModel& tm, at::Device device,
                                             at::ScalarType dtype,
                                             const std::function<at::Tensor(model::CausalLM&)>& fn,
                                             ops::KernelPolicy kernels = ops::KernelPolicy::all) {
  std::vector<at::Tensor> out;
  for (const auto& [dt, policy] : model_runs(dtype, kernels)) {
    model::CausalLM m = make_model(tm, policy, device, dt);
    out.push_back(fn(m));
  }
  return out;
}

// Left padding per row as a (B, L) int64 mask, and the positions the rollout engine gives such
// rows (0 at the first real token).
inline std::pair<at::Tensor, at::Tensor> left_padded(const std::vector<int64_t>& pads, int64_t len,
                                                     at::Device device) {
  at::Tensor mask = at::ones({static_cast<int64_t>(pads.size()), len}, at::kLong);
  for (size_t i = 0; i < pads.size(); ++i)
    mask[static_cast<int64_t>(i)].narrow(0, 0, pads[i]).zero_();
  mask = mask.to(device);
  return {mask, (mask.cumsum(1) - 1).clamp_min(0)};
}

// Logits of one forward over (2, t) tokens, the kernels taken under `kernels`.
inline void check_model_logits(const TinyModel& tm, at::Device device, int64_t t,
                               ops::KernelPolicy kernels = ops::KernelPolicy::all) {
  at::manual_seed(5);
  const at::Tensor ids = at::randint(0, tm.vocab, {2, t}, at::kLong).to(device);
  const auto logits = on_each_model(
      tm, device, at::kBFloat16,
      [&](model::CausalLM& m) {
        torch::NoGradGuard no_grad;
        return m->forward(ids).logits;
      },
      kernels);
  expect_within("logits", logits[2], logits[1], logits[0], kFwdMultiple);
}

// A left-padded prefill of `prompt` tokens into a KV cache with room to spare (the kernels see
// a prefix of each layer's cache buffer), then `steps` decode steps of one token each, as the
// rollout engine runs them: the prefill's last logits and every step's, compared.
inline void check_model_decode(const TinyModel& tm, at::Device device, int64_t prompt,
                               int64_t steps) {
  at::manual_seed(6);
  const int64_t total = prompt + steps;
  const at::Tensor ids = at::randint(0, tm.vocab, {2, total}, at::kLong).to(device);
  const auto [mask, positions] = left_padded({5, 0}, total, device);
  const auto logits = on_each_model(tm, device, at::kBFloat16, [&](model::CausalLM& m) {
    torch::NoGradGuard no_grad;
    model::KVCache cache = m->make_cache(2, total + 9);
    std::vector<at::Tensor> out;
    for (int64_t s = 0; s < total; s += (s == 0 ? prompt : 1)) {
      const int64_t n = s == 0 ? prompt : 1;
      model::ForwardOptions fo;
      fo.cache = &cache;
      fo.position_ids = positions.narrow(1, s, n);
      fo.attention_mask = mask.narrow(1, 0, s + n);
      fo.logits_to_keep = 1;
      out.push_back(m->forward(ids.narrow(1, s, n), fo).logits);  // (2, 1, V)
    }
    return at::cat(out, 1);  // (2, steps + 1, V)
  });
  expect_within("decode logits", logits[2], logits[1], logits[0], kFwdMultiple);
}

// The training forward of the GRPO update with shared prompts (train/shared_prompts.cpp): each
// of 2 left-padded prompts once, recording its keys and values with autograd; 2 completions of
// each (right-padded) attend to them through ForwardOptions::prefix. The loss is the token
// log-likelihood of both forwards' real tokens; its gradient for every parameter, each scaled
// by the float32 reference's largest entry and all concatenated, is compared.
// Applied to each model of a check before it runs (LoRA adapters, activation checkpointing).
using ModelSetup = std::function<void(model::CausalLM&)>;

// `setup` (optional) changes each model first; the gradients compared are those of the
// parameters that train (all of them, or the adapters under LoRA).
inline void check_model_training(const TinyModel& tm, at::Device device, int64_t prompt,
                                 int64_t completion, const ModelSetup& setup = {}) {
  at::manual_seed(7);
  const at::Tensor prompt_ids = at::randint(0, tm.vocab, {2, prompt}, at::kLong).to(device);
  const at::Tensor ids = at::randint(0, tm.vocab, {4, completion}, at::kLong).to(device);
  const auto [prompt_mask, prompt_positions] = left_padded({3, 0}, prompt, device);
  const at::Tensor rows = at::tensor(std::vector<int64_t>{0, 0, 1, 1}, at::kLong).to(device);
  at::Tensor real = at::ones({4, completion}, at::kLong);
  real[1].narrow(0, completion - 6, 6).zero_();
  real[2].narrow(0, completion - 1, 1).zero_();
  real = real.to(device);
  const at::Tensor positions =
      prompt_positions.select(1, prompt - 1).index_select(0, rows).unsqueeze(1) + 1 +
      at::arange(completion, at::TensorOptions(at::kLong).device(device)).unsqueeze(0);
  // Sum of log p(token t+1 | ..t) over the real tokens of (B, T, V) logits.
  const auto loglik = [](const at::Tensor& logits, const at::Tensor& tokens, const at::Tensor& m) {
    const at::Tensor lp =
        at::log_softmax(logits.narrow(1, 0, logits.size(1) - 1).to(at::kFloat), -1)
            .gather(2, tokens.narrow(1, 1, tokens.size(1) - 1).unsqueeze(2))
            .squeeze(2);
    const at::Tensor both = (m.narrow(1, 0, m.size(1) - 1) * m.narrow(1, 1, m.size(1) - 1));
    return (lp * both.to(at::kFloat)).sum();
  };
  std::vector<int64_t> sizes;  // the parameters' element counts (the same in every model)
  const auto grads = on_each_model(tm, device, at::kBFloat16, [&](model::CausalLM& m) {
    if (setup) setup(m);
    model::PrefixKV prefix;
    model::ForwardOptions po;
    po.attention_mask = prompt_mask;
    po.position_ids = prompt_positions;
    po.record_prefix = &prefix;
    const at::Tensor prompt_logits = m->forward(prompt_ids, po).logits;
    model::ForwardOptions co;
    co.prefix = &prefix;
    co.prefix_rows = rows;
    co.attention_mask = at::cat({prompt_mask.index_select(0, rows), real}, 1);
    co.position_ids = positions;
    const at::Tensor logits = m->forward(ids, co).logits;
    const at::Tensor loss =
        -(loglik(prompt_logits, prompt_ids, prompt_mask) + loglik(logits, ids, real)) / 100.0;
    loss.backward();
    sizes.clear();
    std::vector<at::Tensor> flat;
    for (const auto& p : m->parameters()) {
      if (!p.requires_grad()) continue;
      EXPECT_TRUE(p.grad().defined());
      sizes.push_back(p.numel());
      flat.push_back(
          (p.grad().defined() ? p.grad() : at::zeros_like(p)).to(at::kFloat).reshape(-1));
    }
    return at::cat(flat);  // every parameter's gradient, in parameter order
  });
  std::vector<at::Tensor> scales;
  for (const at::Tensor& g : grads[0].split_with_sizes(sizes)) {
    scales.push_back(g.abs().max().clamp_min(1e-12).expand(g.sizes()));
  }
  const at::Tensor scale = at::cat(scales);
  expect_within("parameter gradients", grads[2] / scale, grads[1] / scale, grads[0] / scale,
                kBwdMultiple);
}

// LoRA adapters on every projection (rank 8, B drawn from a fixed CPU generator so that the three
// models get the same adapters) and activation checkpointing: the training check's setup.
inline ModelSetup lora_with_checkpointing() {
  return [](model::CausalLM& m) {
    model::LoraSpec spec;
    spec.rank = 8;
    spec.targets = {"q_proj", "k_proj", "v_proj", "o_proj"};
    spec.seed = 5;
    model::attach_lora(m, spec);
    torch::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(6);
    for (auto& p : m->parameters()) {
      if (p.requires_grad() && p.size(1) == spec.rank) {  // B (out, rank)
        p.copy_(at::empty(p.sizes(), at::kFloat).normal_(0, 0.05, gen));
      }
    }
    m->set_gradient_checkpointing(true);
  };
}

}  // namespace grpo::kernel_checks
