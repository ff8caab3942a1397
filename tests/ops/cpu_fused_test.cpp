// The fused CPU paths (src/ops/cpu_attention.cpp, cpu_norm_rope.cpp) against the ATen reference,
// which ops_test.cpp checks against explicit loops and formulas. Attention: values and the three
// gradients in float64 over grouped-query heads, a KV-cache offset, left padding, masked holes,
// query rows that see no key, row blocks (more than 32 queries), strided inputs and stride-0
// gradients; float32 values. RMSNorm and RoPE: values and gradients in float64, float32 values.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <string>
#include <vector>

#include "grpo/ops/attention.h"
#include "grpo/ops/rms_norm.h"
#include "grpo/ops/rope.h"

namespace ops = grpo::ops;

namespace {

struct Case {
  int64_t b, hq, hkv, t, s, d;
  const char* mask;  // "none", "left" (left padding), "holes" (left padding and holes)
};

at::Tensor make_mask(const Case& c) {
  if (std::string(c.mask) == "none") return {};
  at::Tensor m = at::ones({c.b, c.s}, at::kBool);
  for (int64_t i = 0; i < c.b; ++i) {
    const int64_t pad = (i * 7) % c.s;  // row 0 unpadded; later rows padded, some fully
    m[i].narrow(0, 0, pad).fill_(false);
    if (std::string(c.mask) == "holes" && c.s - pad > 3) m[i][pad + 2] = false;
  }
  if (c.b > 2) m[c.b - 1].fill_(false);  // a batch row without any real key
  return m;
}

// (B, 1, T, 1): 1 where query row t sees at least one key.
at::Tensor rows_with_keys(const Case& c, const at::Tensor& mask) {
  at::Tensor seen = at::zeros({c.b, 1, c.t, 1}, at::kDouble);
  for (int64_t i = 0; i < c.b; ++i) {
    for (int64_t r = 0; r < c.t; ++r) {
      bool any = false;
      for (int64_t j = 0; j <= c.s - c.t + r; ++j)
        any = any || !mask.defined() || mask[i][j].item<bool>();
      seen[i][0][r][0] = any ? 1.0 : 0.0;
    }
  }
  return seen;
}

void check_case(const Case& c, bool strided) {
  SCOPED_TRACE(testing::Message() << "b=" << c.b << " hq=" << c.hq << " hkv=" << c.hkv
                                  << " t=" << c.t << " s=" << c.s << " d=" << c.d
                                  << " mask=" << c.mask << " strided=" << strided);
  auto input = [&](int64_t h, int64_t n) {
    // Strided: the (B, T, H, D) layout the model's projections give, viewed as (B, H, T, D).
    return strided ? at::randn({c.b, n, h, c.d}, at::kDouble).transpose(1, 2)
                   : at::randn({c.b, h, n, c.d}, at::kDouble);
  };
  const at::Tensor q = input(c.hq, c.t), k = input(c.hkv, c.s), v = input(c.hkv, c.s);
  const at::Tensor mask = make_mask(c);
  const at::Tensor seen = rows_with_keys(c, mask);
  const double scale = 0.37;
  // Upstream gradient zero on rows that see no key (their outputs differ by contract).
  const at::Tensor grad_out = at::randn({c.b, c.hq, c.t, c.d}, at::kDouble) * seen;

  auto run = [&](ops::KernelPolicy policy) {
    const at::Tensor qg = q.detach().requires_grad_(true), kg = k.detach().requires_grad_(true),
                     vg = v.detach().requires_grad_(true);
    const at::Tensor out = ops::causal_attention(qg, kg, vg, scale, mask, policy);
    const auto grads = torch::autograd::grad({out}, {qg, kg, vg}, {grad_out});
    return std::vector<at::Tensor>{out.detach(), grads[0], grads[1], grads[2]};
  };
  const auto ref = run(ops::KernelPolicy::reference);
  const auto fused = run(ops::KernelPolicy::automatic);
  EXPECT_TRUE(at::allclose(fused[0] * seen, ref[0] * seen, 1e-12, 1e-12));
  // Rows that see no key: zeros.
  EXPECT_EQ((fused[0] * (1 - seen)).abs().max().item<double>(), 0.0);
  for (int i = 1; i < 4; ++i) {
    EXPECT_TRUE(at::allclose(fused[i], ref[i], 1e-10, 1e-12))
        << "gradient " << i << " max diff " << (fused[i] - ref[i]).abs().max().item<double>();
  }
  // Without gradients: the same values.
  const at::Tensor nograd = ops::causal_attention(q, k, v, scale, mask);
  EXPECT_TRUE(at::allclose(nograd, fused[0], 0, 0));
}

class CpuAttention : public testing::Test {
 protected:
  void SetUp() override {
    if (!ops::cpu_attention_linked()) GTEST_SKIP() << "this build has no CBLAS: no fused CPU path";
    at::manual_seed(0);
  }
};

}  // namespace

TEST_F(CpuAttention, MatchesReferenceInFloat64) {
  const std::vector<Case> cases = {
      {2, 4, 2, 5, 5, 8, "none"},      // prefill, groups of 2
      {3, 4, 1, 6, 9, 5, "left"},      // KV-cache offset, odd head dim, a batch row without keys
      {3, 2, 2, 1, 7, 4, "left"},      // one decode query
      {3, 4, 2, 1, 9, 8, "holes"},     // decode: the group's heads stacked as rows
      {2, 8, 2, 1, 40, 16, "left"},    // the same, groups of 4
      {4, 6, 2, 40, 45, 16, "holes"},  // two row blocks, holes in the mask
      {2, 8, 2, 70, 70, 16, "left"},   // three row blocks, groups of 4
  };
  for (const Case& c : cases) {
    check_case(c, /*strided=*/false);
    check_case(c, /*strided=*/true);
  }
}

