// CUDA kernels (kernels/) against the ATen reference ops. Tolerances are derived, not guessed:
// the kernel's error against the fp32 reference may be at most a small multiple of the error of
// the same computation done by the reference in bfloat16 (flash-attention's rule). Skips
// without a GPU or without the kernels linked into this build.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "grpo/core/config/model.h"
#include "grpo/model/checkpoint.h"
#include "grpo/model/config.h"
#include "grpo/ops/attention.h"
#include "grpo/ops/kernels.h"
#include "grpo/ops/moe.h"

namespace ops = grpo::ops;

namespace {

constexpr double kFwdMultiple = 2.0;
constexpr double kBwdMultiple = 3.0;

#define GRPO_REQUIRE_GPU_KERNELS()                                                        \
  do {                                                                                    \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: GPU test skipped"; \
    if (!ops::kernels_linked()) GTEST_SKIP() << "CUDA kernels not linked in this build";  \
  } while (0)

double max_err(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
}

// err(kernel) <= multiple * err(reference at the same precision) + a floor for exact cases.
void expect_within(const char* what, const at::Tensor& kernel, const at::Tensor& ref_low,
                   const at::Tensor& ref32, double multiple) {
  const double ek = max_err(kernel, ref32), er = max_err(ref_low, ref32);
  EXPECT_LE(ek, multiple * er + 1e-5)
      << what << ": kernel error " << ek << ", reference bf16 error " << er;
}

at::TensorOptions cuda(at::ScalarType t) { return at::TensorOptions().device(at::kCUDA).dtype(t); }

struct AttnCase {
  int64_t b, hq, hkv, t, s, d;
  at::ScalarType dtype;
  std::vector<int64_t> pads;  // left padding per sequence (empty: no mask)
  std::vector<int64_t> ends;  // right padding per sequence (empty: none)
};

// Forward and backward of ops::causal_attention, kernel vs reference, on rows that see a key.
void check_attention(const AttnCase& c) {
  at::manual_seed(1);
  const at::Tensor q32 = at::randn({c.b, c.hq, c.t, c.d}, cuda(at::kFloat));
  const at::Tensor k32 = at::randn({c.b, c.hkv, c.s, c.d}, cuda(at::kFloat));
  const at::Tensor v32 = at::randn({c.b, c.hkv, c.s, c.d}, cuda(at::kFloat));
  const at::Tensor dout32 = at::randn({c.b, c.hq, c.t, c.d}, cuda(at::kFloat));
  at::Tensor mask, rows = at::ones({c.b, 1, c.t, 1}, cuda(at::kFloat));
  if (!c.pads.empty() || !c.ends.empty()) {
    mask = at::ones({c.b, c.s}, cuda(at::kBool));
    for (int64_t i = 0; i < c.b; ++i) {
      const int64_t pad = c.pads.empty() ? 0 : c.pads[i];
      mask[i].narrow(0, 0, pad).fill_(false);
      if (!c.ends.empty()) mask[i].narrow(0, c.s - c.ends[i], c.ends[i]).fill_(false);
      // Query rows at positions before the first real key see nothing: unused, not compared.
      // (Right padding leaves every row a key: padded rows see the real ones, as the reference.)
      const int64_t dead = std::max<int64_t>(0, pad - (c.s - c.t));
      rows[i].narrow(1, 0, std::min(dead, c.t)).fill_(0);
    }
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.d));
  auto run = [&](at::ScalarType dt, ops::KernelPolicy policy, bool grad) {
    at::Tensor q = q32.to(dt), k = k32.to(dt), v = v32.to(dt);
    if (dt == at::kFloat) {  // the fp32 reference starts from the same rounded inputs
      q = q32.to(c.dtype).to(at::kFloat);
      k = k32.to(c.dtype).to(at::kFloat);
      v = v32.to(c.dtype).to(at::kFloat);
    }
    q = q.detach().requires_grad_(grad);
    k = k.detach().requires_grad_(grad);
    v = v.detach().requires_grad_(grad);
    at::Tensor o = ops::causal_attention(q, k, v, scale, mask, policy);
    std::vector<at::Tensor> out{o * rows};
    if (grad) {
      (o.to(at::kFloat) * dout32.to(c.dtype).to(at::kFloat) * rows).sum().backward();
      out.push_back(q.grad());
      out.push_back(k.grad());
      out.push_back(v.grad());
    }
    return out;
  };
  const bool grad = c.t > 1 || c.s == c.t;
  const auto ref32 = run(at::kFloat, ops::KernelPolicy::reference, grad);
  const auto reflow = run(c.dtype, ops::KernelPolicy::reference, grad);
  const auto ker = run(c.dtype, ops::KernelPolicy::all, grad);
  expect_within("output", ker[0], reflow[0], ref32[0], kFwdMultiple);
  if (grad) {
    expect_within("dq", ker[1], reflow[1], ref32[1], kBwdMultiple);
    expect_within("dk", ker[2], reflow[2], ref32[2], kBwdMultiple);
    expect_within("dv", ker[3], reflow[3], ref32[3], kBwdMultiple);
  }
}

}  // namespace

