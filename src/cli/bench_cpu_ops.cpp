// `grpo bench cpu-ops`: the fused CPU paths of the ops layer (attention, RMSNorm, RoPE;
// docs/kernels.md) next to the ATen reference on this machine, at a model's training and decode
// shapes: median milliseconds per call and, for attention, GFLOP/s of the causal products.
// Prints, never asserts.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <vector>

#include "grpo/core/error.h"
#include "grpo/ops/attention.h"
#include "grpo/ops/kernels.h"
#include "grpo/ops/rms_norm.h"
#include "grpo/ops/rope.h"
#include "verbs.h"

namespace grpo::cli {
namespace {

// Defaults: the TRL-comparison model (hidden 64, 4 heads of 16, 2 KV heads) at one micro-batch
// of the update (16 rows of 90 tokens) and one decode step of 64 rows over 60 cached keys.
struct BenchCpuOpsOptions {
  int repeat = 50;
  int threads = 0;  // 0: LibTorch's default
  int64_t batch = 16, seq = 90, heads = 4, kv_heads = 2, head_dim = 16;
  int64_t decode_batch = 64, decode_len = 60;
};

// Median wall time of fn in milliseconds, after three warm-up calls.
double time_ms(int repeat, const std::function<void()>& fn) {
  for (int i = 0; i < 3; ++i) fn();
  std::vector<double> t;
  for (int i = 0; i < repeat; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                    .count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

void row(const char* what, ops::KernelPolicy policy, double ms, double flops) {
  std::printf("%-24s %-10s %9.3f ms", what,
              policy == ops::KernelPolicy::reference ? "reference" : "fused", ms);
  if (flops > 0) std::printf("  %7.2f GFLOP/s", flops / ms / 1e6);
  std::printf("\n");
}

void run(const BenchCpuOpsOptions& o) {
  GRPO_CHECK_KIND(usage,
                  o.repeat > 0 && o.batch > 0 && o.seq > 0 && o.heads > 0 && o.kv_heads > 0 &&
                      o.heads % o.kv_heads == 0 && o.head_dim > 0 && o.head_dim % 2 == 0 &&
                      o.decode_batch > 0 && o.decode_len > 0,
                  "bench cpu-ops: sizes must be positive, --heads a multiple of --kv-heads and "
                  "--head-dim even");
  if (o.threads > 0) at::set_num_threads(o.threads);
  std::printf(
      "threads %d, fused cpu attention %s; attention %lld x %lld tokens, %lld/%lld "
      "heads of %lld; decode %lld rows x %lld keys\n",
      at::get_num_threads(), ops::cpu_attention_linked() ? "linked" : "not linked",
      static_cast<long long>(o.batch), static_cast<long long>(o.seq),
      static_cast<long long>(o.heads), static_cast<long long>(o.kv_heads),
      static_cast<long long>(o.head_dim), static_cast<long long>(o.decode_batch),
      static_cast<long long>(o.decode_len));
  const double scale = 1.0 / std::sqrt(static_cast<double>(o.head_dim));
  const auto policies = {ops::KernelPolicy::automatic, ops::KernelPolicy::reference};
  at::manual_seed(0);
  // (B, T, H, D) viewed as (B, H, T, D): the layout the model's projections give.
  auto heads = [&](int64_t b, int64_t t, int64_t h) {
    return at::randn({b, t, h, o.head_dim}).transpose(1, 2);
  };
  // Left padding: row i's first (7 i) mod (T / 2) keys are padding.
  auto left_padding = [](int64_t b, int64_t t) {
    at::Tensor mask = at::ones({b, t}, at::kBool);
    for (int64_t i = 0; i < b; ++i)
      mask[i].narrow(0, 0, (7 * i) % std::max<int64_t>(t / 2, 1)).fill_(false);
    return mask;
  };
  const double causal =
      4.0 * o.batch * o.heads * static_cast<double>(o.seq) * o.seq * o.head_dim / 2;
  {
    const at::Tensor q = heads(o.batch, o.seq, o.heads).requires_grad_(true);
    const at::Tensor k = heads(o.batch, o.seq, o.kv_heads).requires_grad_(true);
    const at::Tensor v = heads(o.batch, o.seq, o.kv_heads).requires_grad_(true);
    const at::Tensor mask = left_padding(o.batch, o.seq);
    const at::Tensor dout = at::randn({o.batch, o.heads, o.seq, o.head_dim});
    for (const auto policy : policies) {
      row("attention fwd", policy,
          time_ms(o.repeat,
                  [&] {
                    at::NoGradGuard no_grad;
                    ops::causal_attention(q, k, v, scale, mask, policy);
                  }),
          causal);
    }
    for (const auto policy : policies) {
      row("attention fwd+bwd", policy,
          time_ms(o.repeat,
                  [&] {
                    torch::autograd::grad({ops::causal_attention(q, k, v, scale, mask, policy)},
                                          {q, k, v}, {dout});
                  }),
          3.5 * causal);
    }
  }
  {
    at::InferenceMode inference;
    const at::Tensor q = heads(o.decode_batch, 1, o.heads);
    const at::Tensor k = at::randn({o.decode_batch, o.kv_heads, o.decode_len, o.head_dim});
    const at::Tensor v = at::randn({o.decode_batch, o.kv_heads, o.decode_len, o.head_dim});
    const at::Tensor mask = left_padding(o.decode_batch, o.decode_len);
    const double flops = 4.0 * o.decode_batch * o.heads * o.decode_len * o.head_dim;
    for (const auto policy : policies) {
      row("decode attention", policy,
          time_ms(o.repeat, [&] { ops::causal_attention(q, k, v, scale, mask, policy); }), flops);
    }
  }
  {
    const int64_t hidden = o.heads * o.head_dim;
    const at::Tensor x = at::randn({o.batch, o.seq, hidden}).requires_grad_(true);
    const at::Tensor w = at::randn({hidden}).requires_grad_(true);
    const at::Tensor dy = at::randn({o.batch, o.seq, hidden});
    for (const auto policy : policies) {
      row("rmsnorm fwd+bwd", policy,
          time_ms(o.repeat,
                  [&] {
                    torch::autograd::grad({ops::rms_norm(x, w, 1e-6, policy)}, {x, w}, {dy});
                  }),
          0);
    }
    const ops::RopeTable table = ops::rope_table(o.head_dim, o.seq, ops::RopeParams{});
    const at::Tensor positions = at::arange(o.seq, at::kLong).repeat({o.batch, 1});
    const auto cos_sin = ops::rope_cos_sin(table, positions, at::kFloat);
    const at::Tensor qr = heads(o.batch, o.seq, o.heads).requires_grad_(true);
    const at::Tensor dq = at::randn({o.batch, o.heads, o.seq, o.head_dim});
    for (const auto policy : policies) {
      row("rope fwd+bwd", policy,
          time_ms(o.repeat,
                  [&] {
                    torch::autograd::grad(
                        {ops::apply_rope(qr, cos_sin.first, cos_sin.second, policy)}, {qr}, {dq});
                  }),
          0);
    }
  }
}

}  // namespace

void add_bench_cpu_ops(CLI::App& bench) {
  auto opts = std::make_shared<BenchCpuOpsOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "cpu-ops", "Fused CPU attention, RMSNorm and RoPE vs the ATen reference: ms per call");
  cmd->add_option("--repeat", opts->repeat, "timed calls per measurement (median)")
      ->capture_default_str();
  cmd->add_option("--threads", opts->threads, "intra-op threads (0: LibTorch's default)")
      ->capture_default_str();
  cmd->add_option("--batch", opts->batch, "attention sequences")->capture_default_str();
  cmd->add_option("--seq", opts->seq, "attention tokens per sequence")->capture_default_str();
  cmd->add_option("--heads", opts->heads, "query heads")->capture_default_str();
  cmd->add_option("--kv-heads", opts->kv_heads, "key/value heads")->capture_default_str();
  cmd->add_option("--head-dim", opts->head_dim, "head dimension")->capture_default_str();
  cmd->add_option("--decode-batch", opts->decode_batch, "decode: sequences")->capture_default_str();
  cmd->add_option("--decode-len", opts->decode_len, "decode: cached keys per sequence")
      ->capture_default_str();
  cmd->callback([opts] { run(*opts); });
}

}  // namespace grpo::cli
