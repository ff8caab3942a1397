// kernels/ and their ops wrappers on the emulated device (tests/emu/include): the checks of
// tests/ops/kernel_checks.h, which the GPU tests run through the ops entry points, here through
// grpo::ops::cuda on CPU tensors (the CPU build's dispatchers never pick those paths), at smaller
// sizes. Low-precision reference errors come from bfloat16 also for float16 kernels (a looser
// bound: the CPU ATen has no float16 matmul). Not shown here: speed, and whatever differs between
// the emulator and a GPU (docs/kernels.md); the GPU tests still decide.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../ops/kernel_checks.h"
#include "cuda_ops.h"
#include "grpo/kernels/moe.h"

namespace ops = grpo::ops;
namespace kc = grpo::kernel_checks;

namespace {

// Each path asserts that it takes the tensors before running them.
kc::Backend emulated() {
  kc::Backend be;
  be.device = at::kCPU;
  be.reference_dtype = [](at::ScalarType) { return at::kBFloat16; };
  be.attention = [](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                    const at::Tensor& mask) {
    EXPECT_TRUE(ops::cuda::attention_supported(q, k, v, mask));
    return ops::cuda::causal_attention(q, k, v, scale, mask);
  };
  be.varlen_attention = [](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const at::Tensor& cu_q, const at::Tensor& cu_k, int64_t max_q,
                           int64_t max_k, double scale) {
    return ops::cuda::varlen_attention(q, k, v, cu_q, cu_k, max_q, max_k, scale);
  };
  be.route = [](const at::Tensor& logits, const ops::RouterParams& p, const at::Tensor& bias) {
    EXPECT_TRUE(ops::cuda::route_supported(logits, p));
    return ops::cuda::route(logits, p, bias);
  };
  be.dispatch = [](const at::Tensor& experts, int64_t e) {
    EXPECT_TRUE(ops::cuda::dispatch_supported(experts, e));
    return ops::cuda::dispatch(experts, e);
  };
  be.permute = [](const at::Tensor& x, const ops::Dispatch& d) {
    EXPECT_TRUE(ops::cuda::rows_supported(x, d));
    return ops::cuda::permute(x, d);
  };
  be.combine = [](const at::Tensor& y, const at::Tensor& w, const ops::Dispatch& d, int64_t n) {
    EXPECT_TRUE(ops::cuda::rows_supported(y, d));
    return ops::cuda::combine(y, w, d, n);
  };
  be.grouped_linear = [](const at::Tensor& x, const std::vector<int64_t>& offsets,
                         at::TensorList ws) {
    EXPECT_TRUE(ops::cuda::grouped_linear_supported(x, ws));
    return ops::cuda::grouped_linear(x, offsets, ws);
  };
  return be;
}

}  // namespace

TEST(EmulatedKernels, AttentionTrainingHeadDims64And128) {
  for (const int64_t d : {64, 128}) {
    for (const int64_t t : {1, 77, 130}) {
      SCOPED_TRACE("d=" + std::to_string(d) + " t=" + std::to_string(t));
      kc::check_attention(emulated(), {2, 4, 2, t, t, d, at::kBFloat16, {}, {}});
    }
  }
  // The layouts the model hands over: strided (B, T, H, D) projections, a KV cache's prefix.
  kc::check_attention(emulated(), {2, 4, 2, 77, 77, 128, at::kBFloat16, {}, {}, kc::Layout::model});
  kc::check_attention(emulated(),
                      {2, 4, 2, 50, 90, 64, at::kBFloat16, {4, 0}, {}, kc::Layout::cache});
  kc::check_attention(emulated(), {2, 8, 2, 1, 300, 128, at::kBFloat16, {}, {}, kc::Layout::cache});
}

TEST(EmulatedKernels, AttentionFloat16AndNoGqa) {
  kc::check_attention(emulated(), {1, 3, 3, 70, 70, 64, at::kHalf, {}, {}});
}

TEST(EmulatedKernels, AttentionLeftPaddingMask) {
  kc::check_attention(emulated(), {3, 2, 1, 96, 96, 128, at::kBFloat16, {0, 5, 70}, {}});
}

TEST(EmulatedKernels, AttentionRightPaddingAndMaskWithAHole) {
  kc::check_attention(emulated(), {3, 4, 2, 100, 100, 64, at::kBFloat16, {}, {0, 37, 99}});
  kc::check_attention(emulated(), {2, 4, 2, 70, 70, 128, at::kBFloat16, {6, 0}, {10, 3}});
  kc::check_attention_mask_with_hole(emulated());
}

