// SFT: how examples are encoded and masked, the masked cross-entropy against a hand computation
// over the model's logits, and a few optimizer steps lowering the loss of a fixed batch.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <vector>

#include "grpo/core/error.h"
#include "grpo/model/checkpoint.h"
#include "grpo/train/optimizer.h"
#include "grpo/train/sft.h"

namespace grpo::train {
namespace {

// One id per byte (its value), eos = 256: encodings are obvious by hand.
class ByteTokenizer : public text::Tokenizer {
 public:
  ByteTokenizer() { set_special_ids(std::nullopt, 256, std::nullopt); }
  std::vector<int32_t> encode(std::string_view text, const text::EncodeOptions&) const override {
    std::vector<int32_t> ids;
    for (unsigned char c : text) ids.push_back(c);
    return ids;
  }
  void append_bytes(int32_t id, bool&, std::string& out) const override {
    if (id < 256) out.push_back(static_cast<char>(id));
  }
  int32_t vocab_size() const override { return 257; }
  std::optional<int32_t> token_to_id(std::string_view) const override { return std::nullopt; }
  std::string id_to_token(int32_t id) const override { return std::to_string(id); }
  bool is_special(int32_t id) const override { return id == 256; }
  const std::vector<text::AddedToken>& added_tokens() const override { return added_; }

