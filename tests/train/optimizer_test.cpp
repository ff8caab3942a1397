// AdamW groups and update (vs the published AdamW formula, by hand), the LR schedule at chosen
// steps, gradient clipping, optimizer state round trip, the NaN/Inf guard and RNG state.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "grpo/core/error.h"
#include "grpo/torch_compat.h"
#include "grpo/train/checkpoint.h"
#include "grpo/train/nonfinite_guard.h"
#include "grpo/train/optimizer.h"

namespace fs = std::filesystem;
using grpo::train::NamedParameters;

namespace {

grpo::config::TrainerConfig trainer_config() {
  grpo::config::TrainerConfig c;
  c.lr = 0.1;
  c.weight_decay = 0.01;
  c.adam_beta1 = 0.9;
  c.adam_beta2 = 0.999;
  c.adam_eps = 1e-8;
  return c;
}

at::Tensor param(std::vector<double> values) {
  return torch::tensor(values, torch::kFloat64).requires_grad_(true);
}

void set_grad(at::Tensor& p, std::vector<double> values) {
  p.mutable_grad() = torch::tensor(values, p.options().requires_grad(false));
}

// The optimizer's per-parameter state.
template <class Map>
torch::optim::AdamWParamState& adam_state(Map& states, const at::Tensor& p) {
  return static_cast<torch::optim::AdamWParamState&>(
      *states.at(grpo::compat::optimizer_state_key<Map>(p)));
}

}  // namespace

TEST(WeightDecay, ChosenByHuggingFaceName) {
  using grpo::train::uses_weight_decay;
  EXPECT_TRUE(uses_weight_decay("model.layers.0.self_attn.q_proj.weight"));
  EXPECT_TRUE(uses_weight_decay("model.embed_tokens.weight"));
  EXPECT_TRUE(uses_weight_decay("lm_head.weight"));
  EXPECT_TRUE(uses_weight_decay("model.layers.3.mlp.gate.weight"));  // MoE router
  EXPECT_FALSE(uses_weight_decay("model.layers.0.self_attn.q_proj.bias"));
  EXPECT_FALSE(uses_weight_decay("model.layers.0.input_layernorm.weight"));
  EXPECT_FALSE(uses_weight_decay("model.layers.0.post_attention_layernorm.weight"));
  EXPECT_FALSE(uses_weight_decay("model.layers.0.self_attn.q_norm.weight"));
  EXPECT_FALSE(uses_weight_decay("model.norm.weight"));
  EXPECT_FALSE(uses_weight_decay("transformer.ln_f.weight"));
  EXPECT_FALSE(uses_weight_decay("model.layers.1.mlp.gate.e_score_correction_bias"));
  EXPECT_TRUE(uses_weight_decay("model.normalizer_free.weight"));  // not a norm module
}

// One AdamW step from the formula (Loshchilov & Hutter; torch.optim.AdamW):
//   p <- p * (1 - lr * wd); m = (1 - b1) g; v = (1 - b2) g^2
//   p <- p - lr * (m / (1 - b1)) / (sqrt(v / (1 - b2)) + eps)
TEST(AdamW, GroupsApplyDecayOnlyToWeights) {
  at::Tensor w = param({1.0, -2.0});
  at::Tensor b = param({1.0});
  const NamedParameters params{{"layer.weight", w}, {"layer.bias", b}};
  auto opt = grpo::train::make_adamw(params, trainer_config());
  ASSERT_EQ(opt->param_groups().size(), 2u);
  EXPECT_EQ(opt->param_groups()[0].params().size(), 1u);
  set_grad(w, {0.5, -0.25});
  set_grad(b, {0.5});
  opt->step();
  auto expected = [](double p, double g, double wd) {
    const double lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    p *= 1 - lr * wd;
    const double m = (1 - b1) * g, v = (1 - b2) * g * g;
    return p - lr * (m / (1 - b1)) / (std::sqrt(v / (1 - b2)) + eps);
  };
  EXPECT_NEAR(w[0].item<double>(), expected(1.0, 0.5, 0.01), 1e-12);
  EXPECT_NEAR(w[1].item<double>(), expected(-2.0, -0.25, 0.01), 1e-12);
  EXPECT_NEAR(b[0].item<double>(), expected(1.0, 0.5, 0.0), 1e-12);
  EXPECT_NEAR(w[0].item<double>(), 0.899, 1e-6);  // 1 * (1 - 0.001) - 0.1
  EXPECT_NEAR(b[0].item<double>(), 0.9, 1e-6);
}

