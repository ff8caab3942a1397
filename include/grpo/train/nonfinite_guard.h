// NaN/Inf guard for a training step: a non-finite loss or gradient skips the optimizer step (the
// caller zeroes the gradients), is logged with where it first appeared, and too many skipped
// steps in a row abort the run with an error instead of training on garbage.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "grpo/train/optimizer.h"

namespace grpo::train {

// What check() found. `where` is "loss" or the name of the first parameter (in the order
// given) whose gradient holds a NaN or Inf; empty when everything is finite.
struct FiniteCheck {
  bool finite = true;
  std::string where;
};

// Finds the first non-finite value among the loss and the gradients, with one device sync.
FiniteCheck find_nonfinite(const at::Tensor& loss, const NamedParameters& params);

class NonFiniteGuard {
 public:
  // max_consecutive: trainer.max_nonfinite_steps (>= 1).
  explicit NonFiniteGuard(int max_consecutive);

  // True: the step may proceed. False: skip the optimizer step (logged as a warning). Throws
  // grpo::Error once max_consecutive steps in a row were non-finite. `step` is for messages.
  bool check(int64_t step, const at::Tensor& loss, const NamedParameters& params);
  // The same from the host-side loss and the gradients' global norm the caller already has
  // (clip_grad_norm): a NaN or Inf in any gradient makes the norm NaN or Inf, so both finite
  // means every gradient is, and the per-parameter scan (a reduction per tensor) runs only
  // otherwise, to say where (an fp32 norm that overflowed on finite gradients passes there).
  bool check(int64_t step, double loss, double grad_norm, const NamedParameters& params);

  int consecutive() const { return consecutive_; }
  int64_t total_skipped() const { return total_skipped_; }
  // Restores the counters from a checkpoint's trainer state.
  void restore(int consecutive, int64_t total_skipped);

 private:
  int max_consecutive_;
  int consecutive_ = 0;
  int64_t total_skipped_ = 0;
};

}  // namespace grpo::train
