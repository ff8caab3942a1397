// Activation checkpointing (CausalLM::set_gradient_checkpointing) against the ordinary autograd of
// the same model: equal outputs, loss and parameter gradients in float64 (dense and MoE, padding,
// a recorded prefix and rows continuing it, autocast), and the bytes a forward leaves allocated
// for the backward, counted through c10's memory-profiling hook, within what the layer inputs
// alone take.
#include <c10/core/Allocator.h>
#include <c10/util/ThreadLocalDebugInfo.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "grpo/core/config/model.h"
#include "grpo/model/checkpoint.h"
#include "grpo/model/config.h"
#include "grpo/torch_compat.h"

namespace gm = grpo::model;

namespace {

gm::CausalLM tiny_model(const std::string& type, at::ScalarType dtype, int64_t layers = 3,
                        int64_t intermediate = 48) {
  grpo::config::ModelArchitecture a;
  a.model_type = type;
  a.vocab_size = 40;
  a.hidden_size = 32;
  a.intermediate_size = static_cast<int>(intermediate);
  a.num_hidden_layers = static_cast<int>(layers);
  a.num_attention_heads = 4;
  a.num_key_value_heads = 2;
  a.tie_word_embeddings = false;
  if (type != "qwen2" && type != "qwen3") {
    a.num_experts = 4;
    a.num_experts_per_tok = 2;
    a.moe_intermediate_size = 16;
    a.shared_expert_intermediate_size = type == "qwen2_moe" ? 24 : 0;
    a.router_aux_loss_coef = 0.5;
    a.router_z_loss_coef = 0.25;
  }
  return gm::random_model(gm::arch_from_config(a, 0), 11, dtype);
}

double max_abs(const at::Tensor& t) { return t.abs().max().item<double>(); }

using Grads = std::map<std::string, at::Tensor>;

// Runs `loss_of(model)` and its backward; returns the loss and every parameter's gradient
// (undefined where none reached it).
std::pair<at::Tensor, Grads> loss_and_grads(gm::CausalLM& model, bool checkpointing,
                                            const std::function<at::Tensor()>& loss_of) {
  model->zero_grad();
  model->set_gradient_checkpointing(checkpointing);
  const at::Tensor loss = loss_of();
  loss.backward();
  Grads grads;
  for (const auto& p : model->named_parameters()) {
    grads[p.key()] = p.value().grad().defined() ? p.value().grad().clone() : at::Tensor();
  }
  return {loss.detach(), grads};
}

// Same loss, and each gradient within `tol` x (1 + its largest entry) of the ordinary autograd's.
void expect_same_gradients(gm::CausalLM& model, const std::function<at::Tensor()>& loss_of,
                           double tol) {
  const auto [loss, plain] = loss_and_grads(model, false, loss_of);
  const auto [loss_ckpt, ckpt] = loss_and_grads(model, true, loss_of);
  EXPECT_LT(std::abs(loss_ckpt.item<double>() - loss.item<double>()),
            tol * (1 + std::abs(loss.item<double>())));
  ASSERT_EQ(plain.size(), ckpt.size());
  int reached = 0;
  for (const auto& [name, g] : plain) {
    ASSERT_EQ(g.defined(), ckpt.at(name).defined()) << name;
    if (!g.defined()) continue;
    ++reached;
    EXPECT_LT(max_abs(ckpt.at(name) - g), tol * (1 + max_abs(g))) << name;
  }
  EXPECT_GT(reached, static_cast<int>(plain.size()) / 2);  // the loss reaches most parameters
}

// Two rows of 7 tokens, the second left-padded by 3.
struct Inputs {
  at::Tensor ids, mask, positions;
};
Inputs padded_inputs(int64_t vocab) {
  Inputs in;
  in.ids = at::randint(1, vocab, {2, 7}, at::kLong);
  in.mask = at::ones({2, 7}, at::kLong);
  in.mask[1].narrow(0, 0, 3).zero_();
  in.ids.masked_fill_(in.mask.eq(0), 0);
  in.positions = (in.mask.cumsum(1) - 1).clamp_min(0);
  return in;
}

// A fixed random weighting of the logits (real positions only) plus the router losses.
at::Tensor weighted_loss(gm::CausalLM& model, const Inputs& in, const at::Tensor& weights) {
  gm::ForwardOptions o;
  o.attention_mask = in.mask;
  o.position_ids = in.positions;
  o.router_losses = model->arch().is_moe();
  const gm::ForwardOutput out = model->forward(in.ids, o);
  at::Tensor loss = (out.logits.to(at::kDouble) * weights * in.mask.unsqueeze(2)).sum();
  if (out.aux_loss.defined()) loss = loss + out.aux_loss.to(at::kDouble);
  return loss;
}

// Bytes allocated and not yet freed since the guard started, and their peak, as c10's allocators
// report them to the (thread-local) memory profiler.
class AllocatedBytes : public c10::MemoryReportingInfoBase {
 public:
  // LibTorch 1.13 passes the totals as int64_t, 2.x as size_t: one of these overrides (so none
  // says `override`, which clang wants of all or none).
  void reportMemoryUsage(void*, int64_t size, int64_t, int64_t, c10::Device) { add(size); }
  void reportMemoryUsage(void*, int64_t size, size_t, size_t, c10::Device) { add(size); }
  bool memoryProfilingEnabled() const { return true; }  // (no `override`: see above)
  int64_t live = 0, peak = 0;

