// The model on the emulated device: the checks of tests/ops/model_checks.h, run by the ops and
// model layers compiled again with the emulated kernels linked (grpo_ops_emu, grpo_model_emu), so
// that the model's own calls (attention in training, prefill and decode through the KV cache,
// the MoE block's routing, dispatch and grouped expert products) reach the kernels on CPU
// tensors. Smaller sizes than the GPU tests'; the reference runs on ATen as everywhere.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "../ops/model_checks.h"
#include "grpo/ops/kernels.h"
#include "grpo_emu/runtime.h"

namespace kc = grpo::kernel_checks;
namespace ops = grpo::ops;

namespace {

kc::TinyModel tiny() {
  kc::TinyModel tm;
  tm.vocab = 64;
  tm.hidden = 128;
  tm.heads = 2;  // head dim 64
  tm.kv_heads = 1;
  tm.experts = 4;
  tm.moe_intermediate = 32;
  return tm;
}

// Device calls (kernel launches and GEMMs) of one forward of a model with `policy`.
uint64_t calls_of_forward(ops::KernelPolicy policy) {
  grpo::model::CausalLM m = kc::make_model(tiny(), policy, at::kCPU, at::kBFloat16);
  const at::Tensor ids = at::randint(0, 64, {2, 9}, at::kLong);
  torch::NoGradGuard no_grad;
  const uint64_t before = grpo_emu::device_calls();
  m->forward(ids);
  return grpo_emu::device_calls() - before;
}

}  // namespace

// Without this the checks below would compare the reference with itself.
TEST(EmulatedModel, KernelPathReachesTheDeviceAndReferenceDoesNot) {
  ASSERT_TRUE(ops::kernels_linked());
  const at::Tensor x = at::zeros({4, 8}, at::kBFloat16);
  EXPECT_TRUE(ops::cuda_kernels_for(x, ops::KernelPolicy::all));
  EXPECT_FALSE(ops::cuda_kernels_for(x, ops::KernelPolicy::reference));
  EXPECT_EQ(calls_of_forward(ops::KernelPolicy::reference), 0u);
  // Per layer at least attention, routing, dispatch, permute, 3 grouped GEMMs and combine.
  EXPECT_GE(calls_of_forward(ops::KernelPolicy::all), 2u * 8u);
  // `auto` (the default) takes the kernels too, once they have passed on a GPU.
  EXPECT_EQ(calls_of_forward(ops::KernelPolicy::automatic),
            ops::kCudaKernelsVerified ? calls_of_forward(ops::KernelPolicy::all) : 0u);
}

TEST(EmulatedModel, LogitsMatchReference) {
  kc::check_model_logits(tiny(), at::kCPU, 40);
  kc::check_model_logits(tiny(), at::kCPU, 40, ops::KernelPolicy::automatic);
}

TEST(EmulatedModel, DecodeThroughTheKvCacheMatchesReference) {
  kc::check_model_decode(tiny(), at::kCPU, 30, 3);
}

TEST(EmulatedModel, SharedPromptTrainingGradientsMatchReference) {
  kc::check_model_training(tiny(), at::kCPU, 20, 12);
}

// With LoRA adapters and activation checkpointing (the adapters' gradients through layers
// recomputed in the backward, on the kernel path).
TEST(EmulatedModel, TrainingWithLoraAndCheckpointingMatchesReference) {
  kc::check_model_training(tiny(), at::kCPU, 20, 12, kc::lora_with_checkpointing());
}
