// SharedPrompts against the plain forward (token_outputs), which runs every row whole: the same
// log-probs, entropies and parameter gradients in float64 (also with activation checkpointing),
// and prompt_sharing_pays against hand-counted tokens.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <array>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "grpo/core/config/model.h"
#include "grpo/core/error.h"
#include "grpo/model/checkpoint.h"
#include "grpo/model/config.h"
#include "grpo/train/shared_prompts.h"
#include "grpo/train/train_batch.h"

namespace gt = grpo::train;
namespace gm = grpo::model;

namespace {

gm::CausalLM tiny_model(grpo::ops::KernelPolicy kernels = grpo::ops::KernelPolicy::automatic) {
  grpo::config::ModelArchitecture a;
  a.model_type = "qwen2";
  a.vocab_size = 40;
  a.hidden_size = 32;
  a.intermediate_size = 48;
  a.num_hidden_layers = 2;
  a.num_attention_heads = 4;
  a.num_key_value_heads = 2;
  gm::ModelArch arch = gm::arch_from_config(a, 0);
  arch.kernels = kernels;
  return gm::random_model(arch, 7, at::kDouble);
}

grpo::rollout::Rollout rollout(std::vector<int32_t> prompt, std::vector<int32_t> completion) {
  grpo::rollout::Rollout r;
  r.prompt_ids = std::move(prompt);
  r.completion_ids = std::move(completion);
  r.logprobs.assign(r.completion_ids.size(), -1.0f);
  return r;
}

// Three prompts of 2, 5 and 3 tokens with three completions each (lengths 0 to 6), and a fourth
// prompt equal in tokens to the first (another dataset item, the same text).
gt::TrainBatch grouped_batch() {
  const std::vector<std::vector<int32_t>> prompts = {{3, 9}, {4, 8, 15, 16, 23}, {1, 2, 3}, {3, 9}};
  const std::vector<std::vector<std::vector<int32_t>>> completions = {
      {{5, 6, 7}, {5}, {11, 12, 13, 14, 30, 31}},
      {{17, 18}, {}, {19, 20, 21, 22}},
      {{24, 25, 26, 27, 28}, {29}, {32, 33, 34}},
      {{35, 36}, {37, 38, 39, 1}, {2}}};
  std::vector<grpo::rollout::Rollout> rollouts;
  for (size_t p = 0; p < prompts.size(); ++p) {
    for (const auto& c : completions[p]) rollouts.push_back(rollout(prompts[p], c));
  }
  const auto n = static_cast<int64_t>(rollouts.size());
  return gt::make_train_batch(rollouts, at::linspace(-1.0, 1.0, n));
}

double max_abs(const at::Tensor& a) { return a.abs().max().item<double>(); }

}  // namespace

TEST(TrainBatch, KeysRowsByPromptTokens) {
  const auto batch = grouped_batch();
  EXPECT_EQ(batch.prompt_lengths, (std::vector<int64_t>{2, 2, 2, 5, 5, 5, 3, 3, 3, 2, 2, 2}));
  // The fourth prompt has the first's tokens: it shares its key (row 0).
  EXPECT_EQ(batch.prompt_keys, (std::vector<int64_t>{0, 0, 0, 3, 3, 3, 6, 6, 6, 0, 0, 0}));
  EXPECT_EQ(batch.completion_lengths(), (std::vector<int64_t>{3, 1, 6, 2, 0, 4, 5, 1, 3, 2, 4, 1}));
  const auto sub = batch.select({4, 9});
  EXPECT_EQ(sub.prompt_lengths, (std::vector<int64_t>{5, 2}));
  EXPECT_EQ(sub.prompt_keys, (std::vector<int64_t>{3, 0}));
}

class SharedPromptsKernels : public testing::TestWithParam<grpo::ops::KernelPolicy> {};

// The fused CPU attention (automatic) and the ATen reference both see left-padded prompts
// continued by right-padded completions.
TEST_P(SharedPromptsKernels, SameLogprobsAndEntropyAsWholeRows) {
  auto model = tiny_model(GetParam());
  const auto batch = grouped_batch();
  torch::NoGradGuard no_grad;
  const gt::SharedPrompts prompts(model, batch, gt::row_range(0, batch.size()));
  EXPECT_EQ(prompts.prompts(), 3);
  int64_t compared = 0;
  for (const auto& rows :
       gt::length_sorted_micro_batches(batch.completion_lengths(), 0, batch.size(), 5)) {
    const auto sub = batch.select(rows);
    const auto whole = gt::token_outputs(model, sub, 0.7, true);
    const auto shared = prompts.token_outputs(model, sub, 0.7, true);
    ASSERT_EQ(shared.logprobs.sizes(), whole.logprobs.sizes());
    EXPECT_LT(max_abs(shared.logprobs - whole.logprobs), 1e-10);
    EXPECT_LT(max_abs(shared.entropy - whole.entropy), 1e-10);
    // Zero exactly off the response mask, non-zero on it.
    EXPECT_EQ(max_abs(shared.logprobs * (1 - sub.response_mask)), 0.0);
    compared += (shared.logprobs.ne(0) * sub.response_mask).sum().item<int64_t>();
  }
  EXPECT_EQ(compared, batch.response_mask.sum().item<int64_t>());  // 32 completion tokens
}

