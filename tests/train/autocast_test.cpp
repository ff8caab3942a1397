// compat::AutocastGuard: matmuls of float32 inputs run in the low-precision dtype inside the
// guard (the fp32-master-weights mode of trainer.autocast), and the previous state returns.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "grpo/torch_compat.h"

TEST(Autocast, CpuBfloat16MatmulInsideTheGuardOnly) {
  const at::Tensor a = at::randn({4, 8});
  const at::Tensor b = at::randn({8, 3});
  {
    grpo::compat::AutocastGuard guard(at::kCPU, at::kBFloat16, true);
    const at::Tensor c = at::matmul(a, b);
    EXPECT_EQ(c.scalar_type(), at::kBFloat16);
    // Same as rounding the inputs to bfloat16 first (the product itself accumulates in fp32).
    const at::Tensor ref = at::matmul(a.to(at::kBFloat16), b.to(at::kBFloat16));
    EXPECT_TRUE(at::allclose(c.to(at::kFloat), ref.to(at::kFloat)));
    {
      grpo::compat::AutocastGuard nested(at::kCPU, at::kBFloat16, false);  // disabled: no-op
      EXPECT_EQ(at::matmul(a, b).scalar_type(), at::kBFloat16);
    }
  }
  EXPECT_EQ(at::matmul(a, b).scalar_type(), at::kFloat);
}