TEST(CudaKernels, AttentionTrainingHeadDims64And128) {
  GRPO_REQUIRE_GPU_KERNELS();
  for (const int64_t d : {64, 128}) {
    for (const int64_t t : {1, 77, 200}) {
      SCOPED_TRACE("d=" + std::to_string(d) + " t=" + std::to_string(t));
      check_attention({2, 4, 2, t, t, d, at::kBFloat16, {}, {}});
    }
  }
}

TEST(CudaKernels, AttentionFloat16AndNoGqa) {
  GRPO_REQUIRE_GPU_KERNELS();
  check_attention({1, 3, 3, 130, 130, 64, at::kHalf, {}, {}});
}

TEST(CudaKernels, AttentionLeftPaddingMask) {
  GRPO_REQUIRE_GPU_KERNELS();
  check_attention({3, 4, 1, 96, 96, 128, at::kBFloat16, {0, 5, 70}, {}});
}

TEST(CudaKernels, AttentionRightPaddingAndMaskWithAHole) {
  GRPO_REQUIRE_GPU_KERNELS();
  // Right padding (the training batches), alone and with left padding; length 1 after padding.
  check_attention({3, 4, 2, 100, 100, 64, at::kBFloat16, {}, {0, 37, 99}});
  check_attention({2, 4, 2, 70, 70, 128, at::kBFloat16, {6, 0}, {10, 3}});
  // A padded key between real ones: the kernels cannot express it, the reference answers.
  at::manual_seed(6);
  const at::Tensor q = at::randn({2, 4, 20, 64}, cuda(at::kBFloat16));
  const at::Tensor k = at::randn({2, 2, 20, 64}, cuda(at::kBFloat16));
  const at::Tensor v = at::randn({2, 2, 20, 64}, cuda(at::kBFloat16));
  at::Tensor mask = at::ones({2, 20}, cuda(at::kBool));
  mask[1][7] = false;
  const at::Tensor ker = ops::causal_attention(q, k, v, 0.125, mask, ops::KernelPolicy::all);
  const at::Tensor ref = ops::causal_attention(q, k, v, 0.125, mask, ops::KernelPolicy::reference);
  EXPECT_TRUE(at::equal(ker, ref));
}

TEST(CudaKernels, AttentionPrefillAfterCacheAndDecode) {
  GRPO_REQUIRE_GPU_KERNELS();
  // No NoGradGuard: check_attention asks for gradients when T > 1 (the backward with T < S);
  // the decode cases (T = 1, S > 1) run without, which is what selects the decode kernel.
  check_attention({2, 8, 2, 50, 130, 128, at::kBFloat16, {3, 0}, {}});   // T < S, training kernel
  check_attention({2, 8, 2, 1, 1000, 128, at::kBFloat16, {17, 0}, {}});  // decode, split-K
  check_attention({3, 16, 1, 1, 300, 64, at::kBFloat16, {}, {}});        // group of 16
  check_attention({2, 4, 1, 1, 64, 128, at::kHalf, {}, {0, 20}});        // decode, right padding
}

