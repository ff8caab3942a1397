// TrainBatch assembly and the training-side forward that recomputes token log-probs.
#include "grpo/train/train_batch.h"

#include <algorithm>
#include <map>

#include "grpo/core/error.h"

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
  // Entropies when the engine recorded them (SamplingParams::record_entropy).
  const bool with_entropy = std::any_of(rollouts.begin(), rollouts.end(),
                                        [](const auto& r) { return !r.entropies.empty(); });
  auto entropy = at::zeros({with_entropy ? n : 0, length - 1}, at::kFloat);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto att_a = attention.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<float, 2>();
  auto old_a = old.accessor<float, 2>();
  auto entropy_a = entropy.accessor<float, 2>();
  TrainBatch batch;
  std::map<std::vector<int32_t>, int64_t> first_row;  // prompt tokens -> its first row
  for (int64_t i = 0; i < n; ++i) {
    const auto& r = rollouts[i];
    GRPO_CHECK(r.logprobs.size() == r.completion_ids.size(), "rollout ", i, " has ",
               r.completion_ids.size(), " tokens but ", r.logprobs.size(), " log-probs");
    GRPO_CHECK(!with_entropy || r.entropies.size() == r.completion_ids.size(), "rollout ", i,
               " has ", r.completion_ids.size(), " tokens but ", r.entropies.size(), " entropies");
    GRPO_CHECK(!r.prompt_ids.empty(), "rollout ", i, " has an empty prompt");
    const int64_t p = static_cast<int64_t>(r.prompt_ids.size());
    int64_t t = 0;
    for (int32_t id : r.prompt_ids) ids_a[i][t++] = id;
    for (size_t j = 0; j < r.completion_ids.size(); ++j, ++t) {
      ids_a[i][t] = r.completion_ids[j];
      mask_a[i][t - 1] = 1.0f;  // logits at t-1 predict the token at t
      old_a[i][t - 1] = r.logprobs[j];
      if (with_entropy) entropy_a[i][t - 1] = r.entropies[j];
    }
    for (int64_t k = 0; k < t; ++k) att_a[i][k] = 1;
    batch.seq_lengths.push_back(p + static_cast<int64_t>(r.completion_ids.size()));
    batch.prompt_lengths.push_back(p);
    batch.prompt_keys.push_back(first_row.emplace(r.prompt_ids, i).first->second);
  }
  batch.input_ids = ids;
  batch.attention_mask = attention;
  batch.response_mask = mask;
  batch.old_logprobs = old;
  if (with_entropy) batch.behaviour_entropy = entropy;
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
  out.behaviour_entropy = pick(behaviour_entropy, length - 1);
  out.policy_mask = pick(policy_mask, length - 1);
  out.advantages = advantages.index_select(0, index.to(advantages.device()));
  for (int64_t r : rows) {
    out.seq_lengths.push_back(seq_lengths[r]);
    if (!prompt_keys.empty()) {
      out.prompt_lengths.push_back(prompt_lengths.at(r));
      out.prompt_keys.push_back(prompt_keys.at(r));
    }
  }
  return out;
}

std::vector<int64_t> TrainBatch::completion_lengths() const {
  GRPO_CHECK(prompt_lengths.size() == seq_lengths.size(),
             "TrainBatch: prompt lengths unknown for completion lengths");
  std::vector<int64_t> out(seq_lengths.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = seq_lengths[i] - prompt_lengths[i];
  return out;
}

std::vector<int64_t> row_range(int64_t begin, int64_t end) {
  std::vector<int64_t> rows;
  for (int64_t r = begin; r < end; ++r) rows.push_back(r);
  return rows;
}

std::vector<std::vector<int64_t>> length_sorted_micro_batches(const std::vector<int64_t>& lengths,
                                                              int64_t begin, int64_t end,
                                                              int64_t micro, int64_t max_tokens) {
  const auto rows = static_cast<int64_t>(lengths.size());
  GRPO_CHECK(0 <= begin && begin <= end && end <= rows && micro > 0,
             "length_sorted_micro_batches: bad range [", begin, ", ", end, ") of ", rows,
             " rows or micro-batch size ", micro);
  std::vector<int64_t> order = row_range(begin, end);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return lengths[static_cast<size_t>(a)] > lengths[static_cast<size_t>(b)];
  });
  std::vector<std::vector<int64_t>> out;
  for (int64_t r : order) {
    const bool fits = !out.empty() && static_cast<int64_t>(out.back().size()) < micro &&
                      (max_tokens <= 0 || (static_cast<int64_t>(out.back().size()) +
                                           1) * lengths[static_cast<size_t>(out.back().front())] <=
                                              max_tokens);
    if (!fits) out.emplace_back();
    out.back().push_back(r);
  }
  return out;
}