 private:
  std::vector<text::AddedToken> added_;
};

text::PromptTemplate custom_template(const std::string& pattern) {
  text::TemplateConfig tc;
  tc.name = "custom";
  tc.custom = pattern;
  return text::PromptTemplate(tc);
}

data::PromptRecord record(const std::string& prompt, const std::string& response) {
  data::PromptRecord r;
  r.prompt = prompt;
  r.response = response;
  return r;
}

TEST(SftEncode, PromptThenResponseThenEos) {
  ByteTokenizer tok;
  config::SftConfig sft;
  const auto e =
      encode_sft_example(record("ab", "cd"), sft, tok, custom_template("Q{prompt}:"), 100);
  // "Qab:" = 81 97 98 58, then "cd" = 99 100, then eos.
  EXPECT_EQ(e.ids, (std::vector<int32_t>{81, 97, 98, 58, 99, 100, 256}));
  EXPECT_EQ(e.prompt_tokens, 4);
  EXPECT_FALSE(e.truncated);

  sft.loss_on_prompt = true;
  sft.append_eos = false;
  const auto all =
      encode_sft_example(record("ab", "cd"), sft, tok, custom_template("{prompt}"), 100);
  EXPECT_EQ(all.ids, (std::vector<int32_t>{97, 98, 99, 100}));
  EXPECT_EQ(all.prompt_tokens, 0);
}

TEST(SftEncode, TextFormatAndTruncation) {
  ByteTokenizer tok;
  config::SftConfig sft;
  sft.format = config::SftFormat::text;
  const auto e = encode_sft_example(record("hello", ""), sft, tok, custom_template("X{prompt}"), 4);
  EXPECT_EQ(e.ids, (std::vector<int32_t>{104, 101, 108, 108}));  // no template, cut to 4
  EXPECT_EQ(e.prompt_tokens, 0);
  EXPECT_TRUE(e.truncated);
}

TEST(SftBatch, MaskCountsOnlyResponseTargets) {
  SftExample a;
  a.ids = {5, 6, 7, 8, 9};
  a.prompt_tokens = 3;  // targets 8 and 9 count: predicted at positions 2 and 3
  SftExample b;
  b.ids = {1, 2, 3};
  b.prompt_tokens = 0;  // every target counts (2 and 3)
  const auto batch = make_sft_batch({a, b});
  EXPECT_TRUE(
      batch.input_ids.equal(torch::tensor({5, 6, 7, 8, 9, 1, 2, 3, 0, 0}, at::kLong).view({2, 5})));
  EXPECT_TRUE(batch.attention_mask.equal(
      torch::tensor({1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, at::kLong).view({2, 5})));
  EXPECT_TRUE(batch.loss_mask.equal(
      torch::tensor({0.f, 0.f, 1.f, 1.f, 1.f, 1.f, 0.f, 0.f}, at::kFloat).view({2, 4})));
}

model::CausalLM tiny_model(uint64_t seed) {
  config::ModelArchitecture arch;
  arch.hidden_size = 32;
  arch.intermediate_size = 64;
  arch.num_hidden_layers = 2;
  arch.num_attention_heads = 4;
  arch.num_key_value_heads = 2;
  arch.max_position_embeddings = 64;
  return model::random_model(model::arch_from_config(arch, 257), seed, at::kFloat);
}

// The loss is the cross-entropy of the response targets only, summed: computed here by hand,
// -(z[target] - log sum_v exp z[v]) in double over the model's logits at the counted positions.
TEST(SftLoss, EqualsHandCrossEntropyOverResponseTokens) {
  auto model = tiny_model(3);
  ByteTokenizer tok;
  config::SftConfig sft;
  const auto tmpl = custom_template("{prompt}=");
  const std::vector<SftExample> examples = {
      encode_sft_example(record("12+3", "15"), sft, tok, tmpl, 64),
      encode_sft_example(record("7", "seven"), sft, tok, tmpl, 64)};
  const auto batch = make_sft_batch(examples);
  const auto out = sft_loss(model, batch);

  double expected = 0, tokens = 0, correct = 0;
  for (const auto& e : examples) {
    const auto ids = torch::tensor(std::vector<int64_t>(e.ids.begin(), e.ids.end())).view({1, -1});
    at::Tensor logits;
    {
      torch::NoGradGuard no_grad;
      logits = model->forward(ids).logits[0].to(at::kDouble);  // (T, V)
    }
    for (int64_t t = e.prompt_tokens; t < static_cast<int64_t>(e.ids.size()); ++t) {
      const auto z = logits[t - 1];
      const double zmax = z.max().item<double>();
      const double lse = zmax + std::log((z - zmax).exp().sum().item<double>());
      expected += -(z[e.ids[static_cast<size_t>(t)]].item<double>() - lse);
      tokens += 1;
      correct += z.argmax().item<int64_t>() == e.ids[static_cast<size_t>(t)] ? 1 : 0;
    }
  }
  EXPECT_EQ(tokens, 3 + 6);  // "15" + eos, "seven" + eos
  EXPECT_EQ(out.tokens, tokens);
  EXPECT_EQ(out.correct, correct);
  // fp32 log-softmax over 257 logits, summed over 9 targets.
  EXPECT_NEAR(out.loss_sum.item<double>(), expected, 1e-4 * expected);

  // The prompt counted too: every target after the first token.
  sft.loss_on_prompt = true;
  const auto all = sft_loss(
      model, make_sft_batch({encode_sft_example(record("12+3", "15"), sft, tok, tmpl, 64)}));
  EXPECT_EQ(all.tokens, 7);  // "12+3=15" and eos: 8 ids, every target after the first
}

TEST(SftLoss, FewStepsLowerTheLossOfAFixedBatch) {
  torch::manual_seed(0);
  auto model = tiny_model(5);
  ByteTokenizer tok;
  config::SftConfig sft;
  const auto tmpl = custom_template("{prompt}=");
  const auto batch = make_sft_batch({encode_sft_example(record("2+2", "4"), sft, tok, tmpl, 64),
                                     encode_sft_example(record("3+4", "7"), sft, tok, tmpl, 64)});
  config::TrainerConfig tc;
  tc.lr = 1e-2;
  const auto params = trainable_parameters(*model);
  auto adamw = make_adamw(params, tc);
  std::vector<double> losses;
  for (int step = 0; step < 8; ++step) {
    adamw->zero_grad();
    auto out = sft_loss(model, batch);
    auto loss = out.loss_sum / out.tokens;
    loss.backward();
    adamw->step();
    losses.push_back(loss.item<double>());
  }
  // Random init starts near log(257) = 5.55 per token; eight steps on two examples memorise.
  EXPECT_NEAR(losses.front(), std::log(257.0), 1.0);
  EXPECT_LT(losses.back(), 0.5 * losses.front());
}

TEST(SftSteps, EpochsOverrideTrainerSteps) {
  config::Config c;
  c.trainer.steps = 7;
  c.sft.batch_size = 16;
  EXPECT_EQ(sft_steps(c, 100), 7);
  c.sft.epochs = 2;
  EXPECT_EQ(sft_steps(c, 100), 13);  // ceil(200 / 16)
  c.sft.epochs = 0.01;
  EXPECT_EQ(sft_steps(c, 100), 1);
}

}  // namespace
}  // namespace grpo::train