 private:
  void add(int64_t size) {
    live += size;
    peak = std::max(peak, live);
  }
};

}  // namespace

TEST(GradientCheckpointing, DenseSameLossAndGradientsWithPadding) {
  torch::manual_seed(1);
  for (const char* type : {"qwen2", "qwen3"}) {
    auto model = tiny_model(type, at::kDouble);
    const Inputs in = padded_inputs(40);
    const at::Tensor w = at::randn({2, 7, 40}, at::kDouble);
    expect_same_gradients(
        model, [&] { return weighted_loss(model, in, w); }, 1e-10);
  }
}

TEST(GradientCheckpointing, MoeSameLossGradientsAndRouterStatistics) {
  torch::manual_seed(2);
  for (const char* type : {"qwen2_moe", "mixtral"}) {
    auto model = tiny_model(type, at::kDouble);
    const Inputs in = padded_inputs(40);
    const at::Tensor w = at::randn({2, 7, 40}, at::kDouble);
    expect_same_gradients(
        model, [&] { return weighted_loss(model, in, w); }, 1e-10);
    // The statistics come from the forward, once per layer, and count real tokens only.
    gm::ForwardOptions o;
    o.attention_mask = in.mask;
    o.position_ids = in.positions;
    o.router_losses = true;
    model->set_gradient_checkpointing(false);
    const auto plain = model->forward(in.ids, o);
    model->set_gradient_checkpointing(true);
    const auto ckpt = model->forward(in.ids, o);
    EXPECT_TRUE(at::equal(plain.tokens_per_expert, ckpt.tokens_per_expert)) << type;
    EXPECT_EQ(ckpt.tokens_per_expert.sum().item<int64_t>(), 3 * 11 * 2) << type;
    EXPECT_NEAR(ckpt.balance_loss.item<double>(), plain.balance_loss.item<double>(), 1e-12);
    EXPECT_NEAR(ckpt.z_loss.item<double>(), plain.z_loss.item<double>(), 1e-12);
    EXPECT_TRUE(ckpt.aux_loss.requires_grad());
  }
}

