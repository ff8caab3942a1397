// From scored rollouts to the tensors of the update phase: each completion right-padded after
// its prompt into one (N, L) batch, with the response mask, behaviour log-probs and advantages
// laid out at the positions whose logits predict the completion tokens.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "grpo/algo/policy_loss.h"
#include "grpo/model/modules.h"
#include "grpo/ops/token_logprobs.h"
#include "grpo/rollout/engine.h"

namespace grpo::train {

struct TrainBatch {
  at::Tensor input_ids;       // (N, L) int64: prompt + completion, right-padded with 0
  at::Tensor attention_mask;  // (N, L) int64: 1 on real tokens
  // Targets are input_ids[:, 1:]; position t of the (N, L-1) tensors is predicted by logits[t].
  at::Tensor response_mask;  // (N, L-1) float32: 1 where the target is a completion token
  at::Tensor old_logprobs;   // (N, L-1) float32: behaviour log-probs recorded by the engine
  at::Tensor ref_logprobs;   // (N, L-1) float32 or undefined (beta == 0)
  // (N, L-1) float32: the behaviour policy's entropy at each completion token, when the engine
  // recorded it (SamplingParams::record_entropy); else undefined.
  at::Tensor behaviour_entropy;
  // (N, L-1) float32 0/1: the tokens whose policy-gradient term counts
  // (algorithm.top_entropy_quantile); undefined: every response token.
  at::Tensor policy_mask;
  at::Tensor advantages;             // (N) float32, one per completion
  std::vector<int64_t> seq_lengths;  // real tokens per row (prompt + completion)
  // Prompt tokens per row, and a key per row: rows with equal keys have identical prompts (the
  // first such row's index in make_train_batch). Empty: unknown (no prompt sharing).
  std::vector<int64_t> prompt_lengths, prompt_keys;

  int64_t size() const { return input_ids.size(0); }
  // seq_lengths minus prompt_lengths.
  std::vector<int64_t> completion_lengths() const;
  // Rows `rows` (int64 on any device), trimmed to their longest real sequence.
  TrainBatch select(const std::vector<int64_t>& rows) const;
  TrainBatch to(const at::Device& device) const;
};

// begin, begin + 1, ..., end - 1.
std::vector<int64_t> row_range(int64_t begin, int64_t end);

// Rows [begin, end) in micro-batches of at most `micro` rows, longest first by `lengths` (one per
// row: TrainBatch::seq_lengths, or completion_lengths() for SharedPrompts), so that each
// micro-batch pads to lengths close to its own rows' (TrainBatch::select trims to the longest
// row). With max_tokens > 0 (trainer.max_tokens_per_micro_batch) a micro-batch also takes a
// row only while its rows times its first (longest) row's length stay within max_tokens; a row
// longer than that goes alone. A sum over the micro-batches is the same as in row order.
std::vector<std::vector<int64_t>> length_sorted_micro_batches(const std::vector<int64_t>& lengths,
                                                              int64_t begin, int64_t end,
                                                              int64_t micro,
                                                              int64_t max_tokens = 0);

// rollouts in the order of `advantages` (N). Rows with an empty completion keep a zero mask.
TrainBatch make_train_batch(const std::vector<rollout::Rollout>& rollouts,
                            const at::Tensor& advantages);

// Log-probs (and entropy) of the next tokens input_ids[i, t + 1] at the positions where `mask`
// (N, L-1) is non-zero, from one forward of `model` (attention_mask may be undefined) that
// projects only those hidden rows onto the vocabulary (ops::token_logprobs).
struct PickedLogprobs {
  ops::TokenLogprobs values;  // (R) each, in the row-major order of the mask's non-zeros
  at::Tensor positions;       // (R) int64: flat index i * (L-1) + t of each picked entry
};
PickedLogprobs next_token_logprobs(model::CausalLM& model, const at::Tensor& input_ids,
                                   const at::Tensor& attention_mask, const at::Tensor& mask,
                                   double temperature, bool with_entropy);

// Both (N, L-1) float32, set where batch.response_mask is 1 and 0 elsewhere.
struct TokenOutputs {
  at::Tensor logprobs;  // log_softmax(logits / T) at the targets
  at::Tensor entropy;   // entropy of softmax(logits / T), or undefined
};

// One forward of `model` over batch.input_ids; gradients flow unless the caller disabled them.
// Only the completion positions are projected onto the vocabulary (ops::token_logprobs). The
// log-prob is the rollout engine's definition (rollout::token_logprobs) computed in another
// order, so the first importance ratio of a step is 1 up to floating-point reassociation.
TokenOutputs token_outputs(model::CausalLM& model, const TrainBatch& batch, double temperature,
                           bool with_entropy);

// The (N, L-1) TokenOutputs of `picked` over a batch of N rows of length L.
TokenOutputs scatter_token_outputs(const PickedLogprobs& picked, int64_t rows, int64_t length);

// The policy loss's inputs for micro-batch `sub` (TrainBatch::select) from its forward's
// `tokens`. The entropy keeps its autograd graph only with `entropy_bonus`
// (algorithm.entropy_coef != 0); otherwise it is only measured.
algo::PolicyLossInputs policy_loss_inputs(const TrainBatch& sub, const TokenOutputs& tokens,
                                          bool entropy_bonus);

}  // namespace grpo::train
