// LoRA adapters (grpo/model/lora.h) against independent references: PEFT's logits for an
// adapter it wrote (tests/fixtures/lora, scripts/make_lora_fixture.py), the explicit merged
// weight W + (alpha / r) B A, finite differences for the adapters' gradients, and the base
// model for fresh (B = 0) and switched-off adapters.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "../support/tensor_file.h"
#include "grpo/core/error.h"
#include "grpo/core/safetensors.h"
#include "grpo/model/checkpoint.h"
#include "grpo/model/lora.h"

namespace fs = std::filesystem;
namespace gm = grpo::model;
using grpo::testing::read_tensor;

namespace {

std::string source(const std::string& rel) { return std::string(GRPO_SOURCE_DIR) + "/" + rel; }

gm::LoraSpec fixture_spec() {  // what make_lora_fixture.py gives PEFT
  gm::LoraSpec s;
  s.rank = 4;
  s.alpha = 8;
  s.targets = {"q_proj", "v_proj", "o_proj", "down_proj"};
  return s;
}

// A from-scratch qwen2 (vocabulary 64, hidden 32, GQA 4:2, 2 layers).
gm::CausalLM tiny(at::ScalarType dtype, uint64_t seed = 3) {
  grpo::config::ModelArchitecture a;
  a.model_type = "qwen2";
  a.vocab_size = 64;
  a.hidden_size = 32;
  a.intermediate_size = 48;
  a.num_attention_heads = 4;
  a.num_key_value_heads = 2;
  a.num_hidden_layers = 2;
  return gm::random_model(gm::arch_from_config(a, 0), seed, dtype);
}

at::Tensor ids() { return at::randint(0, 64, {2, 7}, at::TensorOptions().dtype(at::kLong)); }

at::Tensor logits(gm::CausalLM& m, const at::Tensor& x) { return m->forward(x).logits; }

// Gives every adapter's B random values (fresh adapters have B = 0).
void randomize_b(gm::CausalLM& m, uint64_t seed) {
  torch::NoGradGuard no_grad;
  at::manual_seed(seed);
  for (auto& item : m->named_parameters()) {
    if (item.key().size() > 7 && item.key().compare(item.key().size() - 7, 7, ".lora_B") == 0) {
      item.value().normal_(0, 0.2);
    }
  }
}

}  // namespace

// PEFT wrote the adapter and computed the adapted model's logits; we load the same base and
// adapter and must reproduce them within fp32 rounding.
TEST(Lora, AdapterWrittenByPeftGivesPeftsLogits) {
  const std::string base = source("tests/fixtures/model/qwen2"),
                    fix = source("tests/fixtures/lora");
  if (!fs::exists(fix)) GTEST_SKIP() << "fixture tests/fixtures/lora missing";
  torch::NoGradGuard no_grad;
  grpo::safetensors::File f(fix + "/expected.safetensors");
  const at::Tensor input = read_tensor(f, "input_ids", at::kLong);
  const at::Tensor mask = read_tensor(f, "attention_mask", at::kLong);
  const at::Tensor expected = read_tensor(f, "logits", at::kFloat);
  gm::CausalLM model = gm::load_hf(base, at::kFloat);
  gm::ForwardOptions o;
  o.attention_mask = mask;
  const at::Tensor before = model->forward(input, o).logits;
  EXPECT_EQ(gm::attach_lora(model, fixture_spec()), 2 * 4);  // 2 layers x 4 targets
  gm::load_lora_adapter(model, fixture_spec(), fix + "/adapter");
  const at::Tensor ours = model->forward(input, o).logits;
  const at::Tensor m = mask.to(at::kBool).unsqueeze(-1).expand_as(ours);
  const double diff = (ours - expected).abs().masked_select(m).max().item<double>();
  const double moved = (before - expected).abs().masked_select(m).max().item<double>();
  std::printf("[lora] max|ours - PEFT| = %.3g (the adapter moves the logits by up to %.3g)\n", diff,
              moved);
  EXPECT_LT(diff, 1e-4);
  EXPECT_GT(moved, 0.5);

  // The spec read from PEFT's adapter_config.json gives the same model.
  const gm::LoraSpec read = gm::read_lora_spec(fix + "/adapter");
  EXPECT_EQ(read.rank, 4);
  EXPECT_EQ(read.alpha, 8.0);
  EXPECT_EQ(read.targets.size(), 4u);
  gm::CausalLM applied = gm::load_hf(base, at::kFloat);
  gm::apply_lora_adapter(applied, fix + "/adapter");
  EXPECT_TRUE(at::equal(applied->forward(input, o).logits, ours));

  // Kept for `make_lora_fixture.py --check`: our adapter files and merged folder for PEFT.
  const fs::path out = fs::temp_directory_path() / "grpo_lora_check";
  fs::remove_all(out);
  gm::save_lora_adapter(model, fixture_spec(), (out / "adapter").string(), base);
  gm::save_hf(model, (out / "merged").string());
  gm::CausalLM merged = gm::load_hf((out / "merged").string(), at::kFloat);
  EXPECT_LT((merged->forward(input, o).logits - ours).abs().masked_select(m).max().item<double>(),
            1e-4);
}

