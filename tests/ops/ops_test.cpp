// ops reference implementations against independent, hand-written references: RMSNorm from
// its formula, attention as an explicit loop over (query, key) pairs, RoPE rotation by pairs,
// routing on a hand-derived example, and dispatch/combine against a per-token loop.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "grpo/core/error.h"
#include "grpo/ops/attention.h"
#include "grpo/ops/moe.h"
#include "grpo/ops/rms_norm.h"
#include "grpo/ops/rope.h"
#include "grpo/ops/token_logprobs.h"

namespace ops = grpo::ops;

TEST(Ops, RmsNormMatchesFormula) {
  at::manual_seed(0);
  const at::Tensor x = at::randn({3, 5, 8}, at::kDouble);
  const at::Tensor w = at::randn({8}, at::kDouble);
  const at::Tensor y = ops::rms_norm(x.to(at::kFloat), w.to(at::kFloat), 1e-6);
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 5; ++j) {
      double ss = 0;
      for (int64_t k = 0; k < 8; ++k) ss += std::pow(x[i][j][k].item<double>(), 2);
      const double inv = 1.0 / std::sqrt(ss / 8 + 1e-6);
      for (int64_t k = 0; k < 8; ++k) {
        EXPECT_NEAR(y[i][j][k].item<double>(),
                    x[i][j][k].item<double>() * inv * w[k].item<double>(), 1e-5);
      }
    }
  }
}

TEST(Ops, RopeRotatesPairsByPositionTimesFrequency) {
  // Rotate-half layout: dimension i pairs with i + D/2, angle = position * theta^(-2i/D).
  const int64_t d = 8;
  ops::RopeParams p;
  p.theta = 100.0;
  const ops::RopeTable table = ops::rope_table(d, 64, p);
  const at::Tensor pos = at::tensor({0, 3, 7}, at::kLong).view({1, 3});
  const auto [cos, sin] = ops::rope_cos_sin(table, pos, at::kDouble);
  at::manual_seed(1);
  const at::Tensor x = at::randn({1, 2, 3, d}, at::kDouble);
  const at::Tensor y = ops::apply_rope(x, cos, sin);
  for (int64_t h = 0; h < 2; ++h) {
    for (int64_t t = 0; t < 3; ++t) {
      const double position = pos[0][t].item<double>();
      for (int64_t i = 0; i < d / 2; ++i) {
        const double angle = position * std::pow(100.0, -2.0 * i / d);
        const double a = x[0][h][t][i].item<double>(), b = x[0][h][t][i + d / 2].item<double>();
        EXPECT_NEAR(y[0][h][t][i].item<double>(), a * std::cos(angle) - b * std::sin(angle), 1e-6);
        EXPECT_NEAR(y[0][h][t][i + d / 2].item<double>(), b * std::cos(angle) + a * std::sin(angle),
                    1e-6);
      }
    }
  }
}

TEST(Ops, RopeScalingTypes) {
  ops::RopeParams p;
  p.theta = 10000.0;
  const at::Tensor base = ops::rope_table(16, 128, p).inv_freq;
  p.type = ops::RopeType::linear;
  p.factor = 4.0;
  EXPECT_TRUE(at::allclose(ops::rope_table(16, 128, p).inv_freq, base / 4.0));
  // llama3: wavelengths shorter than original/high_freq_factor are kept, longer than
  // original/low_freq_factor divided by factor.
  p.type = ops::RopeType::llama3;
  p.factor = 8.0;
  p.original_max_position = 64;
  const at::Tensor l3 = ops::rope_table(16, 128, p).inv_freq;
  for (int64_t i = 0; i < 8; ++i) {
    const double inv = base[i].item<double>(), wavelen = 2 * M_PI / inv;
    if (wavelen < 64 / 4.0) {
      EXPECT_FLOAT_EQ(l3[i].item<float>(), static_cast<float>(inv));
    }
    if (wavelen > 64 / 1.0) {
      EXPECT_FLOAT_EQ(l3[i].item<float>(), static_cast<float>(inv / 8));
    }
  }
  // yarn: attention scaling 0.1 ln(factor) + 1, highest frequency unchanged.
  p.type = ops::RopeType::yarn;
  p.factor = 4.0;
  const ops::RopeTable yarn = ops::rope_table(16, 128, p);
  EXPECT_NEAR(yarn.attention_scaling, 0.1 * std::log(4.0) + 1.0, 1e-12);
  EXPECT_FLOAT_EQ(yarn.inv_freq[0].item<float>(), base[0].item<float>());
  EXPECT_THROW(ops::parse_rope_type("dynamic"), grpo::Error);
}

