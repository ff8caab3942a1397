// Data-parallel gradient sums: the parameters' gradients are packed into flat buckets of at most
// distributed.bucket_mb and each bucket is all-reduced (sum) as one tensor. When armed before the
// last backward of an optimizer step, a bucket starts its all-reduce from an autograd hook as soon
// as its last gradient has been accumulated, overlapping communication with the rest of the
// backward pass (as DDP does); finish() reduces whatever is left. The parameters' gradients are
// views of the buckets (DDP's gradient_as_bucket_view): the backward accumulates into them, so the
// buckets take no memory beyond the gradients and nothing is copied, as long as gradients are
// zeroed in place between steps (train::Optimizer::zero_grad does); a gradient set to none is
// copied in and becomes the bucket view again.
#pragma once

#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "grpo/dist/process_group.h"

namespace grpo::dist {

// Buckets over tensors in reverse order (the order backward produces their gradients): a new
// bucket starts when the next tensor would take the current one past bucket_bytes, or has
// another dtype or device. A tensor larger than bucket_bytes gets a bucket of its own. Each
// bucket lists tensor indices in the order they were added.
std::vector<std::vector<size_t>> plan_buckets(const std::vector<at::Tensor>& tensors,
                                              size_t bucket_bytes);

struct ReducerStats {
  int64_t buckets = 0;
  int64_t launched_during_backward = 0;  // in the last finish(): buckets that overlapped
  // In the last finish(): parameters whose gradient autograd accumulated straight into its
  // bucket (all of them while gradients are only zeroed in place, never set to none).
  int64_t grads_in_buckets = 0;
};

class GradientReducer {
 public:
  // `params`: the trainable parameters, the same names in the same order on every rank. Their
  // autograd accumulators get a post hook that stays until the reducer is destroyed.
  GradientReducer(ProcessGroup& group, std::vector<std::pair<std::string, at::Tensor>> params,
                  size_t bucket_bytes);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Lets the next backward start bucket all-reduces from its hooks. Call it before the last
  // micro-batch's backward of an optimizer step (earlier backwards only accumulate).
  void arm();
  // Starts every bucket not started yet, in bucket order (all of them when not armed), waits for
  // all, and leaves each gradient (its bucket view) holding its sum over the ranks. A parameter
  // without a gradient counts as zero on that rank and receives the sum. Disarms.
  void finish();

  ReducerStats stats() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace grpo::dist
