// Each distinct prompt of a minibatch through the model once; see shared_prompts.h.
#include "grpo/train/shared_prompts.h"

#include <torch/csrc/autograd/autograd.h>

#include <algorithm>

#include "grpo/core/error.h"
#include "grpo/ops/token_logprobs.h"

namespace grpo::train {

namespace {

at::Tensor long_column(const std::vector<int64_t>& values, const at::Device& device) {
  return at::tensor(values, at::kLong).to(device).unsqueeze(1);  // (n, 1)
}

// Tokens the plain forward runs for `micro_batches`: each pads its rows to its longest (by
// `lengths`, plus `extra`, at least `least`).
int64_t padded_tokens(const std::vector<std::vector<int64_t>>& micro_batches,
                      const std::vector<int64_t>& lengths, int64_t extra, int64_t least,
                      int64_t* largest = nullptr) {
  int64_t total = 0;
  for (const auto& rows : micro_batches) {
    int64_t longest = 0;
    for (int64_t r : rows) longest = std::max(longest, lengths[static_cast<size_t>(r)]);
    const int64_t tokens = static_cast<int64_t>(rows.size()) * std::max(longest + extra, least);
    total += tokens;
    if (largest != nullptr) *largest = std::max(*largest, tokens);
  }
  return total;
}

}  // namespace

SharedPrompts::SharedPrompts(model::CausalLM& model, const TrainBatch& batch,
                             const std::vector<int64_t>& rows) {
  GRPO_CHECK(!rows.empty() && batch.prompt_keys.size() == batch.seq_lengths.size() &&
                 batch.prompt_lengths.size() == batch.seq_lengths.size(),
             "SharedPrompts: no rows, or the batch does not know its prompts");
  std::vector<int64_t> firsts, lengths;  // per distinct prompt: its first row, its length
  for (int64_t r : rows) {
    const auto key = batch.prompt_keys.at(static_cast<size_t>(r));
    if (slot_.emplace(key, static_cast<int64_t>(firsts.size())).second) {
      firsts.push_back(r);
      lengths.push_back(batch.prompt_lengths[static_cast<size_t>(r)]);
    }
  }
  const int64_t longest = *std::max_element(lengths.begin(), lengths.end());
  const at::Device device = batch.input_ids.device();
  // Left padding: column c of prompt u holds its token c - (P - p_u).
  const at::Tensor columns = at::arange(longest, at::TensorOptions(at::kLong).device(device))
                                 .unsqueeze(0)
                                 .add(long_column(lengths, device))
                                 .sub(longest);  // (U, P)
  const at::Tensor real = columns.ge(0);
  const at::Tensor positions = columns.clamp_min(0);
  mask_ = real.to(at::kLong);
  const at::Tensor ids = batch.input_ids.index_select(0, at::tensor(firsts, at::kLong).to(device))
                             .gather(1, positions)
                             .masked_fill(real.logical_not(), 0);
  model::ForwardOptions options;
  options.attention_mask = mask_;
  options.position_ids = positions;
  options.record_prefix = &kv_;
  options.hidden_only = true;
  last_hidden_ = model->forward(ids, options).hidden.select(1, longest - 1);  // (U, H)
}

void SharedPrompts::detach() {
  GRPO_CHECK(forward_outputs_.empty(), "SharedPrompts::detach called twice");
  const auto cut = [&](at::Tensor& t) {
    forward_outputs_.push_back(t);
    t = t.detach().requires_grad_(t.requires_grad());
  };
  for (auto& k : kv_.keys) cut(k);
  for (auto& v : kv_.values) cut(v);
  cut(last_hidden_);
}

void SharedPrompts::backward() {
  GRPO_CHECK(!forward_outputs_.empty(), "SharedPrompts::backward without detach()");
  std::vector<at::Tensor> leaves = kv_.keys;
  leaves.insert(leaves.end(), kv_.values.begin(), kv_.values.end());
  leaves.push_back(last_hidden_);
  std::vector<at::Tensor> outputs, grads;
  for (size_t i = 0; i < leaves.size(); ++i) {
    if (forward_outputs_[i].requires_grad() && leaves[i].grad().defined()) {
      outputs.push_back(forward_outputs_[i]);
      grads.push_back(leaves[i].grad());
    }
  }
  forward_outputs_.clear();
  if (!outputs.empty()) torch::autograd::backward(outputs, grads);
}

at::Tensor SharedPrompts::slots_of(const TrainBatch& sub) const {
  GRPO_CHECK(static_cast<int64_t>(sub.prompt_keys.size()) == sub.size(),
             "SharedPrompts: the sub-batch does not know its prompts");
  std::vector<int64_t> slots;
  for (int64_t key : sub.prompt_keys) {
    const auto it = slot_.find(key);
    GRPO_CHECK(it != slot_.end(), "SharedPrompts: a row's prompt is not among the shared ones");
    slots.push_back(it->second);
  }
  return at::tensor(slots, at::kLong).to(mask_.device());
}

TokenOutputs SharedPrompts::token_outputs(model::CausalLM& model, const TrainBatch& sub,
                                          double temperature, bool with_entropy) const {
  const int64_t n = sub.size(), length = sub.input_ids.size(1);
  const at::Device device = sub.input_ids.device();
  const at::Tensor slots = slots_of(sub);
  const std::vector<int64_t> completion = sub.completion_lengths();
  // The last completion token predicts nothing: a row's input is its first c - 1 tokens.
  const int64_t steps = *std::max_element(completion.begin(), completion.end()) - 1;
  const at::Tensor prompt_length = long_column(sub.prompt_lengths, device);  // (n, 1)
  // Column j of `hidden` predicts completion token j: the prompt's last hidden state, then the
  // completion's own.
  at::Tensor hidden = last_hidden_.index_select(0, slots).unsqueeze(1);  // (n, 1, H)
  if (steps > 0) {
    const at::Tensor j =
        at::arange(steps, at::TensorOptions(at::kLong).device(device)).unsqueeze(0);
    const at::Tensor real = j.lt(long_column(completion, device).sub(1));  // (n, steps)
    const at::Tensor positions = at::where(real, prompt_length + j, prompt_length);
    model::ForwardOptions options;
    options.prefix = &kv_;
    options.prefix_rows = slots;
    options.attention_mask = at::cat({mask_.index_select(0, slots), real.to(at::kLong)}, 1);
    options.position_ids = positions;
    options.hidden_only = true;
    const at::Tensor ids =
        sub.input_ids.gather(1, positions.clamp_max(length - 1)).masked_fill(real.logical_not(), 0);
    hidden = at::cat({hidden, model->forward(ids, options).hidden}, 1);  // (n, steps + 1, H)
  }
  // As next_token_logprobs: entry (i, t) of the response mask predicts input_ids[i, t + 1],
  // completion token t - (p_i - 1), from hidden column t - (p_i - 1).
  const at::Tensor where = sub.response_mask.nonzero();  // (R, 2)
  const at::Tensor row = where.select(1, 0), col = where.select(1, 1);
  const at::Tensor column = col - prompt_length.squeeze(1).index_select(0, row) + 1;
  const int64_t width = hidden.size(1);
  PickedLogprobs picked;
  picked.values = ops::token_logprobs(
      hidden.reshape({-1, hidden.size(-1)}).index_select(0, row * width + column),
      model->output_embedding(),
      sub.input_ids.reshape({-1}).index_select(0, row * length + col + 1), temperature,
      with_entropy);
  picked.positions = row * (length - 1) + col;
  return scatter_token_outputs(picked, n, length);
}

bool prompt_sharing_pays(const TrainBatch& batch, int64_t begin, int64_t end, int64_t micro,
                         int64_t max_tokens) {
  if (begin >= end || batch.prompt_keys.size() != batch.seq_lengths.size()) return false;
  std::unordered_map<int64_t, int64_t> prompts;  // key -> length
  int64_t longest = 0;
  for (int64_t r = begin; r < end; ++r) {
    const auto i = static_cast<size_t>(r);
    prompts.emplace(batch.prompt_keys[i], batch.prompt_lengths[i]);
    longest = std::max(longest, batch.prompt_lengths[i]);
  }
  const int64_t prompt_tokens = static_cast<int64_t>(prompts.size()) * longest;
  int64_t largest_micro = 0;
  const int64_t whole =
      padded_tokens(length_sorted_micro_batches(batch.seq_lengths, begin, end, micro, max_tokens),
                    batch.seq_lengths, 0, 2, &largest_micro);
  const auto completion = batch.completion_lengths();
  const int64_t continued = padded_tokens(
      length_sorted_micro_batches(completion, begin, end, micro, max_tokens), completion, -1, 0);
  // At least a tenth fewer tokens: the prompts' own forward and the completions' attention to
  // their keys cost something beyond the token count.
  return 10 * (prompt_tokens + continued) <= 9 * whole && prompt_tokens <= largest_micro;
}

TokenOutputs ForwardPlan::token_outputs(model::CausalLM& model, const TrainBatch& sub,
                                        double temperature, bool with_entropy) const {
  return prompts ? prompts->token_outputs(model, sub, temperature, with_entropy)
                 : train::token_outputs(model, sub, temperature, with_entropy);
}

ForwardPlan plan_forward(model::CausalLM& model, const TrainBatch& batch, int64_t begin,
                         int64_t end, int64_t micro, bool share, int64_t max_tokens) {
  ForwardPlan plan;
  if (share && prompt_sharing_pays(batch, begin, end, micro, max_tokens)) {
    plan.prompts.emplace(model, batch, row_range(begin, end));
  }
  plan.micro_batches = length_sorted_micro_batches(
      plan.prompts ? batch.completion_lengths() : batch.seq_lengths, begin, end, micro, max_tokens);
  return plan;
}

at::Tensor frozen_logprobs(model::CausalLM& model, const TrainBatch& batch, int64_t micro,
                           bool share, double temperature, int64_t max_tokens) {
  // Allocated outside inference mode: the loss uses it next to tensors that record autograd.
  auto out = at::zeros_like(batch.old_logprobs);
  c10::InferenceMode inference;
  const ForwardPlan plan = plan_forward(model, batch, 0, batch.size(), micro, share, max_tokens);
  for (const auto& rows : plan.micro_batches) {
    const auto lp = plan.token_outputs(model, batch.select(rows), temperature, false).logprobs;
    out.narrow(1, 0, lp.size(1)).index_copy_(0, at::tensor(rows, at::kLong).to(out.device()), lp);
  }
  return out;
}

}  // namespace grpo::train