TEST(Ops, AttentionMatchesLoopWithGqaOffsetAndMask) {
  at::manual_seed(2);
  const int64_t b = 2, hq = 4, hkv = 2, t = 3, s = 5, d = 4;
  const at::Tensor q = at::randn({b, hq, t, d}, at::kDouble);
  const at::Tensor k = at::randn({b, hkv, s, d}, at::kDouble);
  const at::Tensor v = at::randn({b, hkv, s, d}, at::kDouble);
  at::Tensor mask = at::ones({b, s}, at::kBool);
  mask[1][0] = false;  // left padding in the second sequence
  const double scale = 0.5;
  // The reference without gradients takes the broadcast form for these small matrices, with
  // them the batched product (dense.cpp); the default policy takes the fused CPU attention
  // where the build has it: all must equal the loop (no query row here sees no key).
  const auto reference = ops::KernelPolicy::reference;
  const at::Tensor broadcast_out = ops::causal_attention(q, k, v, scale, mask, reference);
  const at::Tensor out =
      ops::causal_attention(q.clone().set_requires_grad(true), k, v, scale, mask, reference)
          .detach();
  EXPECT_TRUE(at::allclose(broadcast_out, out, 1e-12, 1e-12));
  EXPECT_TRUE(at::allclose(ops::causal_attention(q, k, v, scale, mask), out, 1e-12, 1e-12));
  for (int64_t bi = 0; bi < b; ++bi) {
    for (int64_t h = 0; h < hq; ++h) {
      const int64_t g = h / (hq / hkv);
      for (int64_t i = 0; i < t; ++i) {
        std::vector<double> w;
        double mx = -1e300, sum = 0;
        for (int64_t j = 0; j < s; ++j) {
          const bool ok = j <= s - t + i && mask[bi][j].item<bool>();
          const double score =
              ok ? (q[bi][h][i] * k[bi][g][j]).sum().item<double>() * scale : -1e300;
          w.push_back(score);
          mx = std::max(mx, score);
        }
        for (auto& x : w) sum += (x = x <= -1e299 ? 0 : std::exp(x - mx));
        for (int64_t c = 0; c < d; ++c) {
          double acc = 0;
          for (int64_t j = 0; j < s; ++j) acc += w[j] / sum * v[bi][g][j][c].item<double>();
          EXPECT_NEAR(out[bi][h][i][c].item<double>(), acc, 1e-10);
        }
      }
    }
  }
}

TEST(Ops, FullyMaskedRowsStayFinite) {
  const at::Tensor q = at::randn({1, 1, 2, 4}), kv = at::randn({1, 1, 2, 4});
  const at::Tensor mask = at::zeros({1, 2}, at::kBool);
  EXPECT_TRUE(ops::causal_attention(q, kv, kv, 1.0, mask).isfinite().all().item<bool>());
}

TEST(Ops, RouteHandExample) {
  // Scores (softmax of log p) = p: token 0 prefers experts 2 then 0, token 1 prefers 3 then 1.
  const at::Tensor p =
      at::tensor({0.3, 0.1, 0.5, 0.1, 0.05, 0.25, 0.1, 0.6}, at::kFloat).view({2, 4});
  ops::RouterParams params;
  params.top_k = 2;
  ops::Routing r = ops::route(p.log(), params);
  EXPECT_EQ(r.experts[0][0].item<int64_t>(), 2);
  EXPECT_EQ(r.experts[0][1].item<int64_t>(), 0);
  EXPECT_NEAR(r.weights[0][0].item<float>(), 0.5f, 1e-6);
  EXPECT_NEAR(r.weights[1][1].item<float>(), 0.25f, 1e-6);
  params.renormalize = true;
  params.routed_scaling_factor = 2.0;
  r = ops::route(p.log(), params);
  EXPECT_NEAR(r.weights[0][0].item<float>(), 2.0f * 0.5f / 0.8f, 1e-6);
  // A correction bias changes the choice (expert 1 for token 0) but not the weights' source.
  params.renormalize = false;
  params.routed_scaling_factor = 1.0;
  r = ops::route(p.log(), params, at::tensor({0.0, 0.45, 0.0, 0.0}, at::kFloat));
  EXPECT_EQ(r.experts[0][0].item<int64_t>(), 1);
  EXPECT_NEAR(r.weights[0][0].item<float>(), 0.1f, 1e-6);
  // Group-limited: groups {0,1} and {2,3}; token 1's group sums 0.3 vs 0.7 -> only {2,3}.
  params.n_group = 2;
  params.topk_group = 1;
  r = ops::route(p.log(), params);
  EXPECT_EQ(r.experts[1][0].item<int64_t>(), 3);
  EXPECT_EQ(r.experts[1][1].item<int64_t>(), 2);
  EXPECT_EQ(r.experts[0][1].item<int64_t>(), 3);  // token 0: {2,3} sums 0.6 > 0.4
}