TEST(EmulatedKernels, AttentionPrefillAfterCacheAndDecode) {
  kc::check_attention(emulated(), {2, 4, 2, 50, 130, 128, at::kBFloat16, {3, 0}, {}});  // T < S
  kc::check_attention(emulated(), {2, 8, 2, 1, 600, 128, at::kBFloat16, {17, 0}, {}});  // split-K
  kc::check_attention(emulated(), {2, 16, 1, 1, 300, 64, at::kBFloat16, {}, {}});  // group of 16
  kc::check_attention(emulated(), {2, 4, 1, 1, 64, 128, at::kHalf, {}, {0, 20}});  // right pad
}

// The decode kernel at split counts chosen by the caller (ops::decode_attention, what
// `grpo bench kernels` compares), including one that does not divide the keys evenly.
TEST(EmulatedKernels, DecodeAttentionAtEachSplitCount) {
  for (const int splits : {1, 3, 7}) {
    kc::Backend be = emulated();
    be.attention = [splits](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale, const at::Tensor& mask) {
      EXPECT_FALSE(mask.defined());
      return ops::cuda::decode_attention(q, k, v, scale, splits);
    };
    SCOPED_TRACE(splits);
    kc::check_attention(be, {2, 8, 2, 1, 600, 128, at::kBFloat16, {}, {}});
  }
}

TEST(EmulatedKernels, VarlenAttentionMatchesPerSequenceReference) {
  kc::check_varlen_attention(emulated(), {1, 63, 100});
}

TEST(EmulatedKernels, RouteMatchesReferenceForwardAndBackward) { kc::check_route(emulated(), 200); }

TEST(EmulatedKernels, RouteTopKBeyondTheKeptGroupsGivesDistinctExperts) {
  kc::check_route_beyond_kept_groups(emulated());
}

TEST(EmulatedKernels, DispatchPermuteCombineIncludingEmptyAndSingleExpert) {
  kc::check_dispatch_permute_combine(emulated());
}

TEST(EmulatedKernels, GroupedLinearWithEmptyExperts) {
  kc::check_grouped_linear(emulated(), {0, 40, 40, 100, 101, 101}, 64, 32);
}

// Both cuBLAS paths of kernels::grouped_gemm (one grouped call for small groups, a GEMM per group
// for large ones, chosen by one_call_max_mean_macs) give each group's product: C_g = A_g B_g^T
// with an empty group, in bfloat16 against the float32 product of the same bfloat16 inputs.
TEST(EmulatedKernels, GroupedGemmOneCallAndPerGroupPaths) {
  at::manual_seed(7);
  const std::vector<int64_t> m = {5, 0, 17, 1}, n(4, 24), k(4, 40);
  std::vector<at::Tensor> a, b, c;
  std::vector<const void*> pa, pb;
  std::vector<void*> pc;
  std::vector<int64_t> lda, ldb, ldc;
  const auto bf16 = at::TensorOptions().dtype(at::kBFloat16);
  for (size_t g = 0; g < m.size(); ++g) {
    a.push_back(at::randn({m[g], k[g]}, bf16));
    b.push_back(at::randn({n[g], k[g]}, bf16));
    c.push_back(at::zeros({m[g], n[g]}, bf16));
    pa.push_back(a[g].data_ptr());
    pb.push_back(b[g].data_ptr());
    lda.push_back(k[g]);
    ldb.push_back(k[g]);
    ldc.push_back(n[g]);
  }
  const at::Tensor workspace = at::empty({3 * static_cast<int64_t>(m.size())}, at::kLong);
  for (const double threshold : {1e30, 0.0}) {  // one call; a GEMM per group
    pc.clear();
    for (auto& t : c) pc.push_back(t.zero_().data_ptr());
    grpo::kernels::GroupedGemmParams p;
    p.groups = static_cast<int>(m.size());
    p.trans_b = true;
    p.m = m.data();
    p.n = n.data();
    p.k = k.data();
    p.a = pa.data();
    p.b = pb.data();
    p.c = pc.data();
    p.lda = lda.data();
    p.ldb = ldb.data();
    p.ldc = ldc.data();
    p.ptr_workspace = reinterpret_cast<void**>(workspace.data_ptr<int64_t>());
    p.one_call_max_mean_macs = threshold;
    ASSERT_EQ(grpo::kernels::grouped_gemm(at::cuda::getCurrentCUDABlasHandle(), p, nullptr),
              CUBLAS_STATUS_SUCCESS);
    for (size_t g = 0; g < m.size(); ++g) {
      const at::Tensor want = at::matmul(a[g].to(at::kFloat), b[g].to(at::kFloat).t());
      // One bfloat16 rounding of the fp32 result: half an ulp, 2^-8 relative.
      EXPECT_TRUE(at::allclose(c[g].to(at::kFloat), want, 1.0 / 256, 1e-6))
          << "threshold " << threshold << ", group " << g;
    }
  }
}