TEST(Lora, FreshAdaptersLeaveTheModelAndOnlyTheyTrain) {
  const at::Tensor x = ids();
  gm::CausalLM base = tiny(at::kFloat), adapted = tiny(at::kFloat);
  gm::LoraSpec spec;
  spec.rank = 2;
  spec.targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
  EXPECT_EQ(gm::attach_lora(adapted, spec), 2 * 7);
  EXPECT_TRUE(gm::has_lora(adapted));
  EXPECT_FALSE(gm::has_lora(base));
  EXPECT_TRUE(at::equal(logits(base, x), logits(adapted, x)));  // B = 0: exactly the base
  int64_t trainable = 0;
  for (const auto& item : adapted->named_parameters()) {
    const bool lora = item.key().find(".lora_") != std::string::npos;
    EXPECT_EQ(item.value().requires_grad(), lora) << item.key();
    trainable += lora ? item.value().numel() : 0;
  }
  // Per layer: rank x (in + out) for each projection; hidden 32, q 32, kv 16, mlp 48.
  EXPECT_EQ(trainable, 2 * 2 * ((32 + 32) + (32 + 16) + (32 + 16) + (32 + 32) + 3 * (32 + 48)));
  logits(adapted, x).sum().backward();
  for (const auto& item : adapted->named_parameters()) {
    EXPECT_EQ(item.value().grad().defined(), item.value().requires_grad()) << item.key();
  }
  EXPECT_THROW(gm::attach_lora(adapted, spec), grpo::Error);  // twice
  gm::LoraSpec none = spec;
  none.targets = {"lm_head"};
  gm::CausalLM other = tiny(at::kFloat);
  EXPECT_THROW(gm::attach_lora(other, none), grpo::Error);  // matches no projection
}

// y = x W^T + (alpha / r) (x A^T) B^T is the plain model with W' = W + (alpha / r) B A,
// computed here in double from the adapters; switched off, it is the base again.
TEST(Lora, AdaptedModelEqualsTheExplicitlyMergedOneAndSwitchesOff) {
  const at::Tensor x = ids();
  gm::CausalLM adapted = tiny(at::kDouble), merged = tiny(at::kDouble), base = tiny(at::kDouble);
  gm::LoraSpec spec;
  spec.rank = 3;
  spec.alpha = 5;
  spec.targets = {"q_proj", "v_proj", "down_proj"};
  gm::attach_lora(adapted, spec);
  randomize_b(adapted, 11);
  {
    torch::NoGradGuard no_grad;
    auto params = adapted->named_parameters();
    for (auto& item : merged->named_parameters()) {
      const std::string& name = item.key();
      const std::string stem = name.substr(0, name.size() - std::strlen(".weight"));
      if (!params.contains(stem + ".lora_A")) continue;
      const at::Tensor a = params[stem + ".lora_A"], b = params[stem + ".lora_B"];
      item.value().add_(at::mm(b, a) * (spec.alpha / static_cast<double>(spec.rank)));
    }
  }
  const at::Tensor y = logits(adapted, x);
  EXPECT_GT((y - logits(base, x)).abs().max().item<double>(), 1e-2);  // the adapters matter
  EXPECT_LT((y - logits(merged, x)).abs().max().item<double>(), 1e-10);
  {
    gm::LoraDisabled off(adapted);
    EXPECT_TRUE(at::equal(logits(adapted, x), logits(base, x)));
  }
  EXPECT_TRUE(at::equal(logits(adapted, x), y));  // on again after the guard
}

// The adapters' gradients against central differences of the loss in double.
TEST(Lora, AdapterGradientsMatchFiniteDifferences) {
  const at::Tensor x = ids();
  gm::CausalLM m = tiny(at::kDouble);
  gm::LoraSpec spec;
  spec.rank = 2;
  spec.targets = {"k_proj", "up_proj"};
  gm::attach_lora(m, spec);
  randomize_b(m, 5);
  const at::Tensor w = at::randn({2, 7, 64}, at::TensorOptions().dtype(at::kDouble));
  auto loss = [&] { return (logits(m, x) * w).sum(); };
  loss().backward();
  auto params = m->named_parameters();
  for (const char* name :
       {"model.layers.0.self_attn.k_proj.lora_A", "model.layers.1.mlp.up_proj.lora_B"}) {
    at::Tensor p = params[name];
    const at::Tensor g = p.grad().clone();
    for (int64_t i : {0L, 5L, 17L}) {
      torch::NoGradGuard no_grad;
      const double h = 1e-6, v = p.view(-1)[i].item<double>();
      p.view(-1)[i] = v + h;
      const double up = loss().item<double>();
      p.view(-1)[i] = v - h;
      const double down = loss().item<double>();
      p.view(-1)[i] = v;
      EXPECT_NEAR(g.view(-1)[i].item<double>(), (up - down) / (2 * h), 1e-6)
          << name << "[" << i << "]";
    }
  }
}