TEST(Ops, DispatchCombineMatchesPerTokenLoop) {
  at::manual_seed(3);
  const int64_t n = 7, e = 4, k = 2, h = 3;
  const at::Tensor x = at::randn({n, h}, at::kDouble);
  ops::RouterParams params;
  params.top_k = k;
  params.renormalize = true;
  const ops::Routing r = ops::route(at::randn({n, e}), params);
  const ops::Dispatch d = ops::dispatch(r.experts, e);
  EXPECT_EQ(d.counts.sum().item<int64_t>(), n * k);
  const at::Tensor rows = ops::permute(x, d);
  // "Expert" e scales its rows by (e + 1); apply per contiguous block.
  at::Tensor y = rows.clone();
  for (int64_t ex = 0; ex < e; ++ex) {
    const int64_t a = d.offsets[ex].item<int64_t>(), b = d.offsets[ex + 1].item<int64_t>();
    y.narrow(0, a, b - a).mul_(ex + 1.0);
  }
  const at::Tensor out = ops::combine(y, r.weights, d, n);
  for (int64_t t = 0; t < n; ++t) {
    at::Tensor expect = at::zeros({h}, at::kDouble);
    for (int64_t s = 0; s < k; ++s) {
      expect += x[t] * (r.experts[t][s].item<double>() + 1.0) * r.weights[t][s].item<double>();
    }
    EXPECT_TRUE(at::allclose(out[t], expect, 1e-6, 1e-7)) << t;
  }
}

TEST(Ops, LoadBalancingAndZLoss) {
  // Uniform router: f_e = 1/E and P_e = 1/E -> loss E * E * (1/E^2) = 1; z = log(E)^2.
  const at::Tensor logits = at::zeros({6, 4});
  ops::RouterParams params;
  params.top_k = 1;
  ops::Routing r = ops::route(logits, params);
  r.experts = at::arange(6, at::kLong).remainder(4).view({6, 1});
  r.experts[4][0] = 0;  // counts 2,1,1,2 ... make it exactly uniform over the first 4 tokens
  const at::Tensor mask = at::tensor({1, 1, 1, 1, 0, 0}).to(at::kBool);
  EXPECT_NEAR(ops::load_balancing_loss(r, 4, mask).item<float>(), 1.0f, 1e-6);
  EXPECT_NEAR(ops::router_z_loss(logits).item<float>(), std::pow(std::log(4.0), 2), 1e-5);
}

