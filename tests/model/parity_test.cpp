// Parity with Hugging Face transformers: for every fixture written by
// scripts/make_model_fixtures.py (one per supported model_type and feature mix), our fp32 logits
// must match transformers' within a tolerance derived from fp32 rounding (below); plus the save
// round trip, KV-cache decoding equal to one full forward, and parameter counts.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "../support/tensor_file.h"
#include "grpo/core/safetensors.h"
#include "grpo/model/checkpoint.h"

namespace fs = std::filesystem;
namespace gm = grpo::model;
using grpo::testing::read_tensor;

namespace {

const char* const kFixtures[] = {"llama", "llama_linear_bias", "mistral",   "qwen2",
                                 "qwen3", "qwen2_moe",         "qwen3_moe", "mixtral"};

std::string fixture_dir(const std::string& name) {
  return std::string(GRPO_SOURCE_DIR) + "/tests/fixtures/model/" + name;
}

struct Expected {
  at::Tensor input_ids, attention_mask, logits;
  int64_t num_parameters = 0;
};

Expected read_expected(const std::string& name) {
  grpo::safetensors::File f(fixture_dir(name) + "/expected.safetensors");
  Expected e;
  e.input_ids = read_tensor(f, "input_ids", at::kLong);
  e.attention_mask = read_tensor(f, "attention_mask", at::kLong);
  e.logits = read_tensor(f, "logits", at::kFloat);
  const auto it = f.metadata().find("num_parameters");
  if (it != f.metadata().end()) e.num_parameters = std::stoll(it->second);
  return e;
}

// Max |a - b| over the real (unpadded) positions. a, b (B, T, V); mask (B, T).
double masked_max_diff(const at::Tensor& a, const at::Tensor& b, const at::Tensor& mask) {
  const at::Tensor m = mask.to(at::kBool).unsqueeze(-1).expand_as(a);
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().masked_select(m).max().item<double>();
}

class Parity : public ::testing::TestWithParam<const char*> {};

}  // namespace

TEST_P(Parity, LogitsMatchTransformers) {
  const std::string name = GetParam();
  if (!fs::exists(fixture_dir(name))) GTEST_SKIP() << "fixture " << name << " missing";
  const Expected e = read_expected(name);
  torch::NoGradGuard no_grad;
  gm::CausalLM model = gm::load_hf(fixture_dir(name), at::kFloat);
  gm::ForwardOptions o;
  o.attention_mask = e.attention_mask;
  const at::Tensor ours = model->forward(e.input_ids, o).logits;
  // Tolerance: transformers and we both round the same math to fp32, so each is off the exact
  // result by about as much as our fp32 run is off our fp64 run. Allow 4x that (two sides,
  // x2 margin), never more than 1e-4.
  model->to(at::kDouble);
  const at::Tensor exact = model->forward(e.input_ids, o).logits;
  const double fp32_error = masked_max_diff(ours, exact, e.attention_mask);
  const double tol = std::max(4 * fp32_error, 1e-6);
  ASSERT_LE(tol, 1e-4) << "fp32 rounding error itself is too large: " << fp32_error;
  const double diff = masked_max_diff(ours, e.logits, e.attention_mask);
  std::printf("[parity] %-18s max|ours - transformers| = %.3g (tolerance %.3g, fp32 error %.3g)\n",
              name.c_str(), diff, tol, fp32_error);
  EXPECT_LE(diff, tol) << name;
  if (e.num_parameters > 0) {
    EXPECT_EQ(gm::count_parameters(model->arch()).total, e.num_parameters);
  }
}

TEST_P(Parity, SaveRoundTripAndKeepForTransformersCheck) {
  const std::string name = GetParam();
  if (!fs::exists(fixture_dir(name))) GTEST_SKIP() << "fixture " << name << " missing";
  // Kept after the test: `make_model_fixtures.py --check <dir>/*` loads them in transformers.
  const char* env = std::getenv("GRPO_MODEL_ROUNDTRIP_DIR");
  const fs::path out =
      fs::path(env ? env : (fs::temp_directory_path() / "grpo_model_roundtrip").string()) / name;
  fs::remove_all(out);
  torch::NoGradGuard no_grad;
  gm::CausalLM model = gm::load_hf(fixture_dir(name), at::kFloat);
  gm::save_hf(model, out.string());
  gm::CausalLM again = gm::load_hf(out.string(), at::kFloat);
  const Expected e = read_expected(name);
  gm::ForwardOptions o;
  o.attention_mask = e.attention_mask;
  EXPECT_TRUE(
      at::equal(model->forward(e.input_ids, o).logits, again->forward(e.input_ids, o).logits));
  // Sharded save gives the same weights back.
  const fs::path sharded = out.string() + "_sharded";
  fs::remove_all(sharded);
  gm::save_hf(model, sharded.string(), "", 20000);
  EXPECT_TRUE(fs::exists(sharded / "model.safetensors.index.json"));
  gm::CausalLM third = gm::load_hf(sharded.string(), at::kFloat);
  EXPECT_TRUE(
      at::equal(model->forward(e.input_ids, o).logits, third->forward(e.input_ids, o).logits));
  fs::remove_all(sharded);
}

TEST_P(Parity, KvCacheDecodingEqualsFullForward) {
  const std::string name = GetParam();
  if (!fs::exists(fixture_dir(name))) GTEST_SKIP() << "fixture " << name << " missing";
  const Expected e = read_expected(name);
  torch::NoGradGuard no_grad;
  gm::CausalLM model = gm::load_hf(fixture_dir(name), at::kFloat);
  gm::ForwardOptions full_opts;
  full_opts.attention_mask = e.attention_mask;
  const at::Tensor full = model->forward(e.input_ids, full_opts).logits;  // (B, T, V)
  const int64_t b = e.input_ids.size(0), t = e.input_ids.size(1), prefill = 5;
  gm::KVCache cache = model->make_cache(b, t);
  gm::ForwardOptions o;
  o.cache = &cache;
  o.attention_mask = e.attention_mask.narrow(1, 0, prefill);
  std::vector<at::Tensor> pieces{model->forward(e.input_ids.narrow(1, 0, prefill), o).logits};
  for (int64_t i = prefill; i < t; ++i) {
    o.attention_mask = e.attention_mask.narrow(1, 0, i + 1);
    pieces.push_back(model->forward(e.input_ids.narrow(1, i, 1), o).logits);
  }
  EXPECT_EQ(cache.length(), t);
  const double diff = masked_max_diff(at::cat(pieces, 1), full, e.attention_mask);
  std::printf("[kv-cache] %-18s max|incremental - full| = %.3g\n", name.c_str(), diff);
  EXPECT_LE(diff, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(AllModelTypes, Parity, ::testing::ValuesIn(kFixtures));
