// The c10d differences between Debian's LibTorch 1.13 and PyTorch 2.x, private to the dist layer:
// the backends derive from ProcessGroup in 1.13 and from Backend in 2.x, and which backends a
// build has (Gloo needs the gloo headers, which pip wheels do not ship; NCCL a CUDA LibTorch).
#pragma once

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "grpo/torch_compat.h"

// GRPO_DIST_WITH_GLOO: src/dist/CMakeLists.txt found gloo headers that match this LibTorch.
#if defined(USE_C10D_GLOO) && defined(GRPO_DIST_WITH_GLOO)
#define GRPO_DIST_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#else
#define GRPO_DIST_GLOO 0
#endif

#if defined(USE_C10D_NCCL) && __has_include(<nccl.h>)
#define GRPO_DIST_NCCL 1
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#else
#define GRPO_DIST_NCCL 0
#endif

namespace grpo::dist::compat {

#if GRPO_TORCH_AT_LEAST(2, 0)
using Backend = c10d::Backend;
#else
using Backend = c10d::ProcessGroup;
#endif
using BackendPtr = c10::intrusive_ptr<Backend>;

}  // namespace grpo::dist::compat
