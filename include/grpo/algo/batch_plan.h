// The one batch-size validator: how a step's prompts * G completions split into minibatches
// (one optimizer step each), per-rank shares and micro-batches (one forward/backward each).
#pragma once

#include <cstdint>

namespace grpo::algo {

struct BatchPlan {
  int64_t rollout_size = 0;          // completions per step, all ranks: prompts_per_step * G
  int64_t prompts_per_rank = 0;      // whole groups per rank, so advantages need no communication
  int64_t minibatch_size = 0;        // completions per optimizer step, all ranks
  int64_t minibatches_per_step = 0;  // optimizer steps per rollout batch and per mu iteration
  int64_t minibatch_per_rank = 0;    // completions per optimizer step on one rank
  int64_t micro_batch_size = 0;      // completions per forward/backward on one rank
  int64_t micro_batches_per_minibatch = 0;  // gradient accumulation steps on one rank
};

// minibatch_size 0 means the whole rollout batch, micro_batch_size 0 the rank's minibatch
// share (as the trainer: section documents). Throws one grpo::Error of kind config listing
// every number and every divisibility rule that fails.
BatchPlan plan_batches(int64_t prompts_per_step, int64_t group_size, int64_t minibatch_size,
                       int64_t micro_batch_size, int64_t world_size);

}  // namespace grpo::algo