TEST(Schedule, WarmupThenCosineMatchesHandValues) {
  grpo::config::TrainerConfig c;
  c.lr = 1e-3;
  c.steps = 20;
  c.warmup_steps = 4;
  c.lr_schedule = grpo::config::LrSchedule::cosine;
  using grpo::train::learning_rate;
  EXPECT_NEAR(learning_rate(c, 0), 2.5e-4, 1e-15);            // 1/4 of peak
  EXPECT_NEAR(learning_rate(c, 2), 7.5e-4, 1e-15);            // 3/4
  EXPECT_NEAR(learning_rate(c, 3), 1e-3, 1e-15);              // warm-up done
  EXPECT_NEAR(learning_rate(c, 4), 1e-3, 1e-15);              // cosine progress 0
  EXPECT_NEAR(learning_rate(c, 8), 0.8535533906e-3, 1e-12);   // progress 1/4: (1 + 1/sqrt2) / 2
  EXPECT_NEAR(learning_rate(c, 12), 0.5e-3, 1e-15);           // progress 1/2
  EXPECT_NEAR(learning_rate(c, 19), 0.0096073598e-3, 1e-12);  // progress 15/16
  EXPECT_NEAR(learning_rate(c, 20), 0.0, 1e-18);
  EXPECT_NEAR(learning_rate(c, 25), 0.0, 1e-18);
  c.lr_schedule = grpo::config::LrSchedule::constant;
  EXPECT_NEAR(learning_rate(c, 1), 5e-4, 1e-15);
  EXPECT_EQ(learning_rate(c, 10), 1e-3);
  c.warmup_steps = 0;
  EXPECT_EQ(learning_rate(c, 0), 1e-3);
}

TEST(Schedule, SetLearningRateReachesEveryGroup) {
  at::Tensor w = param({1.0}), b = param({1.0});
  auto opt = grpo::train::make_adamw({{"a.weight", w}, {"a.bias", b}}, trainer_config());
  grpo::train::set_learning_rate(*opt, 0.125);
  for (auto& g : opt->param_groups()) EXPECT_EQ(g.options().get_lr(), 0.125);
}

TEST(Clip, ScalesToMaxNormAndReturnsPreClipNorm) {
  at::Tensor a = param({0, 0}), b = param({0});
  set_grad(a, {3, 4});
  set_grad(b, {12});
  const NamedParameters params{{"a", a}, {"b", b}};
  EXPECT_NEAR(grpo::train::clip_grad_norm(params, 0.0), 13.0, 1e-6);  // measure only
  EXPECT_EQ(a.grad()[0].item<double>(), 3.0);
  EXPECT_NEAR(grpo::train::clip_grad_norm(params, 100.0), 13.0, 1e-6);
  EXPECT_EQ(b.grad()[0].item<double>(), 12.0);
  EXPECT_NEAR(grpo::train::clip_grad_norm(params, 1.3), 13.0, 1e-6);
  const double scale = 1.3 / (13.0 + 1e-6);
  EXPECT_NEAR(a.grad()[0].item<double>(), 3 * scale, 1e-6);
  EXPECT_NEAR(a.grad()[1].item<double>(), 4 * scale, 1e-6);
  EXPECT_NEAR(b.grad()[0].item<double>(), 12 * scale, 1e-6);
  EXPECT_NEAR(grpo::train::clip_grad_norm(params, 0.0), 1.3, 1e-5);
}