INSTANTIATE_TEST_SUITE_P(Policies, SharedPromptsKernels,
                         testing::Values(grpo::ops::KernelPolicy::automatic,
                                         grpo::ops::KernelPolicy::reference),
                         [](const testing::TestParamInfo<grpo::ops::KernelPolicy>& param_info) {
                           return std::string(param_info.param == grpo::ops::KernelPolicy::reference
                                                  ? "reference"
                                                  : "automatic");
                         });

TEST(SharedPrompts, SameGradientsAsWholeRows) {
  // A masked row (as algorithm.mask_truncated leaves it) must not count either way.
  auto batch = grouped_batch();
  batch.response_mask[5].zero_();
  const auto weights = at::linspace(0.5, 2.0, batch.response_mask.numel(), at::kDouble)
                           .view(batch.response_mask.sizes());
  const auto micro_batches =
      gt::length_sorted_micro_batches(batch.completion_lengths(), 0, batch.size(), 4);
  // sum over tokens of weight * (logprob + entropy), accumulated micro-batch by micro-batch.
  const auto gradients = [&](bool shared, bool checkpointing) {
    auto model = tiny_model();
    model->set_gradient_checkpointing(checkpointing);
    std::unique_ptr<gt::SharedPrompts> prompts;
    if (shared) {
      prompts = std::make_unique<gt::SharedPrompts>(model, batch, gt::row_range(0, batch.size()));
      prompts->detach();
    }
    for (const auto& rows : micro_batches) {
      const auto sub = batch.select(rows);
      const auto out = shared ? prompts->token_outputs(model, sub, 1.0, true)
                              : gt::token_outputs(model, sub, 1.0, true);
      const auto w = weights.index_select(0, at::tensor(rows, at::kLong))
                         .narrow(1, 0, sub.response_mask.size(1));
      ((out.logprobs + out.entropy) * w).sum().backward();
    }
    if (shared) prompts->backward();
    std::map<std::string, at::Tensor> grads;
    for (const auto& p : model->named_parameters()) grads[p.key()] = p.value().grad().clone();
    return grads;
  };
  // Against whole rows with ordinary autograd: shared prompts, and either with activation
  // checkpointing (the prompts' recorded keys and values are outputs of recomputed layers).
  const auto whole = gradients(false, false);
  for (const auto& [shared, checkpointing] :
       std::vector<std::pair<bool, bool>>{{true, false}, {false, true}, {true, true}}) {
    const auto other = gradients(shared, checkpointing);
    ASSERT_EQ(whole.size(), other.size());
    for (const auto& [name, g] : whole) {
      ASSERT_TRUE(other.at(name).defined()) << name;
      EXPECT_GT(max_abs(g), 0.0) << name;
      EXPECT_LT(max_abs(other.at(name) - g), 1e-10 * (1 + max_abs(g)))
          << name << (shared ? " shared" : " whole") << (checkpointing ? " checkpointing" : "");
    }
  }
}

TEST(SharedPrompts, RejectsRowsOfOtherPrompts) {
  auto model = tiny_model();
  const auto batch = grouped_batch();
  torch::NoGradGuard no_grad;
  const gt::SharedPrompts prompts(model, batch, {0, 1, 2});
  try {
    prompts.token_outputs(model, batch.select({0, 3}), 1.0, false);
    FAIL() << "no error";
  } catch (const grpo::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not among the shared ones"), std::string::npos);
  }
  gt::TrainBatch unknown = batch;
  unknown.prompt_keys.clear();
  EXPECT_THROW(gt::SharedPrompts(model, unknown, {0}), grpo::Error);
}