// The shared-prompt path: the prompts' forward records every layer's keys and values (autograd
// outputs), rows continue them; the loss reaches the prompts' layers only through the prefix.
TEST(GradientCheckpointing, RecordedPrefixAndContinuingRows) {
  torch::manual_seed(3);
  for (const char* type : {"qwen2", "qwen2_moe"}) {
    auto model = tiny_model(type, at::kDouble);
    const Inputs prompts = padded_inputs(40);                      // 2 prompts, P = 7
    const at::Tensor rows = at::tensor({0, 1, 1}, at::kLong);      // 3 rows continue them
    const at::Tensor ids = at::randint(1, 40, {3, 4}, at::kLong);  // 4 tokens each, row 2 has 2
    at::Tensor own = at::ones({3, 4}, at::kLong);
    own[2].narrow(0, 2, 2).zero_();
    const at::Tensor w_prompt = at::randn({2, 7, 32}, at::kDouble);
    const at::Tensor w_rows = at::randn({3, 4, 32}, at::kDouble);
    const auto loss_of = [&] {
      gm::PrefixKV kv;
      gm::ForwardOptions p;
      p.attention_mask = prompts.mask;
      p.position_ids = prompts.positions;
      p.record_prefix = &kv;
      p.hidden_only = true;
      p.router_losses = true;
      const auto prompt_out = model->forward(prompts.ids, p);
      gm::ForwardOptions c;
      c.prefix = &kv;
      c.prefix_rows = rows;
      c.attention_mask = at::cat({prompts.mask.index_select(0, rows), own}, 1);
      c.position_ids = prompts.positions.index_select(0, rows).select(1, 6).unsqueeze(1) + 1 +
                       at::arange(4, at::kLong).unsqueeze(0);
      c.hidden_only = true;
      c.router_losses = true;
      const auto row_out = model->forward(ids, c);
      at::Tensor loss = (prompt_out.hidden * w_prompt * prompts.mask.unsqueeze(2)).sum() +
                        (row_out.hidden * w_rows * own.unsqueeze(2)).sum();
      if (row_out.aux_loss.defined()) loss = loss + prompt_out.aux_loss + row_out.aux_loss;
      return loss;
    };
    expect_same_gradients(model, loss_of, 1e-10);
  }
}

// The backward runs outside the autocast region (as the trainer's does) or inside it: the
// recompute casts as the forward did either way.
TEST(GradientCheckpointing, RecomputesUnderTheForwardsAutocast) {
  torch::manual_seed(4);
  for (const char* type : {"qwen2", "qwen2_moe"}) {
    auto model = tiny_model(type, at::kFloat);
    const Inputs in = padded_inputs(40);
    const at::Tensor w = at::randn({2, 7, 40}, at::kDouble);
    for (bool backward_inside : {false, true}) {
      const auto run = [&](bool checkpointing) {
        model->zero_grad();
        model->set_gradient_checkpointing(checkpointing);
        at::Tensor loss;
        {
          grpo::compat::AutocastGuard amp(at::kCPU, at::kBFloat16, true);
          loss = weighted_loss(model, in, w);
          if (backward_inside) loss.backward();
        }
        if (!backward_inside) loss.backward();
        Grads grads;
        for (const auto& p : model->named_parameters()) {
          if (p.value().grad().defined()) grads[p.key()] = p.value().grad().clone();
        }
        return std::make_pair(loss.item<double>(), grads);
      };
      const auto [loss, plain] = run(false);
      const auto [loss_ckpt, ckpt] = run(true);
      EXPECT_EQ(loss_ckpt, loss) << type;
      ASSERT_EQ(plain.size(), ckpt.size()) << type;
      for (const auto& [name, g] : plain) {
        ASSERT_TRUE(ckpt.count(name)) << name;
        // The same bfloat16 products in the same order: equal up to float32 accumulation, far
        // below the bfloat16 rounding (4e-3) a recompute in float32 would show.
        EXPECT_LT(max_abs(ckpt.at(name) - g), 1e-5 * (1 + max_abs(g)))
            << type << " " << name << (backward_inside ? " (backward inside)" : "");
      }
    }
  }
}

TEST(GradientCheckpointing, DoubleBackwardIsRefused) {
  auto model = tiny_model("qwen2", at::kDouble, 1);
  model->set_gradient_checkpointing(true);
  const Inputs in = padded_inputs(40);
  const at::Tensor loss = weighted_loss(model, in, at::ones({2, 7, 40}, at::kDouble));
  try {
    torch::autograd::grad({loss}, {model->parameters().front()}, {}, true, /*create_graph=*/true);
    ADD_FAILURE() << "create_graph accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("double backward"), std::string::npos) << e.what();
  }
}

TEST(GradientCheckpointing, NoGradAndInferenceForwardsUnchanged) {
  auto model = tiny_model("qwen2", at::kDouble);
  const Inputs in = padded_inputs(40);
  gm::ForwardOptions o;
  o.attention_mask = in.mask;
  // Inference mode has fast paths of its own: each kind of forward against itself.
  const auto logits = [&](bool checkpointing, bool inference) {
    model->set_gradient_checkpointing(checkpointing);
    if (inference) {
      c10::InferenceMode mode;
      return model->forward(in.ids, o).logits;
    }
    torch::NoGradGuard no_grad;
    return model->forward(in.ids, o).logits;
  };
  for (bool inference : {false, true}) {
    const at::Tensor plain = logits(false, inference), ckpt = logits(true, inference);
    EXPECT_TRUE(at::equal(ckpt, plain)) << inference;
    EXPECT_FALSE(ckpt.requires_grad());
  }
}

