// `grpo bench forward`: tokens/s of the model's forward pass, and of forward + backward of the
// next-token cross-entropy, for a model folder or a from-scratch shape (default ~10M
// parameters) at a given batch x sequence shape, on the current device. Prints, never asserts.
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "grpo/core/error.h"
#include "grpo/model/checkpoint.h"
#include "grpo/torch_compat.h"
#include "verbs.h"

namespace grpo::cli {
namespace {

struct BenchForwardOptions {
  std::string model;  // HF folder; empty: from-scratch shape below
  config::ModelArchitecture arch;
  std::string dtype = "float32";
  std::string device = "auto";
  int batch = 4;
  int seq = 256;
  int repeat = 5;
  int threads = 0;
};

void sync(const at::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

// Median seconds of `repeat` runs of fn after one warm-up run.
template <class Fn>
double median_seconds(int repeat, const at::Device& device, Fn&& fn) {
  fn();
  sync(device);
  std::vector<double> times;
  for (int i = 0; i < repeat; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    sync(device);
    times.push_back(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void run(const BenchForwardOptions& o) {
  if (o.threads > 0) at::set_num_threads(o.threads);
  at::Device device(at::kCPU);
  if (o.device == "auto") {
    if (compat::cuda_device_count() > 0) device = at::Device(at::kCUDA, 0);
  } else {
    device = at::Device(o.device);
  }
  GRPO_CHECK_KIND(usage, o.dtype == "float32" || o.dtype == "bfloat16" || o.dtype == "float16",
                  "bench forward: --dtype must be float32, bfloat16 or float16");
  const at::ScalarType dtype = o.dtype == "float32"    ? at::kFloat
                               : o.dtype == "bfloat16" ? at::kBFloat16
                                                       : at::kHalf;
  model::CausalLM net = o.model.empty()
                            ? model::random_model(model::arch_from_config(o.arch, 0), 0, dtype)
                            : model::load_hf(o.model, dtype);
  net->to(device);
  const model::ModelArch& a = net->arch();
  const model::ParamCount count = model::count_parameters(a);
  const at::Tensor ids = at::randint(0, a.vocab_size, {o.batch, o.seq},
                                     at::TensorOptions().dtype(at::kLong).device(device));
  const double tokens = static_cast<double>(o.batch) * o.seq;

  net->eval();
  const double fwd = median_seconds(o.repeat, device, [&] {
    torch::NoGradGuard no_grad;
    net->forward(ids);
  });
  net->train();
  const double fwd_bwd = median_seconds(o.repeat, device, [&] {
    net->zero_grad();
    const at::Tensor logits = net->forward(ids).logits;  // (B, T, V)
    const at::Tensor loss = at::cross_entropy_loss(
        logits.narrow(1, 0, o.seq - 1).reshape({-1, a.vocab_size}).to(at::kFloat),
        ids.narrow(1, 1, o.seq - 1).reshape({-1}));
    loss.backward();
  });
  std::printf("bench forward: %s, %s parameters (%s active), %s on %s, %d threads\n",
              a.model_type.c_str(), std::to_string(count.total).c_str(),
              std::to_string(count.active).c_str(), o.dtype.c_str(), device.str().c_str(),
              at::get_num_threads());
  std::printf("  shape                 batch %d x seq %d = %.0f tokens\n", o.batch, o.seq, tokens);
  std::printf("  forward               %10.1f tokens/s  (%.1f ms per batch)\n", tokens / fwd,
              fwd * 1e3);
  std::printf("  forward + backward    %10.1f tokens/s  (%.1f ms per batch)\n", tokens / fwd_bwd,
              fwd_bwd * 1e3);
}

}  // namespace

void add_bench_forward(CLI::App& bench) {
  auto o = std::make_shared<BenchForwardOptions>();
  // Default shape: ~10.5M parameters (16k vocab, tied, 8 layers of width 256).
  o->arch.model_type = "qwen2";
  o->arch.vocab_size = 16384;
  o->arch.hidden_size = 256;
  o->arch.intermediate_size = 768;
  o->arch.num_hidden_layers = 8;
  o->arch.num_attention_heads = 8;
  o->arch.num_key_value_heads = 4;
  o->arch.tie_word_embeddings = true;
  auto* cmd = bench.add_subcommand(
      "forward", "Tokens/s of forward and forward+backward for a model folder or shape");
  cmd->add_option("--model", o->model, "Hugging Face folder (default: a from-scratch shape)");
  cmd->add_option("--model-type", o->arch.model_type, "From-scratch model_type")
      ->capture_default_str();
  cmd->add_option("--vocab", o->arch.vocab_size, "From-scratch vocabulary size")
      ->capture_default_str();
  cmd->add_option("--hidden", o->arch.hidden_size, "From-scratch hidden size")
      ->capture_default_str();
  cmd->add_option("--intermediate", o->arch.intermediate_size, "From-scratch MLP size")
      ->capture_default_str();
  cmd->add_option("--layers", o->arch.num_hidden_layers, "From-scratch layers")
      ->capture_default_str();
  cmd->add_option("--heads", o->arch.num_attention_heads, "From-scratch query heads")
      ->capture_default_str();
  cmd->add_option("--kv-heads", o->arch.num_key_value_heads, "From-scratch key/value heads")
      ->capture_default_str();
  cmd->add_option("--batch", o->batch, "Sequences per batch")->capture_default_str();
  cmd->add_option("--seq", o->seq, "Tokens per sequence")->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "float32, bfloat16 or float16")->capture_default_str();
  cmd->add_option("--device", o->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--repeat", o->repeat, "Timed runs (median reported)")->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU threads (0: LibTorch default)");
  cmd->callback([o] {
    GRPO_CHECK_KIND(usage, o->batch > 0 && o->seq > 1 && o->repeat > 0,
                    "bench forward: --batch and --repeat must be positive and --seq at least 2");
    run(*o);
  });
}

}  // namespace grpo::cli
