// `grpo bench rollout`: sampling throughput of the rollout engine on a model folder for
// prompts x G x lengths, split into prefill and decode time, with peak memory. The fixed-length
// mode (default) ignores eos so that every run does the same work as
// scripts/bench_vs_hf_generate.py, which times Hugging Face generate on the same folder.
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "grpo/core/error.h"
#include "grpo/model/checkpoint.h"
#include "grpo/rollout/engine.h"
#include "grpo/torch_compat.h"
#include "verbs.h"

// GRPO_TORCH_HAS_CUDA (set by src/cli/CMakeLists.txt): LibTorch was built with CUDA, so the
// caching allocator's statistics can be linked (CPU builds may ship the header without them).
#if defined(GRPO_TORCH_HAS_CUDA) && GRPO_TORCH_HAS_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#define GRPO_BENCH_CUDA_STATS 1
#endif

namespace grpo::cli {

namespace {

struct BenchRolloutOptions {
  std::string model;
  std::string dtype = "float32";
  std::string device = "auto";
  int prompts = 8;
  int n = 8;
  int prompt_len = 64;
  int new_tokens = 128;
  int repeat = 3;
  int threads = 0;
  bool stop_at_eos = false;
  bool no_share = false;
  double temperature = 1.0;
  int64_t max_tokens_in_flight = 0;
  bool json = false;
};

// Peak resident set size of this process in MiB (VmHWM), or -1 where /proc is missing.
double peak_rss_mib() {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return -1;
}

double peak_cuda_mib(const at::Device& device) {
#ifdef GRPO_BENCH_CUDA_STATS
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
    return static_cast<double>(stats.allocated_bytes[0].peak) / (1024.0 * 1024.0);
  }
#endif
  (void)device;
  return -1;
}

void run_bench(const BenchRolloutOptions& o) {
  GRPO_CHECK_KIND(usage, o.prompts >= 1 && o.n >= 1 && o.prompt_len >= 1 && o.new_tokens >= 1,
                  "--prompts, --n, --prompt-len and --new-tokens must be >= 1");
  if (o.threads > 0) at::set_num_threads(o.threads);
  at::ScalarType dtype = at::kFloat;
  if (o.dtype == "bfloat16") {
    dtype = at::kBFloat16;
  } else if (o.dtype == "float16") {
    dtype = at::kHalf;
  } else {
    GRPO_CHECK_KIND(usage, o.dtype == "float32", "--dtype must be float32, bfloat16 or float16");
  }
  const at::Device device = o.device == "auto"
                                ? (compat::cuda_device_count() > 0 ? at::Device("cuda") : at::kCPU)
                                : at::Device(o.device);
  model::CausalLM model = model::load_hf(o.model, dtype);
  model->to(device);
  model->eval();
  const auto& arch = model->arch();

  // Deterministic prompt ids, the same formula as scripts/bench_vs_hf_generate.py.
  std::vector<std::vector<int32_t>> prompts(o.prompts);
  for (int p = 0; p < o.prompts; ++p) {
    for (int j = 0; j < o.prompt_len; ++j) {
      prompts[p].push_back(static_cast<int32_t>((1 + 7919LL * p + 104729LL * j) % arch.vocab_size));
    }
  }
  rollout::EngineOptions eo;
  eo.share_prefix = !o.no_share;
  eo.max_tokens_in_flight = o.max_tokens_in_flight;
  rollout::RolloutEngine engine(model, nullptr, eo);
  rollout::SamplingParams sp;
  sp.max_new_tokens = o.new_tokens;
  sp.temperature = o.temperature;
  sp.ignore_eos = !o.stop_at_eos;

  // Spinning OpenMP threads (the default) on cores shared with other jobs slow a multi-threaded
  // decode step by up to 10x: the figures are only comparable with the policy known.
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  std::cout << "model " << o.model << ": " << arch.model_type << ", " << arch.num_layers
            << " layers, hidden " << arch.hidden_size << ", vocab " << arch.vocab_size << ", "
            << model::dtype_name(dtype) << " on " << device << ", " << at::get_num_threads()
            << " threads, OMP_WAIT_POLICY " << (wait_policy != nullptr ? wait_policy : "unset")
            << "\n"
            << "workload: " << o.prompts << " prompts x " << o.n << " samples, prompt "
            << o.prompt_len << " tokens, " << o.new_tokens << " new tokens"
            << (o.stop_at_eos ? " at most" : " each (fixed length)")
            << (o.no_share ? ", no prefix sharing" : "") << "\n";
  engine.generate(prompts, o.n, sp);  // warm-up: allocator, thread pools, lazy init
  double best = 0;
  rollout::RolloutStats best_stats;
  for (int i = 0; i < o.repeat; ++i) {
    sp.seed = static_cast<uint64_t>(i + 1);
    const auto start = std::chrono::steady_clock::now();
    engine.generate(prompts, o.n, sp);
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto& st = engine.last_stats();
    const double tps = static_cast<double>(st.generated_tokens) / s;
    std::cout << "run " << i + 1 << ": " << st.generated_tokens << " tokens in " << s
              << " s = " << tps << " tokens/s (prefill " << st.prefill_seconds << " s, decode "
              << st.decode_seconds << " s over " << st.decode_steps << " steps)\n";
    if (tps > best) {
      best = tps;
      best_stats = st;
    }
  }
  const double rss = peak_rss_mib(), gpu = peak_cuda_mib(device);
  std::cout << "best: " << best << " tokens/s; prefill "
            << static_cast<double>(best_stats.prefill_tokens) / best_stats.prefill_seconds
            << " prompt tokens/s; decode "
            << static_cast<double>(best_stats.generated_tokens) / best_stats.decode_seconds
            << " tokens/s\n"
            << "peak memory: RSS " << rss << " MiB";
  if (gpu >= 0) std::cout << ", CUDA max allocated " << gpu << " MiB";
  std::cout << "\n";
  if (o.json) {
    const nlohmann::json j = {{"tokens_per_s", best},
                              {"prefill_s", best_stats.prefill_seconds},
                              {"decode_s", best_stats.decode_seconds},
                              {"generated_tokens", best_stats.generated_tokens},
                              {"peak_rss_mib", rss},
                              {"peak_cuda_mib", gpu}};
    std::cout << "json: " << j.dump() << "\n";
  }
}

}  // namespace

