// `grpo bench train --config FILE [--set k=v]...`: tokens/s of the update phase (forward,
// clipped loss with KL, backward, gradient clipping, AdamW step) and of the reference forward,
// for the model, algorithm and micro-batch size a run config names, on synthetic completions of
// a fixed shape. Prints figures, never asserts.
#include <sys/resource.h>
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "grpo/algo/policy_loss.h"
#include "grpo/core/config.h"
#include "grpo/core/error.h"
#include "grpo/model/checkpoint.h"
#include "grpo/model/lora.h"
#include "grpo/text/tokenizer.h"
#include "grpo/torch_compat.h"
#include "grpo/train/optimizer.h"
#include "grpo/train/shared_prompts.h"
#include "grpo/train/train_batch.h"
#include "verbs.h"

namespace grpo::cli {
namespace {

struct BenchTrainOptions {
  std::string config;
  std::vector<std::string> overrides;
  int batch = 16;  // completions per optimizer step
  int prompt_len = 64;
  int response_len = 192;
  int group = 1;  // completions per prompt (rows sharing their prompt tokens)
  int steps = 3;
  int64_t vocab = 0;  // 0: the config's tokenizer's, or 32000 without one
  std::string device = "auto";
};

void sync(const at::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void run(const BenchTrainOptions& o) {
  const auto c = config::load_config(o.config, o.overrides).config;
  at::Device device(at::kCPU);
  if (o.device == "auto") {
    if (compat::cuda_device_count() > 0) device = at::Device(at::kCUDA, 0);
  } else {
    device = at::Device(o.device);
  }
  GRPO_CHECK_KIND(usage, o.batch >= 1 && o.prompt_len >= 1 && o.response_len >= 1 && o.steps >= 1,
                  "bench train: --batch, --prompt-len, --response-len and --steps must be >= 1");
  GRPO_CHECK_KIND(usage, o.group >= 1 && o.batch % o.group == 0, "bench train: --group ", o.group,
                  " must be >= 1 and divide --batch ", o.batch);
  int64_t vocab = o.vocab;
  const std::string tokenizer_dir = c.tokenizer.path.empty() ? c.model.path : c.tokenizer.path;
  if (vocab == 0 && !tokenizer_dir.empty() && std::filesystem::exists(tokenizer_dir)) {
    vocab = text::load_tokenizer(tokenizer_dir)->vocab_size();
  }
  if (vocab == 0) vocab = 32000;
  torch::manual_seed(c.trainer.seed);
  model::CausalLM policy = model::build_model(c.model, vocab);
  policy->set_gradient_checkpointing(c.trainer.gradient_checkpointing);
  policy->to(device);
  policy->train();
  // As in grpo train: with LoRA the reference is the policy with its adapters off.
  const bool lora = c.model.lora.rank > 0;
  model::CausalLM reference{nullptr};
  if (c.algorithm.beta > 0 && !lora) {
    reference = model::build_model(c.model, vocab);
    for (auto& p : reference->parameters()) p.set_requires_grad(false);
    reference->to(device);
    reference->eval();
  }
  const auto& arch = policy->arch();
  const auto params = train::trainable_parameters(*policy);
  auto optimizer = train::make_adamw(params, c.trainer);

  // Synthetic completions: random ids, every response token counted, mixed-sign advantages;
  // each run of --group rows shares its prompt.
  const int64_t n = o.batch, length = o.prompt_len + o.response_len;
  train::TrainBatch batch;
  batch.input_ids = at::randint(0, arch.vocab_size, {n, length}, at::kLong);
  const at::Tensor firsts = at::arange(n, at::kLong).div(o.group, "floor").mul(o.group);
  batch.input_ids.narrow(1, 0, o.prompt_len)
      .copy_(batch.input_ids.narrow(1, 0, o.prompt_len).index_select(0, firsts));
  for (int64_t r = 0; r < n; ++r) {
    batch.prompt_keys.push_back(r / o.group * o.group);
    batch.prompt_lengths.push_back(o.prompt_len);
  }
  batch.attention_mask = at::ones({n, length}, at::kLong);
  batch.response_mask = at::zeros({n, length - 1}, at::kFloat);
  batch.response_mask.narrow(1, o.prompt_len - 1, o.response_len).fill_(1.0f);
  batch.advantages = at::randn({n}, at::kFloat);
  batch.seq_lengths.assign(static_cast<size_t>(n), length);
  batch = batch.to(device);
  const double temperature = c.rollout.temperature > 0 ? c.rollout.temperature : 1.0;
  {
    torch::NoGradGuard no_grad;
    batch.old_logprobs = train::token_outputs(policy, batch, temperature, false).logprobs;
  }
  const int64_t micro = c.trainer.micro_batch_size > 0 ? c.trainer.micro_batch_size : n;
  const bool share = c.trainer.share_prompts;
  bool shared = false;

  double ref_s = 0;
  const bool has_reference = c.algorithm.beta > 0;
  auto reference_pass = [&] {
    if (!has_reference) return;
    const double t0 = now_seconds();
    if (lora) {
      model::LoraDisabled base(policy);
      batch.ref_logprobs = train::frozen_logprobs(policy, batch, micro, share, temperature);
    } else {
      batch.ref_logprobs = train::frozen_logprobs(reference, batch, micro, share, temperature);
    }
    sync(device);
    ref_s = now_seconds() - t0;
  };
  auto update = [&] {
    algo::LossNormalizers norm;
    norm.tokens = static_cast<double>(n) * o.response_len;
    norm.sequences = static_cast<double>(n);
    norm.max_response_length = o.response_len;
    optimizer->zero_grad();
    auto plan = train::plan_forward(policy, batch, 0, n, micro, share);
    shared = plan.prompts.has_value();
    if (plan.prompts) plan.prompts->detach();
    for (const auto& rows : plan.micro_batches) {
      auto sub = batch.select(rows);
      const bool bonus = c.algorithm.entropy_coef != 0;
      auto tokens = plan.token_outputs(policy, sub, temperature, bonus);
      const auto in = train::policy_loss_inputs(sub, tokens, bonus);
      algo::policy_loss(in, norm, c.algorithm).loss.backward();
    }
    if (plan.prompts) plan.prompts->backward();
    train::clip_grad_norm(params, c.trainer.max_grad_norm);
    optimizer->step();
    sync(device);
  };

  reference_pass();  // warm-up
  update();
  std::vector<double> update_s, reference_s;
  for (int i = 0; i < o.steps; ++i) {
    reference_pass();
    reference_s.push_back(ref_s);
    const double t0 = now_seconds();
    update();
    update_s.push_back(now_seconds() - t0);
  }
  std::sort(update_s.begin(), update_s.end());
  std::sort(reference_s.begin(), reference_s.end());
  const double upd = update_s[update_s.size() / 2];
  const double tokens = static_cast<double>(n) * static_cast<double>(length);
  const double response_tokens = static_cast<double>(n) * o.response_len;
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto count = model::count_parameters(arch);
  std::printf("bench train: %s, %lld parameters, %s on %s, %d threads\n", arch.model_type.c_str(),
              static_cast<long long>(count.total),
              c10::toString(model::to_scalar_type(c.model.dtype)), device.str().c_str(),
              at::get_num_threads());
  std::printf(
      "  batch                 %lld completions x (%d prompt + %d response) tokens, "
      "micro-batch %lld, beta %g, gradient checkpointing %s\n",
      static_cast<long long>(n), o.prompt_len, o.response_len, static_cast<long long>(micro),
      c.algorithm.beta, c.trainer.gradient_checkpointing ? "on" : "off");
  int64_t trainable = 0;
  for (const auto& p : params) trainable += p.second.numel();
  std::printf("  trainable             %lld parameters%s\n", static_cast<long long>(trainable),
              lora ? (" (LoRA rank " + std::to_string(c.model.lora.rank) +
                      ", reference = the base: no second model)")
                         .c_str()
                   : "");
  std::printf("  prompts               %lld, %d completions each, %s\n",
              static_cast<long long>(n / o.group), o.group,
              shared ? "run once each (trainer.share_prompts)" : "run with every completion");
  std::printf("  update (fwd+bwd+step) %10.1f tokens/s  %10.1f response tokens/s  (%.1f ms)\n",
              tokens / upd, response_tokens / upd, upd * 1e3);
  if (has_reference) {
    const double ref = reference_s[reference_s.size() / 2];
    std::printf("  reference forward     %10.1f tokens/s  (%.1f ms)\n", tokens / ref, ref * 1e3);
  }
  std::printf("  peak RSS              %10.1f MB\n", static_cast<double>(usage.ru_maxrss) / 1024.0);
}

}  // namespace

void add_bench_train(CLI::App& bench) {
  auto o = std::make_shared<BenchTrainOptions>();
  auto* cmd = bench.add_subcommand(
      "train", "Tokens/s of the GRPO update phase for a run config's model and algorithm");
  cmd->add_option("--config", o->config, "YAML run config (model, algorithm, trainer)")->required();
  cmd->add_option("--set", o->overrides, "Override a key (repeatable)");
  cmd->add_option("--batch", o->batch, "Completions per optimizer step")->capture_default_str();
  cmd->add_option("--prompt-len", o->prompt_len, "Prompt tokens per completion")
      ->capture_default_str();
  cmd->add_option("--response-len", o->response_len, "Response tokens per completion")
      ->capture_default_str();
  cmd->add_option("--group", o->group,
                  "Completions per prompt (trainer.share_prompts runs each prompt once)")
      ->capture_default_str();
  cmd->add_option("--steps", o->steps, "Timed optimizer steps (median reported)")
      ->capture_default_str();
  cmd->add_option(
         "--vocab", o->vocab,
         "Vocabulary size when the config does not fix one (0: its tokenizer's, else 32000)")
      ->capture_default_str();
  cmd->add_option("--device", o->device, "auto, cpu, cuda or cuda:N")->capture_default_str();
  cmd->callback([o] { run(*o); });
}

}  // namespace grpo::cli
