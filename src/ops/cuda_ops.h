// Private to ops: the CUDA paths of the entry points, compiled only when kernels/ is linked
// (GRPO_KERNELS_LINKED). Each `*_supported` says whether the kernel takes these tensors; the
// entry points fall back to the ATen reference otherwise.
#pragma once

#include <ATen/ATen.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "grpo/core/error.h"
#include "grpo/ops/moe.h"

#define GRPO_CUDA_CHECK(expr)                                                                   \
  do {                                                                                          \
    const cudaError_t grpo_cuda_err_ = (expr);                                                  \
    GRPO_CHECK(grpo_cuda_err_ == cudaSuccess, #expr, ": ", cudaGetErrorString(grpo_cuda_err_)); \
  } while (0)

namespace grpo::ops::cuda {

// Whether a tensor lives where the kernels run: a CUDA device, or the CPU when tests/emu builds
// these wrappers against its emulated device.
inline bool on_kernel_device(const at::Tensor& t) {
#ifdef GRPO_KERNELS_EMULATED
  return t.is_cpu();
#else
  return t.is_cuda();
#endif
}

// An optional tensor argument of a custom autograd function: LibTorch 1.13 rejects undefined
// tensors among them (2.x accepts them), so an absent one travels as nullopt.
inline c10::optional<at::Tensor> present(const at::Tensor& t) {
  return t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt;
}

bool attention_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         const at::Tensor& key_mask);
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale, const at::Tensor& key_mask);
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale, int num_splits);
at::Tensor varlen_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k,
                            int64_t max_seqlen_q, int64_t max_seqlen_k, double scale);

bool route_supported(const at::Tensor& logits, const RouterParams& params);
Routing route(const at::Tensor& logits, const RouterParams& params,
              const at::Tensor& correction_bias);
bool dispatch_supported(const at::Tensor& experts, int64_t num_experts);
Dispatch dispatch(const at::Tensor& experts, int64_t num_experts);
bool rows_supported(const at::Tensor& x, const Dispatch& d);
at::Tensor permute(const at::Tensor& x, const Dispatch& d);
at::Tensor combine(const at::Tensor& y, const at::Tensor& weights, const Dispatch& d,
                   int64_t num_tokens);
bool grouped_linear_supported(const at::Tensor& x, at::TensorList weights);
at::Tensor grouped_linear(const at::Tensor& x, const std::vector<int64_t>& offsets,
                          at::TensorList weights);

}  // namespace grpo::ops::cuda