void add_bench_rollout(CLI::App& bench) {
  auto o = std::make_shared<BenchRolloutOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "rollout", "Rollout engine tokens/s, prefill vs decode time and peak memory on a model");
  cmd->add_option("--model", o->model, "Model folder (config.json + *.safetensors)")->required();
  cmd->add_option("--prompts", o->prompts, "Distinct prompts")->capture_default_str();
  cmd->add_option("--n", o->n, "Samples per prompt (G)")->capture_default_str();
  cmd->add_option("--prompt-len", o->prompt_len, "Tokens per prompt")->capture_default_str();
  cmd->add_option("--new-tokens", o->new_tokens, "Tokens generated per sample")
      ->capture_default_str();
  cmd->add_flag("--stop-at-eos", o->stop_at_eos,
                "Let samples end at eos (default: fixed length, eos ignored)");
  cmd->add_flag("--no-share", o->no_share, "Prefill every sample's prompt (no prefix sharing)");
  cmd->add_option("--temperature", o->temperature, "Sampling temperature (0: greedy)")
      ->capture_default_str();
  cmd->add_option("--repeat", o->repeat, "Timed runs after one warm-up")->capture_default_str();
  cmd->add_option("--threads", o->threads, "Intra-op threads (0: LibTorch default)")
      ->capture_default_str();
  cmd->add_option("--max-tokens-in-flight", o->max_tokens_in_flight, "0: no cap")
      ->capture_default_str();
  cmd->add_option("--dtype", o->dtype, "float32, bfloat16 or float16")->capture_default_str();
  cmd->add_option("--device", o->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_flag("--json", o->json, "Also print the best run as one JSON line");
  cmd->callback([o] { run_bench(*o); });
}

}  // namespace grpo::cli