TEST(Clip, Bf16GradientsAccumulateInFloat) {
  // 4096 gradients of 1: norm 64. A bf16 sum of squares would stall at 256 (8 mantissa bits).
  at::Tensor p = torch::zeros({4096}, torch::kBFloat16).requires_grad_(true);
  p.mutable_grad() = torch::ones({4096}, torch::kBFloat16);
  EXPECT_NEAR(grpo::train::clip_grad_norm(std::vector<at::Tensor>{p}, 0.0), 64.0, 1e-3);
}

TEST(OptimizerState, AdamMomentsRoundTripThroughFile) {
  torch::manual_seed(3);
  torch::nn::Linear model(4, 3);
  auto params = grpo::train::trainable_parameters(*model);
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].first, "weight");
  auto opt = grpo::train::make_adamw(params, trainer_config());
  const at::Tensor x = torch::randn({5, 4});
  for (int i = 0; i < 3; ++i) {
    opt->zero_grad();
    model(x).pow(2).sum().backward();
    opt->step();
  }
  const fs::path path =
      fs::temp_directory_path() / ("grpo_optimizer_" + std::to_string(getpid()) + ".pt");
  grpo::train::save_optimizer(*opt, path.string());

  torch::nn::Linear copy(4, 3);
  {
    torch::NoGradGuard no_grad;
    copy->weight.copy_(model->weight);
    copy->bias.copy_(model->bias);
  }
  auto copy_params = grpo::train::trainable_parameters(*copy);
  auto restored = grpo::train::make_adamw(copy_params, trainer_config());
  grpo::train::load_optimizer(*restored, path.string());
  for (size_t i = 0; i < params.size(); ++i) {
    auto& s0 = adam_state(opt->state(), params[i].second);
    auto& s1 = adam_state(restored->state(), copy_params[i].second);
    EXPECT_EQ(s0.step(), 3);
    EXPECT_EQ(s1.step(), 3);
    EXPECT_TRUE(torch::equal(s0.exp_avg(), s1.exp_avg())) << params[i].first;
    EXPECT_TRUE(torch::equal(s0.exp_avg_sq(), s1.exp_avg_sq())) << params[i].first;
    EXPECT_GT(s0.exp_avg_sq().abs().sum().item<double>(), 0.0);
  }
  // The next step is bit-identical.
  auto step_once = [&](torch::optim::AdamW& o, torch::nn::Linear& m) {
    o.zero_grad();
    m(x).pow(2).sum().backward();
    o.step();
  };
  step_once(*opt, model);
  step_once(*restored, copy);
  EXPECT_TRUE(torch::equal(model->weight, copy->weight));
  EXPECT_TRUE(torch::equal(model->bias, copy->bias));
  fs::remove(path);
}

TEST(OptimizerState, LoadingAMissingFileNamesIt) {
  at::Tensor w = param({1.0});
  auto opt = grpo::train::make_adamw({{"w", w}}, trainer_config());
  try {
    grpo::train::load_optimizer(*opt, "/nonexistent/optimizer.pt");
    FAIL() << "expected an error";
  } catch (const grpo::Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/optimizer.pt"), std::string::npos);
  }
}

// The host-side form: a finite loss and gradient norm pass without a scan; a non-finite norm
// falls back to the scan, which passes finite gradients (an overflowed fp32 norm) and catches a
// NaN one.
TEST(NonFiniteGuard, HostLossAndNormSkipTheScanOnlyWhenFinite) {
  at::Tensor a = param({1, 2});
  const NamedParameters params{{"model.a.weight", a}};
  const double inf = std::numeric_limits<double>::infinity();
  grpo::train::NonFiniteGuard guard(2);
  set_grad(a, {0.1, 0.2});
  EXPECT_TRUE(guard.check(1, 1.5, 0.2236, params));
  EXPECT_TRUE(guard.check(2, 1.5, inf, params));  // overflowed norm, finite gradients
  EXPECT_FALSE(guard.check(3, std::nan(""), 0.2236, params));
  EXPECT_EQ(guard.consecutive(), 1);
  EXPECT_TRUE(guard.check(4, 1.5, 0.2236, params));  // resets the streak
  EXPECT_EQ(guard.consecutive(), 0);
  set_grad(a, {std::numeric_limits<double>::quiet_NaN(), 0.2});
  EXPECT_FALSE(guard.check(5, 1.5, std::nan(""), params));
  EXPECT_EQ(guard.total_skipped(), 2);
}

