// The kernel-vs-reference checks shared by the GPU tests (cuda_kernels_test.cpp, through the ops
// entry points on a CUDA device) and the emulated-device tests (tests/emu, through grpo::ops::cuda
// on CPU tensors). Tolerances are derived, not guessed: the kernel's error against the fp32
// reference may be at most a small multiple of the error of the same computation done by the
// reference in low precision (flash-attention's rule), the maximum over the whole tensor, with a
// 1e-5 floor for exact cases.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "grpo/ops/attention.h"
#include "grpo/ops/kernels.h"
#include "grpo/ops/moe.h"

namespace grpo::kernel_checks {

namespace ops = grpo::ops;

constexpr double kFwdMultiple = 2.0;
constexpr double kBwdMultiple = 3.0;

// Where the kernels run and how a check reaches them.
struct Backend {
  at::Device device = at::kCPU;
  // The dtype whose reference error bounds a kernel in `dtype` (the dtype itself on a GPU).
  std::function<at::ScalarType(at::ScalarType)> reference_dtype;
  std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, double,
                           const at::Tensor&)>
      attention;  // q, k, v, scale, key mask
  std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                           const at::Tensor&, const at::Tensor&, int64_t, int64_t, double)>
      varlen_attention;
  std::function<ops::Routing(const at::Tensor&, const ops::RouterParams&, const at::Tensor&)> route;
  std::function<ops::Dispatch(const at::Tensor&, int64_t)> dispatch;
  std::function<at::Tensor(const at::Tensor&, const ops::Dispatch&)> permute;
  std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const ops::Dispatch&, int64_t)>
      combine;
  std::function<at::Tensor(const at::Tensor&, const std::vector<int64_t>&, at::TensorList)>
      grouped_linear;

  at::TensorOptions opts(at::ScalarType t) const {
    return at::TensorOptions().device(device).dtype(t);
  }
};

inline double max_err(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>();
}

// err(kernel) <= multiple * err(reference at low precision) + a floor for exact cases.
inline void expect_within(const std::string& what, const at::Tensor& kernel,
                          const at::Tensor& ref_low, const at::Tensor& ref32, double multiple) {
  const double ek = max_err(kernel, ref32), er = max_err(ref_low, ref32);
  EXPECT_LE(ek, multiple * er + 1e-5)
      << what << ": kernel error " << ek << ", low-precision reference error " << er;
}

// How the kernel's inputs lie in memory (the references always get contiguous ones).
enum class Layout {
  contiguous,  // (B, H, T, D)
  model,       // (B, H, T, D) views of (B, T, H, D) memory, as the model's projections give
  cache,       // k and v: the first S positions of a longer (B, H, S + 37, D) cache buffer
};

struct AttnCase {
  int64_t b, hq, hkv, t, s, d;
  at::ScalarType dtype;
  std::vector<int64_t> pads;  // left padding per sequence (empty: no mask)
  std::vector<int64_t> ends;  // right padding per sequence (empty: none)
  Layout layout = Layout::contiguous;
};

// `x` (B, H, L, D) with the same values laid out as `layout` says (`kv`: x is a key/value).
inline at::Tensor lay_out(const at::Tensor& x, Layout layout, bool kv) {
  if (layout == Layout::model) return x.transpose(1, 2).contiguous().transpose(1, 2);
  if (layout == Layout::cache && kv) {
    at::Tensor buf = at::zeros({x.size(0), x.size(1), x.size(2) + 37, x.size(3)}, x.options());
    buf.narrow(2, 0, x.size(2)).copy_(x);
    return buf.narrow(2, 0, x.size(2));
  }
  return x;
}

