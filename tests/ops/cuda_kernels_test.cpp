// CUDA kernels (kernels/) against the ATen reference ops through the ops entry points with
// `KernelPolicy::all`, on a GPU: the checks of kernel_checks.h (which explains the tolerances)
// and of model_checks.h (a tiny MoE model's logits, decoding and training gradients). Skips without
// a GPU or without the kernels linked into this build. tests/emu runs the same checks on the CPU's
// emulated device.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "kernel_checks.h"
#include "model_checks.h"

namespace ops = grpo::ops;
namespace kc = grpo::kernel_checks;

namespace {

#define GRPO_REQUIRE_GPU_KERNELS()                                                        \
  do {                                                                                    \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: GPU test skipped"; \
    if (!ops::kernels_linked()) GTEST_SKIP() << "CUDA kernels not linked in this build";  \
  } while (0)

// The kernel paths as a model reaches them: the public entry points with every fused path on.
kc::Backend gpu() {
  kc::Backend be;
  be.device = at::kCUDA;
  be.reference_dtype = [](at::ScalarType t) { return t; };
  be.attention = [](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                    const at::Tensor& mask) {
    return ops::causal_attention(q, k, v, scale, mask, ops::KernelPolicy::all);
  };
  be.varlen_attention = [](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const at::Tensor& cu_q, const at::Tensor& cu_k, int64_t max_q,
                           int64_t max_k, double scale) {
    return ops::varlen_attention(q, k, v, cu_q, cu_k, max_q, max_k, scale);
  };
  be.route = [](const at::Tensor& logits, const ops::RouterParams& params, const at::Tensor& bias) {
    ops::RouterParams p = params;
    p.kernels = ops::KernelPolicy::all;
    return ops::route(logits, p, bias);
  };
  be.dispatch = [](const at::Tensor& experts, int64_t e) {
    return ops::dispatch(experts, e, ops::KernelPolicy::all);
  };
  be.permute = [](const at::Tensor& x, const ops::Dispatch& d) { return ops::permute(x, d); };
  be.combine = [](const at::Tensor& y, const at::Tensor& w, const ops::Dispatch& d, int64_t n) {
    return ops::combine(y, w, d, n);
  };
  be.grouped_linear = [](const at::Tensor& x, const std::vector<int64_t>& offsets,
                         at::TensorList ws) {
    return ops::grouped_linear(x, offsets, ws, ops::KernelPolicy::all);
  };
  return be;
}

}  // namespace

TEST(CudaKernels, AttentionTrainingHeadDims64And128) {
  GRPO_REQUIRE_GPU_KERNELS();
  for (const int64_t d : {64, 128}) {
    for (const int64_t t : {1, 77, 200}) {
      SCOPED_TRACE("d=" + std::to_string(d) + " t=" + std::to_string(t));
      kc::check_attention(gpu(), {2, 4, 2, t, t, d, at::kBFloat16, {}, {}});
    }
  }
  // The layouts the model hands over: strided (B, T, H, D) projections, a KV cache's prefix.
  kc::check_attention(gpu(), {2, 4, 2, 77, 77, 128, at::kBFloat16, {}, {}, kc::Layout::model});
  kc::check_attention(gpu(), {2, 4, 2, 50, 90, 64, at::kBFloat16, {4, 0}, {}, kc::Layout::cache});
  kc::check_attention(gpu(), {2, 8, 2, 1, 300, 128, at::kBFloat16, {}, {}, kc::Layout::cache});
}

TEST(CudaKernels, AttentionFloat16AndNoGqa) {
  GRPO_REQUIRE_GPU_KERNELS();
  kc::check_attention(gpu(), {1, 3, 3, 130, 130, 64, at::kHalf, {}, {}});
}

TEST(CudaKernels, AttentionLeftPaddingMask) {
  GRPO_REQUIRE_GPU_KERNELS();
  kc::check_attention(gpu(), {3, 4, 1, 96, 96, 128, at::kBFloat16, {0, 5, 70}, {}});
}

TEST(CudaKernels, AttentionRightPaddingAndMaskWithAHole) {
  GRPO_REQUIRE_GPU_KERNELS();
  // Right padding (the training batches), alone and with left padding; length 1 after padding.
  kc::check_attention(gpu(), {3, 4, 2, 100, 100, 64, at::kBFloat16, {}, {0, 37, 99}});
  kc::check_attention(gpu(), {2, 4, 2, 70, 70, 128, at::kBFloat16, {6, 0}, {10, 3}});
  kc::check_attention_mask_with_hole(gpu());
}

TEST(CudaKernels, AttentionPrefillAfterCacheAndDecode) {
  GRPO_REQUIRE_GPU_KERNELS();
  kc::check_attention(gpu(), {2, 8, 2, 50, 130, 128, at::kBFloat16, {3, 0}, {}});   // T < S
  kc::check_attention(gpu(), {2, 8, 2, 1, 1000, 128, at::kBFloat16, {17, 0}, {}});  // split-K
  kc::check_attention(gpu(), {3, 16, 1, 1, 300, 64, at::kBFloat16, {}, {}});        // group of 16
  kc::check_attention(gpu(), {2, 4, 1, 1, 64, 128, at::kHalf, {}, {0, 20}});        // right padding
}

TEST(CudaKernels, VarlenAttentionMatchesPerSequenceReference) {
  GRPO_REQUIRE_GPU_KERNELS();
  kc::check_varlen_attention(gpu(), {1, 63, 130});
}

TEST(CudaKernels, RouteMatchesReferenceForwardAndBackward) {
  GRPO_REQUIRE_GPU_KERNELS();
  kc::check_route(gpu(), 1000);
}

TEST(CudaKernels, RouteTopKBeyondTheKeptGroupsGivesDistinctExperts) {
  GRPO_REQUIRE_GPU_KERNELS();
  kc::check_route_beyond_kept_groups(gpu());
}

TEST(CudaKernels, DispatchPermuteCombineIncludingEmptyAndSingleExpert) {
  GRPO_REQUIRE_GPU_KERNELS();
  kc::check_dispatch_permute_combine(gpu());
}

TEST(CudaKernels, GroupedLinearWithEmptyExperts) {
  GRPO_REQUIRE_GPU_KERNELS();
  kc::check_grouped_linear(gpu(), {0, 40, 40, 200, 201, 201}, 128, 64);
}

// `model.kernels: auto`, the default, takes the kernels (they have passed these tests on a GPU:
// ops::kCudaKernelsVerified) and gives the reference's logits within the derived tolerance.
TEST(CudaKernels, ModelLogitsAutoMatchReference) {
  GRPO_REQUIRE_GPU_KERNELS();
  ASSERT_TRUE(ops::cuda_kernels_enabled(ops::KernelPolicy::automatic))
      << "`auto` does not take the CUDA kernels (ops::kCudaKernelsVerified)";
  kc::check_model_logits(kc::TinyModel{}, at::kCUDA, 100, ops::KernelPolicy::automatic);
}

// Prefill of 600 tokens then decode steps: the decode kernel splits such a context in two.
TEST(CudaKernels, ModelDecodeThroughTheKvCacheMatchesReference) {
  GRPO_REQUIRE_GPU_KERNELS();
  kc::check_model_decode(kc::TinyModel{}, at::kCUDA, 600, 4);
}

TEST(CudaKernels, ModelSharedPromptTrainingGradientsMatchReference) {
  GRPO_REQUIRE_GPU_KERNELS();
  kc::check_model_training(kc::TinyModel{}, at::kCUDA, 60, 40);
}

// The same with LoRA adapters on the attention projections and activation checkpointing: the
// adapters' gradients through recomputed layers on the kernel path.
TEST(CudaKernels, ModelTrainingWithLoraAndCheckpointingMatchesReference) {
  GRPO_REQUIRE_GPU_KERNELS();
  kc::check_model_training(kc::TinyModel{}, at::kCUDA, 60, 40, kc::lora_with_checkpointing());
}