TEST(Lora, AdapterFilesRoundTripAndBadOnesAreErrors) {
  const fs::path dir = fs::temp_directory_path() / ("grpo_lora_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const at::Tensor x = ids();
  gm::LoraSpec spec;
  spec.rank = 2;
  spec.targets = {"q_proj", "gate_proj"};
  gm::CausalLM a = tiny(at::kFloat);
  gm::attach_lora(a, spec);
  randomize_b(a, 9);
  gm::save_lora_adapter(a, spec, (dir / "adapter").string(), "base");
  gm::CausalLM b = tiny(at::kFloat);
  spec.seed = 99;  // other A draws, overwritten by the load
  gm::attach_lora(b, spec);
  gm::load_lora_adapter(b, spec, (dir / "adapter").string());
  EXPECT_TRUE(at::equal(logits(a, x), logits(b, x)));

  const auto expect_error = [](const std::function<void()>& f, const std::string& part) {
    try {
      f();
      ADD_FAILURE() << "no error; wanted one mentioning " << part;
    } catch (const grpo::Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  gm::LoraSpec rank3 = spec;
  rank3.rank = 3;
  gm::CausalLM c = tiny(at::kFloat);
  gm::attach_lora(c, rank3);
  expect_error([&] { gm::load_lora_adapter(c, rank3, (dir / "adapter").string()); }, "r 2");
  gm::LoraSpec more = spec;
  more.targets = {"q_proj", "gate_proj", "v_proj"};
  gm::CausalLM d = tiny(at::kFloat);
  gm::attach_lora(d, more);
  expect_error([&] { gm::load_lora_adapter(d, more, (dir / "adapter").string()); },
               "v_proj.lora_A.weight");
  gm::LoraSpec fewer = spec;
  fewer.targets = {"q_proj"};
  gm::CausalLM e = tiny(at::kFloat);
  gm::attach_lora(e, fewer);
  expect_error([&] { gm::load_lora_adapter(e, fewer, (dir / "adapter").string()); },
               "gate_proj.lora_A.weight' has no adapter");
  std::ofstream(dir / "adapter" / "adapter_config.json")
      << R"({"r": 2, "lora_alpha": 16, "use_dora": true})";
  expect_error([&] { gm::load_lora_adapter(b, spec, (dir / "adapter").string()); }, "use_dora");
  expect_error([&] { gm::load_lora_adapter(b, spec, (dir / "missing").string()); },
               "not a LoRA adapter folder");
  fs::remove_all(dir);
}

// A MoE model: the routed experts' projections (read directly by the grouped expert products)
// get no adapters; attention, the shared expert and a dense layer's MLP do.
TEST(Lora, RoutedExpertsAreNotAdapted) {
  const std::string fix = source("tests/fixtures/model/qwen2_moe");
  if (!fs::exists(fix)) GTEST_SKIP() << "fixture qwen2_moe missing";
  gm::CausalLM m = gm::load_hf(fix, at::kFloat);
  gm::LoraSpec spec;
  spec.rank = 2;
  spec.targets = {"q_proj", "gate_proj"};
  const int64_t n = gm::attach_lora(m, spec);
  int64_t experts = 0, shared = 0;
  for (const auto& item : m->named_parameters()) {
    if (item.key().find(".lora_A") == std::string::npos) continue;
    experts += item.key().find(".experts.") != std::string::npos;
    shared += item.key().find("shared_expert.") != std::string::npos;
  }
  // The fixture's 3 layers: MoE (with a shared expert), dense (mlp_only_layers: [1]), MoE.
  ASSERT_EQ(m->arch().num_layers, 3);
  EXPECT_EQ(experts, 0);
  EXPECT_EQ(shared, 2);
  EXPECT_EQ(n, 3 + 2 + 1);  // q_proj x 3, the shared experts' gate_proj, the dense layer's
}

// Activation checkpointing (trainer.gradient_checkpointing) recomputes the layers in the
// backward: the adapters' gradients are those of the ordinary backward.
TEST(Lora, GradientCheckpointingGivesTheSameAdapterGradients) {
  const at::Tensor x = ids();
  const at::Tensor w = at::randn({2, 7, 64}, at::TensorOptions().dtype(at::kDouble));
  std::vector<at::Tensor> grads[2];
  for (int checkpointing = 0; checkpointing < 2; ++checkpointing) {
    gm::CausalLM m = tiny(at::kDouble);
    gm::LoraSpec spec;
    spec.rank = 2;
    spec.targets = {"q_proj", "o_proj", "up_proj"};
    gm::attach_lora(m, spec);
    randomize_b(m, 4);
    m->set_gradient_checkpointing(checkpointing == 1);
    (logits(m, x) * w).sum().backward();
    for (const auto& p : m->parameters()) {
      if (p.requires_grad()) grads[checkpointing].push_back(p.grad().clone());
    }
  }
  ASSERT_EQ(grads[0].size(), 2u * 3u * 2u);
  ASSERT_EQ(grads[1].size(), grads[0].size());
  for (size_t i = 0; i < grads[0].size(); ++i) {
    EXPECT_LT((grads[0][i] - grads[1][i]).abs().max().item<double>(), 1e-12) << i;
    EXPECT_GT(grads[0][i].abs().max().item<double>(), 0.0) << i;
  }
}