// Longest first, at most `micro` rows, and with a token budget at most budget / (the first row's
// length) rows; a row longer than the budget alone (grouping derived by hand).
TEST(MicroBatches, RowLimitAndTokenBudget) {
  const std::vector<int64_t> lengths{5, 9, 3, 9, 2, 7};  // longest first: 1, 3, 5, 0, 2, 4
  using Groups = std::vector<std::vector<int64_t>>;
  EXPECT_EQ(gt::length_sorted_micro_batches(lengths, 0, 6, 4), (Groups{{1, 3, 5, 0}, {2, 4}}));
  // 20 tokens: 2 x 9 = 18 fits, 3 x 9 does not; 2 x 7 = 14, 3 x 7 = 21 does not; 2 x 3 = 6.
  EXPECT_EQ(gt::length_sorted_micro_batches(lengths, 0, 6, 4, 20),
            (Groups{{1, 3}, {5, 0}, {2, 4}}));
  // 8 tokens: the 9s alone (longer than the budget), 7 and 5 alone, then 2 x 3 = 6.
  EXPECT_EQ(gt::length_sorted_micro_batches(lengths, 0, 6, 4, 8),
            (Groups{{1}, {3}, {5}, {0}, {2, 4}}));
  // The row limit still applies under a large budget; a sub-range keeps its own rows.
  EXPECT_EQ(gt::length_sorted_micro_batches(lengths, 0, 6, 2, 1000),
            (Groups{{1, 3}, {5, 0}, {2, 4}}));
  EXPECT_EQ(gt::length_sorted_micro_batches(lengths, 2, 5, 8, 14), (Groups{{3}, {2, 4}}));
}

TEST(SharedPrompts, PaysOnlyWhenItSavesTokensWithinAMicroBatch) {
  // rows: prompt key and length, completion length.
  const auto batch_of = [](const std::vector<std::array<int64_t, 3>>& rows) {
    gt::TrainBatch b;
    for (const auto& [key, prompt, completion] : rows) {
      b.prompt_keys.push_back(key);
      b.prompt_lengths.push_back(prompt);
      b.seq_lengths.push_back(prompt + completion);
    }
    return b;
  };
  // 8 rows of one 10-token prompt, 5-token completions: whole 8 x 15 = 120 tokens; shared
  // 10 + 8 x 4 = 42.
  std::vector<std::array<int64_t, 3>> one(8, {0, 10, 5});
  EXPECT_TRUE(gt::prompt_sharing_pays(batch_of(one), 0, 8, 8));
  // Every prompt distinct: shared 8 x 10 + 8 x 4 = 112 against 120, under a tenth fewer; two
  // rows per prompt: 4 x 10 + 32 = 72, and the prompts (40) fit the largest micro-batch (120).
  std::vector<std::array<int64_t, 3>> distinct, pairs;
  for (int64_t i = 0; i < 8; ++i) distinct.push_back({i, 10, 5});
  for (int64_t i = 0; i < 8; ++i) pairs.push_back({i / 2, 10, 5});
  EXPECT_FALSE(gt::prompt_sharing_pays(batch_of(distinct), 0, 8, 8));
  EXPECT_TRUE(gt::prompt_sharing_pays(batch_of(pairs), 0, 8, 8));
  // Distinct prompts of unequal lengths pad to the longest: 8 x 19 + 8 x 4 = 184 against
  // 4 x 24 + 4 x 15 = 156 (micro-batches of 4, longest first).
  distinct.clear();
  for (int64_t i = 0; i < 8; ++i) distinct.push_back({i, i < 4 ? 19 : 10, 5});
  EXPECT_FALSE(gt::prompt_sharing_pays(batch_of(distinct), 0, 8, 4));
  // Two 50-token prompts, 2-token completions: 100 + 8 x 1 tokens against 8 x 52, but with
  // micro-batches of one row the prompts (100) outgrow a micro-batch (52); of two rows (104) not.
  std::vector<std::array<int64_t, 3>> two;
  for (int64_t i = 0; i < 8; ++i) two.push_back({i % 2, 50, 2});
  EXPECT_FALSE(gt::prompt_sharing_pays(batch_of(two), 0, 8, 1));
  EXPECT_TRUE(gt::prompt_sharing_pays(batch_of(two), 0, 8, 2));
  // Only the range counts: the one-prompt rows, then the unequal distinct ones.
  auto both = one;
  for (const auto& row : distinct) both.push_back({row[0] + 100, row[1], row[2]});
  EXPECT_TRUE(gt::prompt_sharing_pays(batch_of(both), 0, 8, 4));
  EXPECT_FALSE(gt::prompt_sharing_pays(batch_of(both), 8, 16, 4));
  // A batch without prompt keys never shares.
  gt::TrainBatch bare = batch_of(one);
  bare.prompt_keys.clear();
  EXPECT_FALSE(gt::prompt_sharing_pays(bare, 0, 8, 8));
}