TEST(CudaKernels, VarlenAttentionMatchesPerSequenceReference) {
  GRPO_REQUIRE_GPU_KERNELS();
  at::manual_seed(2);
  const std::vector<int64_t> lens{1, 63, 130};
  const int64_t hq = 4, hkv = 2, d = 64, total = 194;
  const at::Tensor q = at::randn({total, hq, d}, cuda(at::kBFloat16)).requires_grad_(true);
  const at::Tensor k = at::randn({total, hkv, d}, cuda(at::kBFloat16)).requires_grad_(true);
  const at::Tensor v = at::randn({total, hkv, d}, cuda(at::kBFloat16)).requires_grad_(true);
  const at::Tensor cu = at::tensor(std::vector<int32_t>{0, 1, 64, 194}, cuda(at::kInt));
  const at::Tensor o = ops::varlen_attention(q, k, v, cu, cu, 130, 130, 0.125);
  o.to(at::kFloat).pow(2).sum().backward();
  // Per-sequence references (fp32 and bf16), packed back into (total, H, D) and compared as
  // a whole: a one-token sequence alone has reference error 0 in dq, dk (softmax over one key),
  // where the kernel's delta = rowsum(dO * O) and dP = dO . v round differently (~1e-5).
  std::vector<std::vector<std::vector<at::Tensor>>> seqs(2);
  int64_t start = 0;
  for (const int64_t len : lens) {
    auto slice = [&](const at::Tensor& x, at::ScalarType dt) {
      return x.detach()
          .narrow(0, start, len)
          .to(dt)
          .transpose(0, 1)
          .unsqueeze(0)
          .requires_grad_(true);
    };
    int which = 0;
    for (const auto dt : {at::kFloat, at::kBFloat16}) {
      const at::Tensor qs = slice(q, dt), ks = slice(k, dt), vs = slice(v, dt);
      const at::Tensor os =
          ops::causal_attention(qs, ks, vs, 0.125, {}, ops::KernelPolicy::reference);
      os.to(at::kFloat).pow(2).sum().backward();
      seqs[which++].push_back({os[0].transpose(0, 1), qs.grad()[0].transpose(0, 1),
                               ks.grad()[0].transpose(0, 1), vs.grad()[0].transpose(0, 1)});
    }
    start += len;
  }
  std::vector<std::vector<at::Tensor>> res(2);  // [fp32, bf16][out, dq, dk, dv]
  for (int w = 0; w < 2; ++w) {
    for (int i = 0; i < 4; ++i) {
      std::vector<at::Tensor> pieces;
      for (const auto& sq : seqs[w]) pieces.push_back(sq[i].to(at::kFloat));
      res[w].push_back(at::cat(pieces, 0));
    }
  }
  expect_within("varlen out", o, res[1][0], res[0][0], kFwdMultiple);
  expect_within("varlen dq", q.grad(), res[1][1], res[0][1], kBwdMultiple);
  expect_within("varlen dk", k.grad(), res[1][2], res[0][2], kBwdMultiple);
  expect_within("varlen dv", v.grad(), res[1][3], res[0][3], kBwdMultiple);
}

TEST(CudaKernels, RouteMatchesReferenceForwardAndBackward) {
  GRPO_REQUIRE_GPU_KERNELS();
  at::manual_seed(3);
  ops::RouterParams soft;
  soft.top_k = 8;
  soft.renormalize = true;
  ops::RouterParams sig;
  sig.score = ops::RouterScore::sigmoid;
  sig.top_k = 8;
  sig.renormalize = true;
  sig.routed_scaling_factor = 2.5;
  sig.n_group = 8;
  sig.topk_group = 4;
  for (const auto& params : {soft, sig}) {
    const at::Tensor logits = at::randn({1000, 64}, cuda(at::kFloat));
    const at::Tensor bias = params.score == ops::RouterScore::sigmoid
                                ? at::randn({64}, cuda(at::kFloat)) * 0.1
                                : at::Tensor();
    const at::Tensor gw = at::randn({1000, 8}, cuda(at::kFloat));
    const at::Tensor gs = at::randn({1000, 64}, cuda(at::kFloat));
    std::vector<ops::Routing> r;
    std::vector<at::Tensor> dl;
    for (const auto policy : {ops::KernelPolicy::reference, ops::KernelPolicy::all}) {
      ops::RouterParams p = params;
      p.kernels = policy;
      const at::Tensor l = logits.detach().requires_grad_(true);
      r.push_back(ops::route(l, p, bias));
      ((r.back().weights * gw).sum() + (r.back().scores * gs).sum()).backward();
      dl.push_back(l.grad());
    }
    EXPECT_TRUE(at::equal(r[0].experts, r[1].experts));
    EXPECT_LE(max_err(r[0].weights, r[1].weights), 1e-5);
    EXPECT_LE(max_err(r[0].scores, r[1].scores), 1e-6);
    EXPECT_LE(max_err(dl[0], dl[1]), 1e-4);
  }
}

