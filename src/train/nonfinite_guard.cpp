// NaN/Inf detection over the loss and gradients, and the skip/abort policy.
#include "grpo/train/nonfinite_guard.h"

#include <cmath>

#include "grpo/core/error.h"
#include "grpo/core/log.h"

namespace grpo::train {

FiniteCheck find_nonfinite(const at::Tensor& loss, const NamedParameters& params) {
  // One flag per tensor, gathered and copied to the host once: a per-tensor .item() would
  // synchronise with the GPU hundreds of times per step.
  std::vector<at::Tensor> flags;  // () bool each: all finite
  std::vector<std::string> names;
  flags.reserve(params.size() + 1);
  if (loss.defined()) {
    flags.push_back(at::isfinite(loss.detach()).all());
    names.emplace_back("loss");
  }
  for (const auto& [name, p] : params) {
    if (!p.grad().defined()) continue;
    flags.push_back(at::isfinite(p.grad()).all());
    names.push_back(name);
  }
  FiniteCheck result;
  if (flags.empty()) return result;
  const at::Tensor all = at::stack(flags).to(at::kCPU);  // (n) bool
  const bool* ok = all.data_ptr<bool>();
  for (size_t i = 0; i < names.size(); ++i) {
    if (!ok[i]) {
      result.finite = false;
      result.where = names[i] == "loss" ? "loss" : "gradient of " + names[i];
      break;
    }
  }
  return result;
}

NonFiniteGuard::NonFiniteGuard(int max_consecutive) : max_consecutive_(max_consecutive) {
  GRPO_CHECK(max_consecutive >= 1, "max_nonfinite_steps must be >= 1, got ", max_consecutive);
}

bool NonFiniteGuard::check(int64_t step, const at::Tensor& loss, const NamedParameters& params) {
  const FiniteCheck found = find_nonfinite(loss, params);
  if (found.finite) {
    consecutive_ = 0;
    return true;
  }
  ++consecutive_;
  ++total_skipped_;
  GRPO_CHECK(consecutive_ < max_consecutive_, "step ", step, ": non-finite values in ", found.where,
             "; ", consecutive_,
             " steps in a row were non-finite (trainer.max_nonfinite_steps = ", max_consecutive_,
             "), aborting");
  log::warn("step ", step, ": non-finite values in ", found.where, "; skipping the step (",
            consecutive_, " in a row, abort at ", max_consecutive_, ")");
  return false;
}

bool NonFiniteGuard::check(int64_t step, double loss, double grad_norm,
                           const NamedParameters& params) {
  if (std::isfinite(loss) && std::isfinite(grad_norm)) {
    consecutive_ = 0;
    return true;
  }
  return check(step, at::scalar_tensor(loss, at::kDouble), params);
}

void NonFiniteGuard::restore(int consecutive, int64_t total_skipped) {
  consecutive_ = consecutive;
  total_skipped_ = total_skipped;
}

}  // namespace grpo::train