// The data-parallel reducer starts a bucket's all-reduce from post hooks on the parameters'
// gradient accumulators (src/dist/gradient_reducer.cpp): every gradient of a recomputed layer
// must pass through its accumulator, once per backward, not be written into .grad beside it.
// (The reducer's finish() reduces every bucket anyway: the hooks are what lets them overlap.)
TEST(GradientCheckpointing, ParameterGradientsPassThroughTheirAccumulators) {
  auto model = tiny_model("qwen2_moe", at::kDouble);
  const Inputs in = padded_inputs(40);
  const at::Tensor w = at::randn({2, 7, 40}, at::kDouble);
  std::map<std::string, int> calls;
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks;
  for (const auto& p : model->named_parameters()) {
    if (!p.value().requires_grad()) continue;
    auto accumulator = torch::autograd::impl::grad_accumulator(p.value());
    const std::string name = p.key();
    hooks.emplace_back(
        accumulator,
        accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
            [&calls, name](const torch::autograd::variable_list& outputs,
                           const torch::autograd::variable_list& grads) {
              // The engine runs the accumulator even with no gradient for it.
              if (!grads.empty() && grads.front().defined()) ++calls[name];
              return outputs;
            })));
  }
  model->set_gradient_checkpointing(true);
  weighted_loss(model, in, w).backward();
  int reached = 0;
  for (const auto& p : model->named_parameters()) {
    if (!p.value().requires_grad() || !p.value().grad().defined()) continue;
    ++reached;
    EXPECT_EQ(calls[p.key()], 1) << p.key();
  }
  EXPECT_GT(reached, 0);
  for (auto& [accumulator, key] : hooks) accumulator->del_post_hook(key);
}

// What a training forward leaves allocated for its backward. Ordinary autograd keeps each
// layer's intermediates (attention probabilities, the MLP's (B, T, I) activations, ...); with
// checkpointing a layer keeps only its input, so the forward leaves about L + 2 hidden states
// (B, T, H): the layers' inputs, the final norm's input and the output, plus the rotary tables
// and the norm's per-row statistics.
TEST(GradientCheckpointing, ForwardKeepsOnlyTheLayerInputs) {
  const int64_t layers = 4, b = 2, t = 64, h = 32, intermediate = 256, head_dim = 8;
  auto model = tiny_model("qwen2", at::kFloat, layers, intermediate);
  const at::Tensor ids = at::randint(1, 40, {b, t}, at::kLong);
  const auto retained = [&](bool checkpointing) {
    model->zero_grad();
    model->set_gradient_checkpointing(checkpointing);
    gm::ForwardOptions o;
    o.hidden_only = true;
    at::Tensor hidden;
    auto bytes = std::make_shared<AllocatedBytes>();
    {
      c10::DebugInfoGuard guard(c10::DebugInfoKind::PROFILER_STATE, bytes);
      hidden = model->forward(ids, o).hidden;
    }
    const int64_t kept = bytes->live;
    hidden.sum().backward();  // the graph was complete
    EXPECT_GT(model->named_parameters()["model.layers.0.mlp.up_proj.weight"]
                  .grad()
                  .abs()
                  .sum()
                  .item<double>(),
              0.0);
    return kept;
  };
  const int64_t plain = retained(false), ckpt = retained(true);
  const int64_t state = b * t * h * 4;  // one (B, T, H) float32 hidden state
  const int64_t bound = (layers + 2) * state + 2 * b * t * head_dim * 4 + b * t * (4 + 8) + 4096;
  std::printf("  forward leaves %lld bytes (checkpointing) vs %lld (ordinary autograd)\n",
              static_cast<long long>(ckpt), static_cast<long long>(plain));
  EXPECT_GT(ckpt, 0);
  EXPECT_LE(ckpt, bound);
  // Each layer's MLP alone keeps three (B, T, I) activations without checkpointing.
  EXPECT_GT(plain, layers * 3 * b * t * intermediate * 4);
}