algo::PolicyLossInputs policy_loss_inputs(const TrainBatch& sub, const TokenOutputs& tokens,
                                          bool entropy_bonus) {
  algo::PolicyLossInputs in;
  in.logprobs = tokens.logprobs;
  in.old_logprobs = sub.old_logprobs;
  in.advantages = sub.advantages;
  in.mask = sub.response_mask;
  in.ref_logprobs = sub.ref_logprobs;
  in.policy_mask = sub.policy_mask;
  in.entropy =
      entropy_bonus || !tokens.entropy.defined() ? tokens.entropy : tokens.entropy.detach();
  return in;
}

TrainBatch TrainBatch::to(const at::Device& device) const {
  auto move = [&](const at::Tensor& t) { return t.defined() ? t.to(device) : t; };
  TrainBatch out = *this;
  out.input_ids = move(input_ids);
  out.attention_mask = move(attention_mask);
  out.response_mask = move(response_mask);
  out.old_logprobs = move(old_logprobs);
  out.ref_logprobs = move(ref_logprobs);
  out.behaviour_entropy = move(behaviour_entropy);
  out.policy_mask = move(policy_mask);
  out.advantages = move(advantages);
  return out;
}

PickedLogprobs next_token_logprobs(model::CausalLM& model, const at::Tensor& input_ids,
                                   const at::Tensor& attention_mask, const at::Tensor& mask,
                                   double temperature, bool with_entropy) {
  const int64_t length = input_ids.size(1);
  model::ForwardOptions options;
  options.attention_mask = attention_mask;
  options.hidden_only = true;
  const at::Tensor hidden = model->forward(input_ids, options).hidden;  // (N, L, H)
  // Position (i, t) of the (N, L-1) mask is hidden row i * L + t and predicts input_ids[i, t + 1].
  const at::Tensor where = mask.nonzero();  // (R, 2)
  const at::Tensor row = where.select(1, 0), col = where.select(1, 1);
  const at::Tensor hidden_rows = row * length + col;
  PickedLogprobs out;
  out.values = ops::token_logprobs(
      hidden.reshape({-1, hidden.size(-1)}).index_select(0, hidden_rows), model->output_embedding(),
      input_ids.reshape({-1}).index_select(0, hidden_rows + 1), temperature, with_entropy);
  out.positions = row * (length - 1) + col;
  return out;
}

TokenOutputs token_outputs(model::CausalLM& model, const TrainBatch& batch, double temperature,
                           bool with_entropy) {
  const int64_t n = batch.size(), length = batch.input_ids.size(1);
  // Only the completion positions are projected onto the vocabulary: prompt and padding rows
  // never reach the loss.
  return scatter_token_outputs(next_token_logprobs(model, batch.input_ids, batch.attention_mask,
                                                   batch.response_mask, temperature, with_entropy),
                               n, length);
}

TokenOutputs scatter_token_outputs(const PickedLogprobs& picked, int64_t rows, int64_t length) {
  const auto scatter = [&](const at::Tensor& values) {
    return at::zeros({rows * (length - 1)}, values.options())
        .index_copy(0, picked.positions, values)
        .view({rows, length - 1});
  };
  TokenOutputs out;
  out.logprobs = scatter(picked.values.logprobs);
  if (picked.values.entropy.defined()) out.entropy = scatter(picked.values.entropy);
  return out;
}

}  // namespace grpo::train
