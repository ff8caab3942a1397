// TrainBatch assembly and the training-side forward that recomputes token log-probs.
#include "grpo/train/train_batch.h"

#include <algorithm>

#include "grpo/core/error.h"
#include "grpo/rollout/sampling.h"

namespace grpo::train {

TrainBatch make_train_batch(const std::vector<rollout::Rollout>& rollouts,
                            const at::Tensor& advantages) {
  const int64_t n = static_cast<int64_t>(rollouts.size());
  GRPO_CHECK(n > 0, "make_train_batch: no rollouts");
  GRPO_CHECK(advantages.dim() == 1 && advantages.size(0) == n, "make_train_batch: ", n,
             " rollouts but advantages of shape ", advantages.sizes());
  int64_t length = 2;
  for (const auto& r : rollouts) {
    length = std::max<int64_t>(length, r.prompt_ids.size() + r.completion_ids.size());
  }
  auto ids = at::zeros({n, length}, at::kLong);
  auto attention = at::zeros({n, length}, at::kLong);
  auto mask = at::zeros({n, length - 1}, at::kFloat);
  auto old = at::zeros({n, length - 1}, at::kFloat);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto att_a = attention.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<float, 2>();
  auto old_a = old.accessor<float, 2>();
  TrainBatch batch;
  for (int64_t i = 0; i < n; ++i) {
    const auto& r = rollouts[i];
    GRPO_CHECK(r.logprobs.size() == r.completion_ids.size(), "rollout ", i, " has ",
               r.completion_ids.size(), " tokens but ", r.logprobs.size(), " log-probs");
    GRPO_CHECK(!r.prompt_ids.empty(), "rollout ", i, " has an empty prompt");
    const int64_t p = static_cast<int64_t>(r.prompt_ids.size());
    int64_t t = 0;
    for (int32_t id : r.prompt_ids) ids_a[i][t++] = id;
    for (size_t j = 0; j < r.completion_ids.size(); ++j, ++t) {
      ids_a[i][t] = r.completion_ids[j];
      mask_a[i][t - 1] = 1.0f;  // logits at t-1 predict the token at t
      old_a[i][t - 1] = r.logprobs[j];
    }
    for (int64_t k = 0; k < t; ++k) att_a[i][k] = 1;
    batch.seq_lengths.push_back(p + static_cast<int64_t>(r.completion_ids.size()));
  }
  batch.input_ids = ids;
  batch.attention_mask = attention;
  batch.response_mask = mask;
  batch.old_logprobs = old;
  batch.advantages = advantages.to(at::kFloat).cpu();
  return batch;
}

TrainBatch TrainBatch::select(const std::vector<int64_t>& rows) const {
  GRPO_CHECK(!rows.empty(), "TrainBatch::select: no rows");
  int64_t length = 2;
  for (int64_t r : rows) length = std::max(length, seq_lengths.at(r));
  auto index = at::tensor(rows, at::kLong).to(input_ids.device());
  auto pick = [&](const at::Tensor& t, int64_t cols) {
    return t.defined() ? t.index_select(0, index).narrow(1, 0, cols).contiguous() : t;
  };
  TrainBatch out;
  out.input_ids = pick(input_ids, length);
  out.attention_mask = pick(attention_mask, length);
  out.response_mask = pick(response_mask, length - 1);
  out.old_logprobs = pick(old_logprobs, length - 1);
  out.ref_logprobs = pick(ref_logprobs, length - 1);
  out.advantages = advantages.index_select(0, index.to(advantages.device()));
  for (int64_t r : rows) out.seq_lengths.push_back(seq_lengths[r]);
  return out;
}

TrainBatch TrainBatch::to(const at::Device& device) const {
  auto move = [&](const at::Tensor& t) { return t.defined() ? t.to(device) : t; };
  TrainBatch out = *this;
  out.input_ids = move(input_ids);
  out.attention_mask = move(attention_mask);
  out.response_mask = move(response_mask);
  out.old_logprobs = move(old_logprobs);
  out.ref_logprobs = move(ref_logprobs);
  out.advantages = move(advantages);
  return out;
}

TokenOutputs token_outputs(model::CausalLM& model, const TrainBatch& batch, double temperature,
                           bool with_entropy) {
  const int64_t length = batch.input_ids.size(1);
  model::ForwardOptions options;
  options.attention_mask = batch.attention_mask;
  auto logits = model->forward(batch.input_ids, options).logits.narrow(1, 0, length - 1);
  auto targets = batch.input_ids.narrow(1, 1, length - 1);
  TokenOutputs out;
  out.logprobs = rollout::token_logprobs(logits, targets, temperature);
  if (with_entropy) {
    auto logp = at::log_softmax(logits.to(at::kFloat) / temperature, -1);  // (N, L-1, V)
    out.entropy = -(logp.exp() * logp).sum(-1);
  }
  return out;
}

}  // namespace grpo::train