TEST(CudaKernels, RouteTopKBeyondTheKeptGroupsGivesDistinctExperts) {
  GRPO_REQUIRE_GPU_KERNELS();
  at::manual_seed(7);
  ops::RouterParams p;
  p.score = ops::RouterScore::sigmoid;
  p.top_k = 6;  // 16 experts in 4 groups of 4, one group kept: 2 picks from the masked ones
  p.n_group = 4;
  p.topk_group = 1;
  const at::Tensor logits = at::randn({300, 16}, cuda(at::kFloat));
  p.kernels = ops::KernelPolicy::reference;
  const ops::Routing ref = ops::route(logits, p);
  p.kernels = ops::KernelPolicy::all;
  const ops::Routing ker = ops::route(logits, p);
  // The kept group's 4 experts first, in the reference's order; the reference's order among the
  // masked (-inf) ones is unspecified, but all 6 must be distinct experts.
  EXPECT_TRUE(at::equal(ref.experts.narrow(1, 0, 4), ker.experts.narrow(1, 0, 4)));
  const at::Tensor sorted = std::get<0>(ker.experts.sort(1));
  EXPECT_TRUE(sorted.narrow(1, 1, 5).ne(sorted.narrow(1, 0, 5)).all().item<bool>());
}

TEST(CudaKernels, DispatchPermuteCombineIncludingEmptyAndSingleExpert) {
  GRPO_REQUIRE_GPU_KERNELS();
  at::manual_seed(4);
  const int64_t n = 333, k = 4, e = 16, h = 96;
  // Random experts leaving some empty (only 0..11 used), and every token to one expert.
  const at::Tensor spread = at::randperm(12, cuda(at::kLong)).narrow(0, 0, k).repeat({n, 1});
  const at::Tensor shuffled = std::get<1>(at::rand({n, 12}, cuda(at::kFloat)).topk(k, -1));
  const at::Tensor one = at::full({n, 1}, 5, cuda(at::kLong));
  for (const at::Tensor& experts : {shuffled, spread, one}) {
    const int64_t kk = experts.size(1);
    const ops::Dispatch ref = ops::dispatch(experts, e, ops::KernelPolicy::reference);
    const ops::Dispatch ker = ops::dispatch(experts, e, ops::KernelPolicy::all);
    EXPECT_TRUE(at::equal(ref.order, ker.order));
    EXPECT_TRUE(at::equal(ref.counts, ker.counts));
    EXPECT_TRUE(at::equal(ref.offsets, ker.offsets));
    const at::Tensor x32 = at::randn({n, h}, cuda(at::kFloat));
    const at::Tensor w = at::rand({n, kk}, cuda(at::kFloat));
    const at::Tensor dout = at::randn({n, h}, cuda(at::kFloat));
    std::vector<std::vector<at::Tensor>> res;
    for (const auto& [dt, d] : std::vector<std::pair<at::ScalarType, const ops::Dispatch*>>{
             {at::kFloat, &ref}, {at::kBFloat16, &ref}, {at::kBFloat16, &ker}}) {
      const at::Tensor x = x32.to(at::kBFloat16).to(dt).detach().requires_grad_(true);
      const at::Tensor wr = w.detach().requires_grad_(true);
      const at::Tensor rows = ops::permute(x, *d);
      const at::Tensor y = rows * 1.5;  // a stand-in expert
      const at::Tensor out = ops::combine(y, wr, *d, n);
      (out.to(at::kFloat) * dout).sum().backward();
      res.push_back({rows, out, x.grad(), wr.grad()});
    }
    EXPECT_TRUE(at::equal(res[1][0], res[2][0]));  // permutation is a copy
    expect_within("combine", res[2][1], res[1][1], res[0][1], kFwdMultiple);
    expect_within("dx", res[2][2], res[1][2], res[0][2], kBwdMultiple);
    expect_within("dweights", res[2][3], res[1][3], res[0][3], kBwdMultiple);
  }
}

