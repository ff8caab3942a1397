// AdamW with weight-decay groups, the LR schedule, gradient clipping and optimizer state files.
#include "grpo/train/optimizer.h"

#include <torch/serialize.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>

#include "grpo/core/error.h"

namespace grpo::train {

NamedParameters trainable_parameters(const torch::nn::Module& module) {
  NamedParameters out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (item.value().requires_grad()) out.emplace_back(item.key(), item.value());
  }
  return out;
}

bool uses_weight_decay(const std::string& name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t dot = lower.find('.', start);
    parts.push_back(
        lower.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  const std::string& leaf = parts.back();
  if (leaf == "bias" || (leaf.size() > 5 && leaf.compare(leaf.size() - 5, 5, "_bias") == 0)) {
    return false;
  }
  for (size_t i = 0; i + 1 < parts.size(); ++i) {  // module names on the way to the leaf
    const std::string& p = parts[i];
    const bool ends_norm = p.size() >= 5 && p.compare(p.size() - 5, 5, "_norm") == 0;
    const bool gpt2_ln = p == "ln" || p.rfind("ln_", 0) == 0;  // GPT-2's ln_1, ln_f
    if (p == "norm" || ends_norm || gpt2_ln || p.find("layernorm") != std::string::npos ||
        p.find("rmsnorm") != std::string::npos) {
      return false;
    }
  }
  return true;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(const NamedParameters& params,
                                                const config::TrainerConfig& config) {
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& [name, p] : params) (uses_weight_decay(name) ? decay : no_decay).push_back(p);
  GRPO_CHECK(!params.empty(), "make_adamw: no trainable parameters");
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!decay.empty()) groups.emplace_back(decay, adamw_options(config, config.weight_decay));
  if (!no_decay.empty()) groups.emplace_back(no_decay, adamw_options(config, 0.0));
  return std::make_unique<torch::optim::AdamW>(groups, *adamw_options(config, config.weight_decay));
}

std::unique_ptr<torch::optim::AdamWOptions> adamw_options(const config::TrainerConfig& config,
                                                          double weight_decay) {
  auto o = std::make_unique<torch::optim::AdamWOptions>(learning_rate(config, 0));
  o->betas(std::make_tuple(config.adam_beta1, config.adam_beta2))
      .eps(config.adam_eps)
      .weight_decay(weight_decay);
  return o;
}

double learning_rate(const config::TrainerConfig& config, int64_t step) {
  const int64_t warmup = config.warmup_steps;
  if (step < warmup) return config.lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (config.lr_schedule == config::LrSchedule::constant) return config.lr;
  const int64_t span = std::max<int64_t>(1, config.steps - warmup);
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / span);
  return config.lr * 0.5 * (1.0 + std::cos(M_PI * progress));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

void zero_gradients(const std::vector<at::Tensor>& params) {
  at::NoGradGuard no_grad;
  for (const auto& p : params) {
    const auto& grad = p.grad();
    if (grad.defined()) grad.detach().zero_();
  }
}

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  std::vector<at::Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  if (grads.empty()) return 0.0;
  std::vector<at::Tensor> squares;  // () fp32 each
  squares.reserve(grads.size());
  for (const auto& g : grads) squares.push_back(g.to(at::kFloat).pow(2).sum());
  const at::Tensor total = at::stack(squares).sum().sqrt();  // () fp32
  const double norm = total.item<double>();
  if (max_norm > 0 && std::isfinite(norm) && norm > max_norm) {
    const double scale = max_norm / (norm + 1e-6);
    at::NoGradGuard no_grad;
    for (auto& g : grads) g.mul_(scale);
  }
  return norm;
}

double clip_grad_norm(const NamedParameters& params, double max_norm) {
  std::vector<at::Tensor> tensors;
  tensors.reserve(params.size());
  for (const auto& item : params) tensors.push_back(item.second);
  return clip_grad_norm(tensors, max_norm);
}

void save_optimizer(torch::optim::Optimizer& optimizer, const std::string& path) {
  torch::save(optimizer, path);
}

void load_optimizer(torch::optim::Optimizer& optimizer, const std::string& path) {
  GRPO_CHECK(std::filesystem::exists(path), "optimizer state ", path, " does not exist");
  try {
    torch::load(optimizer, path);
  } catch (const c10::Error& e) {
    GRPO_FAIL(
        "cannot load optimizer state ", path,
        " (was it saved for the same model and parameter order?): ", e.what_without_backtrace());
  }
}

namespace {

class WholeAdamW final : public Optimizer {
 public:
  WholeAdamW(const NamedParameters& params, const config::TrainerConfig& config)
      : adamw_(make_adamw(params, config)) {
    for (const auto& item : params) bytes_ += 2 * item.second.numel() * item.second.element_size();
  }
  void set_learning_rate(double lr) override { train::set_learning_rate(*adamw_, lr); }
  void zero_grad() override {
    for (const auto& group : adamw_->param_groups()) zero_gradients(group.params());
  }
  void step() override { adamw_->step(); }
  void save(const std::string& path) override { save_optimizer(*adamw_, path); }
  void load(const std::string& path) override { load_optimizer(*adamw_, path); }
  int64_t state_bytes() const override { return bytes_; }

 private:
  std::unique_ptr<torch::optim::AdamW> adamw_;
  int64_t bytes_ = 0;
};

}  // namespace

std::unique_ptr<Optimizer> make_whole_adamw(const NamedParameters& params,
                                            const config::TrainerConfig& config) {
  return std::make_unique<WholeAdamW>(params, config);
}

}  // namespace grpo::train