TEST(NonFiniteGuard, SkipsReportsWhereAndAbortsAfterN) {
  at::Tensor a = param({1, 2}), b = param({3});
  const NamedParameters params{{"model.a.weight", a}, {"model.b.weight", b}};
  set_grad(a, {0.1, 0.2});
  set_grad(b, {0.3});
  const at::Tensor loss = torch::tensor(1.5);
  grpo::train::NonFiniteGuard guard(3);
  EXPECT_TRUE(guard.check(1, loss, params));

  set_grad(b, {std::numeric_limits<double>::quiet_NaN()});
  const auto found = grpo::train::find_nonfinite(loss, params);
  EXPECT_FALSE(found.finite);
  EXPECT_EQ(found.where, "gradient of model.b.weight");
  EXPECT_FALSE(guard.check(2, loss, params));
  EXPECT_EQ(guard.consecutive(), 1);

  set_grad(b, {0.3});
  EXPECT_TRUE(guard.check(3, loss, params));  // a finite step resets the streak
  EXPECT_EQ(guard.consecutive(), 0);
  EXPECT_EQ(guard.total_skipped(), 1);

  const at::Tensor bad_loss = torch::tensor(std::numeric_limits<double>::infinity());
  EXPECT_EQ(grpo::train::find_nonfinite(bad_loss, params).where, "loss");
  EXPECT_FALSE(guard.check(4, bad_loss, params));
  set_grad(a, {-std::numeric_limits<double>::infinity(), 0});
  EXPECT_FALSE(guard.check(5, loss, params));
  try {
    guard.check(6, loss, params);
    FAIL() << "expected an abort after 3 non-finite steps in a row";
  } catch (const grpo::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("step 6"), std::string::npos) << msg;
    EXPECT_NE(msg.find("gradient of model.a.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("max_nonfinite_steps = 3"), std::string::npos) << msg;
  }
}

TEST(NonFiniteGuard, NanFromBackwardIsCaught) {
  torch::nn::Linear model(2, 1);
  const auto params = grpo::train::trainable_parameters(*model);
  const at::Tensor x = torch::tensor({{1.0f, std::numeric_limits<float>::quiet_NaN()}});
  const at::Tensor loss = model(x).sum();
  loss.backward();
  const auto found = grpo::train::find_nonfinite(loss, params);
  EXPECT_FALSE(found.finite);
  EXPECT_EQ(found.where, "loss");
  EXPECT_EQ(grpo::train::find_nonfinite(at::Tensor(), params).where, "gradient of weight");
}

TEST(RngState, CpuGeneratorRoundTrip) {
  torch::manual_seed(11);
  const auto states = grpo::train::capture_torch_rng();
  ASSERT_TRUE(states.count("torch_cpu"));
  const at::Tensor first = torch::randn({8});
  torch::randn({100});
  grpo::train::restore_torch_rng(states);
  EXPECT_TRUE(torch::equal(first, torch::randn({8})));
  // Through trainer_state.json (base64) as well.
  grpo::train::TrainerState s;
  s.rng_states = states;
  const auto back =
      grpo::train::trainer_state_from_json(grpo::train::trainer_state_to_json(s), "test");
  grpo::train::restore_torch_rng(back.rng_states);
  EXPECT_TRUE(torch::equal(first, torch::randn({8})));
}