// Forward and backward of causal attention, kernel vs reference, on rows that see a key.
inline void check_attention(const Backend& be, const AttnCase& c) {
  at::manual_seed(1);
  const at::Tensor q32 = at::randn({c.b, c.hq, c.t, c.d}, be.opts(at::kFloat));
  const at::Tensor k32 = at::randn({c.b, c.hkv, c.s, c.d}, be.opts(at::kFloat));
  const at::Tensor v32 = at::randn({c.b, c.hkv, c.s, c.d}, be.opts(at::kFloat));
  const at::Tensor dout32 = at::randn({c.b, c.hq, c.t, c.d}, be.opts(at::kFloat));
  at::Tensor mask, rows = at::ones({c.b, 1, c.t, 1}, be.opts(at::kFloat));
  if (!c.pads.empty() || !c.ends.empty()) {
    mask = at::ones({c.b, c.s}, be.opts(at::kBool));
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
  // Gradients whenever the training kernel runs; one query without them selects decode.
  const bool grad = c.t > 1 || c.s == c.t;
  auto run = [&](at::ScalarType dt, bool kernel) {
    // Every run starts from the same inputs rounded to the case's dtype.
    at::Tensor q = q32.to(c.dtype).to(dt), k = k32.to(c.dtype).to(dt), v = v32.to(c.dtype).to(dt);
    if (kernel) {
      q = lay_out(q, c.layout, false);
      k = lay_out(k, c.layout, true);
      v = lay_out(v, c.layout, true);
    }
    q = q.detach().requires_grad_(grad);
    k = k.detach().requires_grad_(grad);
    v = v.detach().requires_grad_(grad);
    const at::Tensor o =
        kernel ? be.attention(q, k, v, scale, mask)
               : ops::causal_attention(q, k, v, scale, mask, ops::KernelPolicy::reference);
    std::vector<at::Tensor> out{o * rows};
    if (grad) {
      (o.to(at::kFloat) * dout32.to(c.dtype).to(at::kFloat) * rows).sum().backward();
      out.push_back(q.grad());
      out.push_back(k.grad());
      out.push_back(v.grad());
    }
    return out;
  };
  const auto ref32 = run(at::kFloat, false);
  const auto reflow = run(be.reference_dtype(c.dtype), false);
  const auto ker = run(c.dtype, true);
  expect_within("output", ker[0], reflow[0], ref32[0], kFwdMultiple);
  if (grad) {
    expect_within("dq", ker[1], reflow[1], ref32[1], kBwdMultiple);
    expect_within("dk", ker[2], reflow[2], ref32[2], kBwdMultiple);
    expect_within("dv", ker[3], reflow[3], ref32[3], kBwdMultiple);
  }
}

// A padded key between real ones: the kernels cannot express it, the reference answers.
inline void check_attention_mask_with_hole(const Backend& be) {
  at::manual_seed(6);
  const at::Tensor q = at::randn({2, 4, 20, 64}, be.opts(at::kFloat)).to(at::kBFloat16);
  const at::Tensor k = at::randn({2, 2, 20, 64}, be.opts(at::kFloat)).to(at::kBFloat16);
  const at::Tensor v = at::randn({2, 2, 20, 64}, be.opts(at::kFloat)).to(at::kBFloat16);
  at::Tensor mask = at::ones({2, 20}, be.opts(at::kBool));
  mask[1][7] = false;
  const at::Tensor ker = be.attention(q, k, v, 0.125, mask);
  const at::Tensor ref = ops::causal_attention(q, k, v, 0.125, mask, ops::KernelPolicy::reference);
  EXPECT_TRUE(at::equal(ker, ref));
}

// Packed sequences of `lens` (bf16, 4 query / 2 KV heads of 64) against per-sequence references
// packed back together. A one-token sequence alone has reference error 0 in dq, dk (softmax
// over one key), where the kernel's delta = rowsum(dO * O) and dP = dO . v round differently
// (~1e-5), hence the comparison of whole tensors.
inline void check_varlen_attention(const Backend& be, const std::vector<int64_t>& lens) {
  at::manual_seed(2);
  const int64_t hq = 4, hkv = 2, d = 64;
  std::vector<int32_t> cu{0};
  for (const int64_t len : lens) cu.push_back(cu.back() + static_cast<int32_t>(len));
  const int64_t total = cu.back(), longest = *std::max_element(lens.begin(), lens.end());
  auto input = [&](int64_t heads) {
    return at::randn({total, heads, d}, be.opts(at::kFloat)).to(at::kBFloat16).requires_grad_(true);
  };
  const at::Tensor q = input(hq), k = input(hkv), v = input(hkv);
  const at::Tensor cu_t = at::tensor(cu, at::kInt).to(be.device);
  const at::Tensor o = be.varlen_attention(q, k, v, cu_t, cu_t, longest, longest, 0.125);
  o.to(at::kFloat).pow(2).sum().backward();
  std::vector<std::vector<std::vector<at::Tensor>>> seqs(2);  // [fp32, bf16][seq][o, dq, dk, dv]
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
  std::vector<std::vector<at::Tensor>> res(2);
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

// Softmax top-8 with renormalisation, and sigmoid with a correction bias, scaling and groups:
// expert ids equal, weights, scores and the logits' gradient close.
inline void check_route(const Backend& be, int64_t tokens) {
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
  for (ops::RouterParams params : {soft, sig}) {
    params.kernels = ops::KernelPolicy::reference;
    const at::Tensor logits = at::randn({tokens, 64}, be.opts(at::kFloat));
    const at::Tensor bias = params.score == ops::RouterScore::sigmoid
                                ? at::randn({64}, be.opts(at::kFloat)) * 0.1
                                : at::Tensor();
    const at::Tensor gw = at::randn({tokens, 8}, be.opts(at::kFloat));
    const at::Tensor gs = at::randn({tokens, 64}, be.opts(at::kFloat));
    std::vector<ops::Routing> r;
    std::vector<at::Tensor> dl;
    for (const bool kernel : {false, true}) {
      const at::Tensor l = logits.detach().requires_grad_(true);
      r.push_back(kernel ? be.route(l, params, bias) : ops::route(l, params, bias));
      ((r.back().weights * gw).sum() + (r.back().scores * gs).sum()).backward();
      dl.push_back(l.grad());
    }
    EXPECT_TRUE(at::equal(r[0].experts, r[1].experts));
    EXPECT_LE(max_err(r[0].weights, r[1].weights), 1e-5);
    EXPECT_LE(max_err(r[0].scores, r[1].scores), 1e-6);
    EXPECT_LE(max_err(dl[0], dl[1]), 1e-4);
  }
}

// 16 experts in 4 groups of 4, one group kept, top-6: 2 picks from the masked experts. The kept
// group's 4 first, in the reference's order; the reference's order among the masked (-inf) ones
// is unspecified, but all 6 must be distinct experts.
inline void check_route_beyond_kept_groups(const Backend& be) {
  at::manual_seed(7);
  ops::RouterParams p;
  p.score = ops::RouterScore::sigmoid;
  p.top_k = 6;
  p.n_group = 4;
  p.topk_group = 1;
  p.kernels = ops::KernelPolicy::reference;
  const at::Tensor logits = at::randn({300, 16}, be.opts(at::kFloat));
  const ops::Routing ref = ops::route(logits, p);
  const ops::Routing ker = be.route(logits, p, at::Tensor());
  EXPECT_TRUE(at::equal(ref.experts.narrow(1, 0, 4), ker.experts.narrow(1, 0, 4)));
  const at::Tensor sorted = std::get<0>(ker.experts.sort(1));
  EXPECT_TRUE(sorted.narrow(1, 1, 5).ne(sorted.narrow(1, 0, 5)).all().item<bool>());
}

// Dispatch (order, counts, offsets equal), permute (a copy) and combine with their gradients,
// for random experts leaving some empty (only 0..11 of 16 used), the same k experts for every
// token, and every token to one expert. First the index alone where the permutation's scan has
// more than one tile of 32 experts and its chunks of 256 assignments (274) split unevenly over
// its 32 warps, more than 8 per warp; some experts stay empty.
inline void check_dispatch_permute_combine(const Backend& be) {
  at::manual_seed(4);
  {
    const int64_t big_n = 17500, big_k = 4, big_e = 45;
    const at::Tensor shift = at::arange(big_n, be.opts(at::kLong)).remainder(2).mul(10);
    const at::Tensor experts =  // 0..39: experts 40..44 stay empty
        std::get<1>(at::rand({big_n, 30}, be.opts(at::kFloat)).topk(big_k, -1)) +
        shift.unsqueeze(1);
    const ops::Dispatch ref = ops::dispatch(experts, big_e, ops::KernelPolicy::reference);
    const ops::Dispatch ker = be.dispatch(experts, big_e);
    EXPECT_TRUE(at::equal(ref.order, ker.order));
    EXPECT_TRUE(at::equal(ref.counts, ker.counts));
    EXPECT_TRUE(at::equal(ref.offsets, ker.offsets));
  }
  const int64_t n = 333, k = 4, e = 16, h = 96;
  const at::Tensor spread = at::randperm(12, be.opts(at::kLong)).narrow(0, 0, k).repeat({n, 1});
  const at::Tensor shuffled = std::get<1>(at::rand({n, 12}, be.opts(at::kFloat)).topk(k, -1));
  const at::Tensor one = at::full({n, 1}, 5, be.opts(at::kLong));
  for (const at::Tensor& experts : {shuffled, spread, one}) {
    const int64_t kk = experts.size(1);
    const ops::Dispatch ref = ops::dispatch(experts, e, ops::KernelPolicy::reference);
    const ops::Dispatch ker = be.dispatch(experts, e);
    EXPECT_TRUE(at::equal(ref.order, ker.order));
    EXPECT_TRUE(at::equal(ref.counts, ker.counts));
    EXPECT_TRUE(at::equal(ref.offsets, ker.offsets));
    const at::Tensor x32 = at::randn({n, h}, be.opts(at::kFloat));
    const at::Tensor w = at::rand({n, kk}, be.opts(at::kFloat));
    const at::Tensor dout = at::randn({n, h}, be.opts(at::kFloat));
    std::vector<std::vector<at::Tensor>> res;  // [fp32 ref, bf16 ref, bf16 kernel]
    for (const auto& [dt, kernel] : std::vector<std::pair<at::ScalarType, bool>>{
             {at::kFloat, false}, {at::kBFloat16, false}, {at::kBFloat16, true}}) {
      const at::Tensor x = x32.to(at::kBFloat16).to(dt).detach().requires_grad_(true);
      const at::Tensor wr = w.detach().requires_grad_(true);
      const at::Tensor rows = kernel ? be.permute(x, ker) : ops::permute(x, ref);
      const at::Tensor y = rows * 1.5;  // a stand-in expert
      const at::Tensor out = kernel ? be.combine(y, wr, ker, n) : ops::combine(y, wr, ref, n);
      (out.to(at::kFloat) * dout).sum().backward();
      res.push_back({rows, out, x.grad(), wr.grad()});
    }
    EXPECT_TRUE(at::equal(res[1][0], res[2][0]));
    expect_within("combine", res[2][1], res[1][1], res[0][1], kFwdMultiple);
    expect_within("dx", res[2][2], res[1][2], res[0][2], kBwdMultiple);
    expect_within("dweights", res[2][3], res[1][3], res[0][3], kBwdMultiple);
  }
}

// Five experts of width `out` over `in` features, rows split by `offsets` (two experts empty):
// the product and its gradients; the empty expert's weight gradient is exactly zero.
inline void check_grouped_linear(const Backend& be, const std::vector<int64_t>& offsets, int64_t in,
                                 int64_t out) {
  at::manual_seed(5);
  const int64_t rows = offsets.back();
  const at::Tensor x32 = at::randn({rows, in}, be.opts(at::kFloat));
  std::vector<at::Tensor> w32;
  for (int i = 0; i < 5; ++i) w32.push_back(at::randn({out, in}, be.opts(at::kFloat)) * 0.1);
  const at::Tensor dy = at::randn({rows, out}, be.opts(at::kFloat));
  std::vector<std::vector<at::Tensor>> res;
  for (const auto& [dt, kernel] : std::vector<std::pair<at::ScalarType, bool>>{
           {at::kFloat, false}, {at::kBFloat16, false}, {at::kBFloat16, true}}) {
    const at::Tensor x = x32.to(at::kBFloat16).to(dt).detach().requires_grad_(true);
    std::vector<at::Tensor> ws;
    for (const at::Tensor& w : w32) {
      ws.push_back(w.to(at::kBFloat16).to(dt).detach().requires_grad_(true));
    }
    const at::Tensor y = kernel ? be.grouped_linear(x, offsets, ws)
                                : ops::grouped_linear(x, offsets, ws, ops::KernelPolicy::reference);
    (y.to(at::kFloat) * dy).sum().backward();
    res.push_back({y, x.grad(), ws[0].grad(), ws[2].grad(), ws[1].grad()});
  }
  expect_within("y", res[2][0], res[1][0], res[0][0], kFwdMultiple);
  expect_within("dx", res[2][1], res[1][1], res[0][1], kBwdMultiple);
  expect_within("dw0", res[2][2], res[1][2], res[0][2], kBwdMultiple);
  expect_within("dw2", res[2][3], res[1][3], res[0][3], kBwdMultiple);
  EXPECT_EQ(res[2][4].abs().max().item<double>(), 0.0);
}

}  // namespace grpo::kernel_checks