// The fused projection + log-softmax + gather (+ entropy) against the composite definition,
// values and gradients, in float64, in chunks that do not divide the rows, at temperature 0.7.
TEST(Ops, TokenLogprobsMatchComposite) {
  at::manual_seed(0);
  const int64_t rows = 7, hidden = 5, vocab = 11;
  const double temperature = 0.7;
  const at::Tensor h0 = at::randn({rows, hidden}, at::kDouble);
  const at::Tensor w0 = at::randn({vocab, hidden}, at::kDouble);
  const at::Tensor targets = at::randint(vocab, {rows}, at::kLong);
  const at::Tensor g_lp = at::randn({rows}, at::kDouble), g_ent = at::randn({rows}, at::kDouble);

  at::Tensor h_ref = h0.clone().set_requires_grad(true), w_ref = w0.clone().set_requires_grad(true);
  const at::Tensor logp = at::log_softmax(h_ref.mm(w_ref.t()) / temperature, -1);
  const at::Tensor lp_ref = logp.gather(1, targets.unsqueeze(1)).squeeze(1);
  const at::Tensor ent_ref = -(logp.exp() * logp).sum(-1);
  ((lp_ref * g_lp).sum() + (ent_ref * g_ent).sum()).backward();

  for (const int64_t chunk : {int64_t{3}, int64_t{0}}) {
    at::Tensor h = h0.clone().set_requires_grad(true), w = w0.clone().set_requires_grad(true);
    const auto out = ops::token_logprobs(h, w, targets, temperature, true, chunk);
    EXPECT_TRUE(at::allclose(out.logprobs, lp_ref, 1e-12, 1e-12)) << "chunk " << chunk;
    EXPECT_TRUE(at::allclose(out.entropy, ent_ref, 1e-12, 1e-12)) << "chunk " << chunk;
    ((out.logprobs * g_lp).sum() + (out.entropy * g_ent).sum()).backward();
    EXPECT_TRUE(at::allclose(h.grad(), h_ref.grad(), 1e-10, 1e-12)) << "chunk " << chunk;
    EXPECT_TRUE(at::allclose(w.grad(), w_ref.grad(), 1e-10, 1e-12)) << "chunk " << chunk;
  }
  // Log-probs alone (no entropy output): the gradient is the log-prob term only. Chunks of 4
  // recompute the probabilities in the backward; one chunk (0) keeps them from the forward.
  at::Tensor h2 = h0.clone().set_requires_grad(true), w2 = w0.clone().set_requires_grad(true);
  (at::log_softmax(h2.mm(w2.t()) / temperature, -1).gather(1, targets.unsqueeze(1)).squeeze(1) *
   g_lp)
      .sum()
      .backward();
  for (const int64_t chunk : {int64_t{4}, int64_t{0}}) {
    at::Tensor h = h0.clone().set_requires_grad(true), w = w0.clone().set_requires_grad(true);
    const auto out = ops::token_logprobs(h, w, targets, temperature, false, chunk);
    EXPECT_FALSE(out.entropy.defined());
    (out.logprobs * g_lp).sum().backward();
    EXPECT_TRUE(at::allclose(h.grad(), h2.grad(), 1e-10, 1e-12)) << "chunk " << chunk;
    EXPECT_TRUE(at::allclose(w.grad(), w2.grad(), 1e-10, 1e-12)) << "chunk " << chunk;
  }
  // With the entropy computed but not differentiated (its output unused by the loss).
  at::Tensor h = h0.clone().set_requires_grad(true), w = w0.clone().set_requires_grad(true);
  (ops::token_logprobs(h, w, targets, temperature, true).logprobs * g_lp).sum().backward();
  EXPECT_TRUE(at::allclose(h.grad(), h2.grad(), 1e-10, 1e-12));
  EXPECT_TRUE(at::allclose(w.grad(), w2.grad(), 1e-10, 1e-12));
}

// float32 inputs (the training path): within float32 rounding of the float64 definition, and
// no rows at all gives empty outputs and zero gradients.
TEST(Ops, TokenLogprobsFloat32AndEmpty) {
  at::manual_seed(1);
  const at::Tensor h = at::randn({40, 16}), w = at::randn({300, 16});
  const at::Tensor targets = at::randint(300, {40}, at::kLong);
  const auto out = ops::token_logprobs(h, w, targets, 1.0, true);
  const at::Tensor logp = at::log_softmax(h.to(at::kDouble).mm(w.to(at::kDouble).t()), -1);
  EXPECT_LT((out.logprobs.to(at::kDouble) - logp.gather(1, targets.unsqueeze(1)).squeeze(1))
                .abs()
                .max()
                .item<double>(),
            2e-5);
  EXPECT_LT((out.entropy.to(at::kDouble) + (logp.exp() * logp).sum(-1)).abs().max().item<double>(),
            2e-5);

  at::Tensor he = at::randn({0, 16}).set_requires_grad(true);
  at::Tensor we = w.clone().set_requires_grad(true);
  const auto empty = ops::token_logprobs(he, we, at::zeros({0}, at::kLong), 1.0, true);
  EXPECT_EQ(empty.logprobs.numel(), 0);
  (empty.logprobs.sum() + empty.entropy.sum()).backward();
  EXPECT_EQ(we.grad().abs().sum().item<double>(), 0.0);
  EXPECT_THROW(ops::token_logprobs(h, w.t(), targets, 1.0, false), grpo::Error);
}
