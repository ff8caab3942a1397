// The one place that knows LibTorch version differences (Debian's 1.13 on the CPU box, PyTorch
// 2.x on GPU hosts). Code in the LibTorch layers calls these instead of testing versions itself.
#pragma once

#include <torch/cuda.h>
#include <torch/version.h>

#include <cstdint>

#define GRPO_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||       \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace grpo::compat {

// torch::cuda::device_count() returns size_t in 1.13 and int in 2.x.
inline int64_t cuda_device_count() { return static_cast<int64_t>(torch::cuda::device_count()); }

}  // namespace grpo::compat