TEST(CudaKernels, GroupedLinearWithEmptyExperts) {
  GRPO_REQUIRE_GPU_KERNELS();
  at::manual_seed(5);
  const std::vector<int64_t> offsets{0, 40, 40, 200, 201, 201};
  const at::Tensor x32 = at::randn({201, 128}, cuda(at::kFloat));
  std::vector<at::Tensor> w32;
  for (int i = 0; i < 5; ++i) w32.push_back(at::randn({64, 128}, cuda(at::kFloat)) * 0.1);
  const at::Tensor dy = at::randn({201, 64}, cuda(at::kFloat));
  std::vector<std::vector<at::Tensor>> res;
  for (const auto& [dt, policy] : std::vector<std::pair<at::ScalarType, ops::KernelPolicy>>{
           {at::kFloat, ops::KernelPolicy::reference},
           {at::kBFloat16, ops::KernelPolicy::reference},
           {at::kBFloat16, ops::KernelPolicy::all}}) {
    const at::Tensor x = x32.to(at::kBFloat16).to(dt).detach().requires_grad_(true);
    std::vector<at::Tensor> ws;
    for (const at::Tensor& w : w32)
      ws.push_back(w.to(at::kBFloat16).to(dt).detach().requires_grad_(true));
    const at::Tensor y = ops::grouped_linear(x, offsets, ws, policy);
    (y.to(at::kFloat) * dy).sum().backward();
    res.push_back({y, x.grad(), ws[0].grad(), ws[2].grad(), ws[1].grad()});
  }
  expect_within("y", res[2][0], res[1][0], res[0][0], kFwdMultiple);
  expect_within("dx", res[2][1], res[1][1], res[0][1], kBwdMultiple);
  expect_within("dw0", res[2][2], res[1][2], res[0][2], kBwdMultiple);
  expect_within("dw2", res[2][3], res[1][3], res[0][3], kBwdMultiple);
  EXPECT_EQ(res[2][4].abs().max().item<double>(), 0.0);  // the empty expert's gradient
}

TEST(CudaKernels, ModelLogitsAutoMatchReference) {
  GRPO_REQUIRE_GPU_KERNELS();
  grpo::config::ModelArchitecture a;
  a.vocab_size = 256;
  a.hidden_size = 256;
  a.num_attention_heads = 4;  // head dim 64
  a.num_key_value_heads = 2;
  a.intermediate_size = 512;
  a.num_hidden_layers = 2;
  a.num_experts = 8;
  // Every expert for every token: with top-2, a near tie between the 2nd and 3rd expert flips
  // under bf16 rounding (in the bf16 reference as in the kernel path, differently), and one flip
  // dominates the max error; the ratio of two such errors is no test of the kernels. Selection
  // and empty experts are covered by the routing and dispatch tests above.
  a.num_experts_per_tok = 8;
  a.model_type = "qwen3_moe";
  a.moe_intermediate_size = 128;
  grpo::model::ModelArch arch = grpo::model::arch_from_config(a, 256);
  const at::Tensor ids = at::randint(0, 256, {2, 100}, cuda(at::kLong));
  std::vector<at::Tensor> logits;
  for (const auto& [dt, policy] : std::vector<std::pair<at::ScalarType, ops::KernelPolicy>>{
           {at::kFloat, ops::KernelPolicy::reference},
           {at::kBFloat16, ops::KernelPolicy::reference},
           {at::kBFloat16, ops::KernelPolicy::all}}) {
    arch.kernels = policy;
    grpo::model::CausalLM m = grpo::model::random_model(arch, 11, at::kFloat);
    m->to(at::kCUDA);
    m->to(dt);
    torch::NoGradGuard no_grad;
    logits.push_back(m->forward(ids).logits);
  }
  expect_within("logits", logits[2], logits[1], logits[0], kFwdMultiple);
}
