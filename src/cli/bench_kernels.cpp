// `grpo bench kernels`: the CUDA kernels (kernels/) next to the best torch alternative on the
// same GPU: attention forward/backward vs at::scaled_dot_product_attention, decode attention vs
// SDPA on one query, gating + permutation vs the ATen reference, grouped expert GEMM vs a
// per-expert loop of at::linear. Prints TFLOP/s or GB/s; never asserts. CUDA builds only.
#include <CLI/CLI.hpp>

#include "verbs.h"

#if GRPO_KERNELS_LINKED
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "grpo/core/error.h"
#include "grpo/kernels/attention.h"
#include "grpo/kernels/moe.h"
#include "grpo/ops/attention.h"
#include "grpo/ops/kernels.h"
#include "grpo/ops/moe.h"
#endif

namespace grpo::cli {

#if GRPO_KERNELS_LINKED
namespace {

struct BenchKernelsOptions {
  int repeat = 20;
  int64_t seq = 4096, batch = 2, heads = 32, kv_heads = 8, head_dim = 128;
  int64_t decode_batch = 64, decode_len = 4096;
  int64_t tokens = 8192, experts = 64, top_k = 8, hidden = 7168, expert_dim = 2048;
};

// Two timings of fn in milliseconds per call, after two warm-ups: the median of calls each
// synchronised on (what one call costs the host, launch latency included), and the mean over
// `repeat` calls queued back to back with one synchronise at the end (the device's steady rate,
// which is what the kernel goals are about once a call lasts longer than its launch).
struct Timing {
  double synced = 0, queued = 0;
};

Timing time_ms(int repeat, const std::function<void()>& fn) {
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  };
  for (int i = 0; i < 2; ++i) fn();
  torch::cuda::synchronize();
  std::vector<double> t;
  for (int i = 0; i < repeat; ++i) {
    const auto start = Clock::now();
    fn();
    torch::cuda::synchronize();
    t.push_back(ms_since(start));
  }
  std::sort(t.begin(), t.end());
  const auto start = Clock::now();
  for (int i = 0; i < repeat; ++i) fn();
  torch::cuda::synchronize();
  return {t[t.size() / 2], ms_since(start) / repeat};
}

// Rates come from the queued time.
void row(const char* what, const char* impl, Timing ms, double flops, double bytes) {
  std::printf("%-26s %-10s %9.3f ms synced %9.3f ms queued", what, impl, ms.synced, ms.queued);
  if (flops > 0) std::printf("  %8.1f TFLOP/s", flops / ms.queued / 1e9);
  if (bytes > 0) std::printf("  %8.1f GB/s", bytes / ms.queued / 1e6);
  std::printf("\n");
}

// The kernels whether or not `auto` takes them yet (ops::kCudaKernelsVerified).
constexpr auto kAll = ops::KernelPolicy::all;

void run(const BenchKernelsOptions& o) {
  GRPO_CHECK_KIND(usage, torch::cuda::is_available(), "grpo bench kernels needs a CUDA device");
  const auto bf16 = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  const int64_t g = o.heads / o.kv_heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(o.head_dim));
  {  // attention, causal training shapes
    const at::Tensor q = at::randn({o.batch, o.heads, o.seq, o.head_dim}, bf16);
    const at::Tensor k = at::randn({o.batch, o.kv_heads, o.seq, o.head_dim}, bf16);
    const at::Tensor v = at::randn({o.batch, o.kv_heads, o.seq, o.head_dim}, bf16);
    const at::Tensor kx = k.repeat_interleave(g, 1), vx = v.repeat_interleave(g, 1);
    const double flops = 4.0 * o.batch * o.heads * o.seq * o.seq * o.head_dim / 2;  // causal
    torch::NoGradGuard no_grad;
    row("attention fwd", "grpo",
        time_ms(o.repeat, [&] { ops::causal_attention(q, k, v, scale, {}, kAll); }), flops, 0);
    row("attention fwd", "sdpa",
        time_ms(o.repeat, [&] { at::scaled_dot_product_attention(q, kx, vx, {}, 0.0, true); }),
        flops, 0);
  }
  {
    const at::Tensor q = at::randn({o.batch, o.heads, o.seq, o.head_dim}, bf16).requires_grad_();
    const at::Tensor k = at::randn({o.batch, o.kv_heads, o.seq, o.head_dim}, bf16).requires_grad_();
    const at::Tensor v = at::randn({o.batch, o.kv_heads, o.seq, o.head_dim}, bf16).requires_grad_();
    const at::Tensor dout = at::randn({o.batch, o.heads, o.seq, o.head_dim}, bf16);
    const double flops = 3.5 * 4.0 * o.batch * o.heads * o.seq * o.seq * o.head_dim / 2;
    row("attention fwd+bwd", "grpo",
        time_ms(o.repeat, [&] { ops::causal_attention(q, k, v, scale, {}, kAll).backward(dout); }),
        flops, 0);
    row("attention fwd+bwd", "sdpa",
        time_ms(o.repeat,
                [&] {
                  at::scaled_dot_product_attention(q, k.repeat_interleave(g, 1),
                                                   v.repeat_interleave(g, 1), {}, 0.0, true)
                      .backward(dout);
                }),
        flops, 0);
  }
  {  // decode: one query against a long cache; the K/V read dominates
    torch::NoGradGuard no_grad;
    const at::Tensor q = at::randn({o.decode_batch, o.heads, 1, o.head_dim}, bf16);
    const at::Tensor k = at::randn({o.decode_batch, o.kv_heads, o.decode_len, o.head_dim}, bf16);
    const at::Tensor v = at::randn({o.decode_batch, o.kv_heads, o.decode_len, o.head_dim}, bf16);
    const at::Tensor kx = k.repeat_interleave(g, 1), vx = v.repeat_interleave(g, 1);
    const double bytes = 2.0 * k.numel() * 2;
    row("decode attention", "grpo",
        time_ms(o.repeat, [&] { ops::causal_attention(q, k, v, scale, {}, kAll); }), 0, bytes);
    row("decode attention", "sdpa",
        time_ms(o.repeat, [&] { at::scaled_dot_product_attention(q, kx, vx, {}, 0.0, false); }), 0,
        bytes);
    // Each split count along the keys (`grpo` above takes kernels::decode_num_splits' choice,
    // printed first): how the choice weighs a fuller last wave of blocks against the partial
    // outputs' merge.
    const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
    const int chosen =
        kernels::decode_num_splits(static_cast<int>(o.decode_batch), static_cast<int>(o.kv_heads),
                                   static_cast<int>(o.decode_len), sms);
    std::vector<int> splits = {chosen};
    for (const int n : {1, 2, 3, 4, 6, 8, 16}) {
      if (n != chosen) splits.push_back(n);
    }
    for (const int n : splits) {
      const std::string impl = std::to_string(n) + (n == chosen ? " split*" : " split");
      row("decode attention", impl.c_str(),
          time_ms(o.repeat, [&] { ops::decode_attention(q, k, v, scale, n); }), 0, bytes);
    }
  }
  {  // gating + permutation index
    torch::NoGradGuard no_grad;
    const at::Tensor logits =
        at::randn({o.tokens, o.experts}, at::TensorOptions().device(at::kCUDA));
    ops::RouterParams p;
    p.top_k = o.top_k;
    p.renormalize = true;
    for (const auto policy : {kAll, ops::KernelPolicy::reference}) {
      p.kernels = policy;
      row("gating + permutation", policy == kAll ? "grpo" : "reference",
          time_ms(o.repeat,
                  [&] {
                    const ops::Routing r = ops::route(logits, p);
                    ops::dispatch(r.experts, o.experts, policy);
                  }),
          0, 0);
    }
    // The two kernels alone on buffers allocated once: the ops above also allocate their outputs
    // and copy the expert offsets to the host (a synchronise), which the goal does not count.
    const auto i32 = at::TensorOptions().device(at::kCUDA).dtype(at::kInt);
    const auto i64 = i32.dtype(at::kLong);
    const int64_t n = o.tokens * o.top_k;
    const at::Tensor scores = at::empty_like(logits);
    const at::Tensor weights = at::empty({o.tokens, o.top_k}, logits.options());
    const at::Tensor ids = at::empty({o.tokens, o.top_k}, i32);
    const at::Tensor chunk_counts =
        at::empty({(n + kernels::kPermuteChunk - 1) / kernels::kPermuteChunk, o.experts}, i32);
    const at::Tensor counts = at::empty({o.experts}, i64),
                     offsets = at::empty({o.experts + 1}, i64);
    const at::Tensor order = at::empty({n}, i64), token_index = at::empty({n}, i64);
    const at::Tensor position = at::empty({n}, i32);
    kernels::GateParams gate;
    gate.tokens = static_cast<int>(o.tokens);
    gate.experts = static_cast<int>(o.experts);
    gate.top_k = static_cast<int>(o.top_k);
    gate.renormalize = true;
    gate.logits = logits.data_ptr<float>();
    gate.scores = scores.data_ptr<float>();
    gate.weights = weights.data_ptr<float>();
    gate.expert_ids = ids.data_ptr<int32_t>();
    kernels::PermuteIndexParams perm;
    perm.tokens = gate.tokens;
    perm.top_k = gate.top_k;
    perm.experts = gate.experts;
    perm.expert_ids = ids.data_ptr<int32_t>();
    perm.chunk_counts = chunk_counts.data_ptr<int32_t>();
    perm.counts = counts.data_ptr<int64_t>();
    perm.offsets = offsets.data_ptr<int64_t>();
    perm.order = order.data_ptr<int64_t>();
    perm.token_index = token_index.data_ptr<int64_t>();
    perm.position = position.data_ptr<int32_t>();
    const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
    row("gating", "kernel",
        time_ms(o.repeat,
                [&] {
                  GRPO_CHECK(kernels::moe_gate_forward(gate, stream) == cudaSuccess,
                             "gating kernel failed");
                }),
        0, 0);
    row("permutation index", "kernels",
        time_ms(o.repeat,
                [&] {
                  GRPO_CHECK(kernels::moe_permute_index(perm, stream) == cudaSuccess,
                             "permutation kernel failed");
                }),
        0, 0);
    row("gating + permutation", "kernels",
        time_ms(o.repeat,
                [&] {
                  GRPO_CHECK(kernels::moe_gate_forward(gate, stream) == cudaSuccess,
                             "gating kernel failed");
                  GRPO_CHECK(kernels::moe_permute_index(perm, stream) == cudaSuccess,
                             "permutation kernel failed");
                }),
        0, 0);
  }
  // Grouped expert GEMM, equal rows per expert: the training shape, and a small batch (512
  // tokens, 64 rows per expert at the defaults) where a launch per expert weighs more.
  for (const int64_t tokens : {o.tokens, std::min<int64_t>(o.tokens, 512)}) {
    torch::NoGradGuard no_grad;
    const int64_t rows = tokens * o.top_k;
    const std::string what = "grouped GEMM " + std::to_string(rows / o.experts) + " rows/exp";
    const at::Tensor x = at::randn({rows, o.hidden}, bf16);
    std::vector<at::Tensor> w;
    for (int64_t e = 0; e < o.experts; ++e) w.push_back(at::randn({o.expert_dim, o.hidden}, bf16));
    std::vector<int64_t> offsets;
    for (int64_t e = 0; e <= o.experts; ++e) offsets.push_back(rows * e / o.experts);
    const double flops = 2.0 * rows * o.hidden * o.expert_dim;
    row(what.c_str(), "grpo", time_ms(o.repeat, [&] { ops::grouped_linear(x, offsets, w, kAll); }),
        flops, 0);
    row(what.c_str(), "loop",
        time_ms(o.repeat,
                [&] { ops::grouped_linear(x, offsets, w, ops::KernelPolicy::reference); }),
        flops, 0);
  }
}

}  // namespace
#endif

void add_bench_kernels(CLI::App& bench) {
#if GRPO_KERNELS_LINKED
  auto opts = std::make_shared<BenchKernelsOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "kernels", "CUDA kernels vs torch (SDPA, per-expert loop): TFLOP/s and GB/s");
  cmd->add_option("--repeat", opts->repeat,
                  "timed calls per measurement (synced median; queued mean)");
  cmd->add_option("--seq", opts->seq, "attention tokens per sequence");
  cmd->add_option("--batch", opts->batch, "attention sequences");
  cmd->add_option("--decode-len", opts->decode_len, "decode: cached keys per sequence");
  cmd->add_option("--tokens", opts->tokens, "MoE tokens");
  cmd->add_option("--experts", opts->experts, "MoE experts");
  cmd->callback([opts] { run(*opts); });
#else
  (void)bench;  // kernels not linked: no `grpo bench kernels`
#endif
}

}  // namespace grpo::cli
