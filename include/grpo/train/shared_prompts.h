// The reference and update forwards with each distinct prompt run once. GRPO samples G
// completions per prompt; the plain forward (token_outputs) runs the prompt's tokens G times.
// Here the distinct prompts of a minibatch go through the model once, left-padded, keeping every
// layer's keys and values (model::PrefixKV) and the hidden state at the prompt's last token (it
// predicts the first completion token); each row then runs only its completion, attending to its
// prompt's keys and values. The log-probs are token_outputs' up to floating-point reassociation.
//
// In training, the micro-batches' backward passes stop at detached copies of the prompts'
// outputs and accumulate their gradients there; backward() then carries those through the
// prompts' forward once, so the prompt's share of the gradient costs one backward, not G.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "grpo/model/modules.h"
#include "grpo/train/train_batch.h"

namespace grpo::train {

class SharedPrompts {
 public:
  // Runs the distinct prompts (TrainBatch::prompt_keys) of `rows` of `batch`; autograd records
  // when grad mode is on.
  SharedPrompts(model::CausalLM& model, const TrainBatch& batch, const std::vector<int64_t>& rows);

  // From here on token_outputs() sees detached copies of the prompts' outputs, which gather the
  // micro-batches' gradients; backward() sends them through the prompts' forward (once).
  void detach();
  void backward();

  // token_outputs(model, sub, ...) for a sub-batch whose rows' prompts are among the
  // constructor's (TrainBatch::select of some of its rows), computed from the prompts' state.
  TokenOutputs token_outputs(model::CausalLM& model, const TrainBatch& sub, double temperature,
                             bool with_entropy) const;

  int64_t prompts() const { return mask_.size(0); }

 private:
  at::Tensor slots_of(const TrainBatch& sub) const;  // (n) int64 on the device

  model::PrefixKV kv_;                         // per layer (U, Hkv, P, D)
  at::Tensor last_hidden_;                     // (U, H)
  at::Tensor mask_;                            // (U, P) int64: 1 on prompt tokens (left-padded)
  std::unordered_map<int64_t, int64_t> slot_;  // prompt key -> row of kv_
  std::vector<at::Tensor> forward_outputs_;    // after detach(): what backward() continues
};

// Whether SharedPrompts pays for rows [begin, end) of `batch` in micro-batches of `micro` rows:
// the distinct prompts plus the completions hold at least 10% fewer tokens than the rows run
// whole (padded per micro-batch both ways), and the
// prompts hold no more tokens than the largest micro-batch does (their activations stay alive
// through every micro-batch of a training step). `max_tokens` as length_sorted_micro_batches.
bool prompt_sharing_pays(const TrainBatch& batch, int64_t begin, int64_t end, int64_t micro,
                         int64_t max_tokens = 0);

// How the ref and update phases run rows [begin, end) of a batch: in micro-batches of whole rows
// (longest sequences first), or, with SharedPrompts, of completions (longest first).
struct ForwardPlan {
  std::optional<SharedPrompts> prompts;
  std::vector<std::vector<int64_t>> micro_batches;
  // The TokenOutputs of micro-batch `sub` (batch.select of one of micro_batches).
  TokenOutputs token_outputs(model::CausalLM& model, const TrainBatch& sub, double temperature,
                             bool with_entropy) const;
};

// SharedPrompts (run now, autograd recording when grad mode is on) when `share`
// (trainer.share_prompts) and prompt_sharing_pays; whole rows otherwise. Micro-batches of at
// most `micro` rows and `max_tokens` tokens (0: no token limit; length_sorted_micro_batches).
ForwardPlan plan_forward(model::CausalLM& model, const TrainBatch& batch, int64_t begin,
                         int64_t end, int64_t micro, bool share, int64_t max_tokens = 0);

// (N, L-1) log-probs of a frozen model (the reference, or the policy for recomputed behaviour
// log-probs) over the whole batch, in micro-batches of `micro` rows, in inference mode (no
// autograd bookkeeping; the model's inference-only fast paths apply). The result is an ordinary
// tensor, usable beside autograd ones. Autocast is the caller's.
at::Tensor frozen_logprobs(model::CausalLM& model, const TrainBatch& batch, int64_t micro,
                           bool share, double temperature, int64_t max_tokens = 0);

}  // namespace grpo::train