TEST_F(CpuAttention, ExpandedGradientAndFloat32) {
  // sum() gives a stride-0 upstream gradient.
  const at::Tensor q = at::randn({2, 2, 33, 8}, at::kDouble).requires_grad_(true);
  const at::Tensor k = at::randn({2, 1, 35, 8}, at::kDouble).requires_grad_(true);
  const at::Tensor v = at::randn({2, 1, 35, 8}, at::kDouble).requires_grad_(true);
  auto grads = [&](ops::KernelPolicy policy) {
    return torch::autograd::grad({ops::causal_attention(q, k, v, 0.5, {}, policy).sum()},
                                 {q, k, v});
  };
  const auto ref = grads(ops::KernelPolicy::reference);
  const auto fused = grads(ops::KernelPolicy::automatic);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(at::allclose(fused[i], ref[i], 1e-10, 1e-12));

  // float32: the polynomial exp and float products, against the reference within float rounding.
  const at::Tensor qf = at::randn({3, 4, 50, 16}), kf = at::randn({3, 2, 50, 16}),
                   vf = at::randn({3, 2, 50, 16});
  at::Tensor mask = at::ones({3, 50}, at::kBool);
  mask[1].narrow(0, 0, 20).fill_(false);
  const at::Tensor a = ops::causal_attention(qf, kf, vf, 0.25, mask);
  const at::Tensor b = ops::causal_attention(qf, kf, vf, 0.25, mask, ops::KernelPolicy::reference);
  // Batch row 1's first 20 queries see no key.
  const at::Tensor seen = at::ones({3, 1, 50, 1});
  seen[1].narrow(1, 0, 20).fill_(0);
  EXPECT_LT(((a - b) * seen).abs().max().item<double>(), 2e-6);
}

TEST(CpuFused, RmsNormMatchesFormulaAndReference) {
  at::manual_seed(3);
  const auto ref = ops::KernelPolicy::reference;
  for (const int64_t h : {1, 7, 16, 67}) {
    SCOPED_TRACE(h);
    const at::Tensor x = at::randn({3, 5, h}, at::kDouble).requires_grad_(true);
    const at::Tensor w = at::randn({h}, at::kDouble).requires_grad_(true);
    const at::Tensor dy = at::randn({3, 5, h}, at::kDouble);
    auto grads = [&](const at::Tensor& y) {
      const auto g = torch::autograd::grad({y}, {x, w}, {dy});
      return std::vector<at::Tensor>{y.detach(), g[0], g[1]};
    };
    const auto a = grads(ops::rms_norm(x, w, 1e-5));
    // The formula in float64 (the reference op normalises in float32, as Hugging Face does).
    const auto b = grads(w * (x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + 1e-5)));
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(at::allclose(a[i], b[i], 1e-12, 1e-12)) << i;
    // A strided input (the q-norm of a transposed view) and no gradient.
    const at::Tensor xt = x.detach().transpose(0, 1);
    EXPECT_TRUE(at::allclose(ops::rms_norm(xt, w.detach(), 1e-5),
                             ops::rms_norm(xt.contiguous(), w.detach(), 1e-5), 0, 0));
  }
  const at::Tensor xf = at::randn({4, 64}) * 3, wf = at::randn({64});
  EXPECT_LT(
      (ops::rms_norm(xf, wf, 1e-6) - ops::rms_norm(xf, wf, 1e-6, ref)).abs().max().item<double>(),
      1e-5);
}

TEST(CpuFused, RopeMatchesReference) {
  at::manual_seed(4);
  const auto ref = ops::KernelPolicy::reference;
  const int64_t b = 2, h = 3, t = 5, d = 8;
  const ops::RopeTable table = ops::rope_table(d, 64, ops::RopeParams{});
  const at::Tensor positions = at::arange(3, 3 + b * t, at::kLong).view({b, t});
  const auto [cos, sin] = ops::rope_cos_sin(table, positions, at::kDouble);
  for (const bool strided : {false, true}) {
    SCOPED_TRACE(strided);
    // Strided: a (B, T, H, D) tensor viewed as (B, H, T, D), as the model passes q and k.
    const at::Tensor x = (strided ? at::randn({b, t, h, d}, at::kDouble).transpose(1, 2)
                                  : at::randn({b, h, t, d}, at::kDouble))
                             .requires_grad_(true);
    const at::Tensor dy = at::randn({b, h, t, d}, at::kDouble);
    auto run = [&](ops::KernelPolicy policy) {
      const at::Tensor y = ops::apply_rope(x, cos, sin, policy);
      return std::vector<at::Tensor>{y.detach(), torch::autograd::grad({y}, {x}, {dy})[0]};
    };
    const auto a = run(ops::KernelPolicy::automatic), r = run(ref);
    EXPECT_TRUE(at::allclose(a[0], r[0], 1e-12, 1e-12));
    EXPECT_TRUE(at::allclose(a[1], r[1], 1e-12, 1e-12));
    if (strided) {
      EXPECT_TRUE(a[0].transpose(1, 2).is_contiguous());  // x's layout kept
    }
  }
  const auto [cf, sf] = ops::rope_cos_sin(table, positions, at::kFloat);
  const at::Tensor xf = at::randn({b, h, t, d});
  EXPECT_LT(
      (ops::apply_rope(xf, cf, sf) - ops::apply_rope(xf, cf, sf, ref)).abs().max().item<double>(),
      1e-6);
}
