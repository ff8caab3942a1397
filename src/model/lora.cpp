// LoRA adapters: attach (targets by module name, A drawn from a seeded CPU generator, the rest
// frozen), switch off for the reference forward, and PEFT-layout adapter files.
#include "grpo/model/lora.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "grpo/core/error.h"
#include "grpo/core/safetensors.h"
#include "model_files.h"

namespace grpo::model {
namespace fs = std::filesystem;
namespace st = grpo::safetensors;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Every Linear of the model with its module name, in registration order.
std::vector<std::pair<std::string, LinearImpl*>> linears(CausalLM& model) {
  std::vector<std::pair<std::string, LinearImpl*>> out;
  for (const auto& item : model->named_modules("", /*include_self=*/false)) {
    if (auto* l = item.value()->as<LinearImpl>()) out.emplace_back(item.key(), l);
  }
  return out;
}

constexpr const char* kPeftPrefix = "base_model.model.";

}  // namespace

LoraSpec lora_spec(const config::LoraConfig& config, uint64_t seed) {
  LoraSpec s;
  s.rank = config.rank;
  s.alpha = config.alpha;
  s.targets = config.target_modules;
  s.seed = seed;
  return s;
}

int64_t attach_lora(CausalLM& model, const LoraSpec& spec) {
  GRPO_CHECK(spec.rank >= 1, "LoRA rank must be >= 1, got ", spec.rank);
  GRPO_CHECK(!has_lora(model), "the model has LoRA adapters already");
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(spec.seed);
  int64_t adapted = 0;
  for (auto& [name, linear] : linears(model)) {
    if (name.find(".experts.") != std::string::npos) continue;  // routed experts: grouped path
    bool target = false;
    for (const auto& t : spec.targets) target = target || ends_with(name, "." + t) || name == t;
    if (!target) continue;
    const at::Tensor& w = linear->weight;
    const int64_t out = w.size(0), in = w.size(1);
    const double bound =
        1.0 / std::sqrt(static_cast<double>(in));  // PEFT's kaiming_uniform(a=sqrt 5)
    at::Tensor a = at::empty({spec.rank, in}, at::kFloat).uniform_(-bound, bound, gen);
    linear->lora_a = linear->register_parameter("lora_A", a.to(w.options()));
    linear->lora_b = linear->register_parameter("lora_B", at::zeros({out, spec.rank}, w.options()));
    linear->lora_scale = spec.alpha / static_cast<double>(spec.rank);
    linear->lora_enabled = true;
    ++adapted;
  }
  GRPO_CHECK_KIND(config, adapted > 0, "model.lora.target_modules matches no projection of this ",
                  model->arch().model_type, " model");
  return adapted;
}

bool has_lora(CausalLM& model) {
  for (auto& [name, linear] : linears(model)) {
    if (linear->has_lora()) return true;
  }
  return false;
}

LoraDisabled::LoraDisabled(CausalLM& model) {
  for (auto& [name, linear] : linears(model)) {
    if (linear->has_lora() && linear->lora_enabled) {
      linear->lora_enabled = false;
      linears_.push_back(linear);
    }
  }
}

LoraDisabled::~LoraDisabled() {
  for (auto* l : linears_) l->lora_enabled = true;
}

void save_lora_adapter(CausalLM& model, const LoraSpec& spec, const std::string& dir,
                       const std::string& base_model) {
  fs::create_directories(dir);
  std::vector<at::Tensor> keep;
  std::vector<st::TensorData> tensors;
  std::set<std::string> modules;
  for (auto& [name, linear] : linears(model)) {
    if (!linear->has_lora()) continue;
    const auto leaf = name.substr(name.rfind('.') + 1);
    modules.insert(leaf);
    for (const auto& [suffix, t] :
         {std::pair<const char*, at::Tensor>{".lora_A.weight", linear->lora_a},
          {".lora_B.weight", linear->lora_b}}) {
      keep.push_back(t.detach().to(at::kCPU).contiguous());
      const at::Tensor& c = keep.back();
      tensors.push_back({kPeftPrefix + name + suffix, to_file_dtype(c.scalar_type()),
                         c.sizes().vec(), c.data_ptr(),
                         static_cast<size_t>(c.numel()) * c.element_size()});
    }
  }
  GRPO_CHECK(!tensors.empty(), "save_lora_adapter: the model has no adapters");
  st::write_file((fs::path(dir) / "adapter_model.safetensors").string(), tensors,
                 {{"format", "pt"}});
  nlohmann::json config = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"r", spec.rank},
      {"lora_alpha", spec.alpha},
      {"lora_dropout", 0.0},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"use_rslora", false},
      {"inference_mode", true},
      {"target_modules", std::vector<std::string>(modules.begin(), modules.end())},
      {"base_model_name_or_path", base_model}};
  st::write_text_atomic((fs::path(dir) / "adapter_config.json").string(), config.dump(2) + "\n");
}

namespace {

// dir/adapter_config.json, checked for the PEFT variants whose forward is not plain LoRA.
nlohmann::json read_adapter_config(const std::string& dir) {
  const fs::path config_path = fs::path(dir) / "adapter_config.json";
  const fs::path weights = fs::path(dir) / "adapter_model.safetensors";
  GRPO_CHECK(fs::exists(config_path) && fs::exists(weights), dir,
             ": not a LoRA adapter folder (adapter_config.json and adapter_model.safetensors)");
  nlohmann::json config;
  try {
    std::ifstream in(config_path);
    config = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    GRPO_FAIL(config_path.string(), ": not JSON: ", e.what());
  }
  // PEFT variants whose forward differs from W x + (alpha / r) B A x.
  for (const char* flag : {"use_rslora", "use_dora", "fan_in_fan_out", "lora_bias"}) {
    const auto it = config.find(flag);
    GRPO_CHECK(it == config.end() || it->is_null() || (it->is_boolean() && !it->get<bool>()),
               config_path.string(), ": ", flag, " is set; only plain LoRA adapters are supported");
  }
  for (const char* pattern : {"rank_pattern", "alpha_pattern"}) {
    const auto it = config.find(pattern);
    GRPO_CHECK(it == config.end() || it->is_null() || it->empty(), config_path.string(), ": ",
               pattern, " is set; only one rank and alpha for every projection is supported");
  }
  return config;
}

}  // namespace

LoraSpec read_lora_spec(const std::string& dir) {
  const nlohmann::json config = read_adapter_config(dir);
  LoraSpec spec;
  spec.rank = config.value("r", int64_t{0});
  spec.alpha = config.value("lora_alpha", 0.0);
  GRPO_CHECK(spec.rank >= 1 && spec.alpha > 0, dir, "/adapter_config.json: r ", spec.rank,
             " and lora_alpha ", spec.alpha, " must be positive");
  const auto targets = config.find("target_modules");
  GRPO_CHECK(targets != config.end() && targets->is_array() && !targets->empty(), dir,
             "/adapter_config.json: target_modules must be a non-empty list of module names");
  for (const auto& t : *targets) {
    GRPO_CHECK(t.is_string(), dir, "/adapter_config.json: target_modules holds ", t.dump());
    spec.targets.push_back(t.get<std::string>());
  }
  return spec;
}

void apply_lora_adapter(CausalLM& model, const std::string& dir) {
  const LoraSpec spec = read_lora_spec(dir);
  attach_lora(model, spec);
  load_lora_adapter(model, spec, dir);
}

void load_lora_adapter(CausalLM& model, const LoraSpec& spec, const std::string& dir) {
  const nlohmann::json config = read_adapter_config(dir);
  const fs::path config_path = fs::path(dir) / "adapter_config.json";
  const fs::path weights = fs::path(dir) / "adapter_model.safetensors";
  GRPO_CHECK(config.value("r", int64_t{0}) == spec.rank &&
                 std::abs(config.value("lora_alpha", 0.0) - spec.alpha) < 1e-12,
             config_path.string(), ": r ", config.value("r", int64_t{0}), " and lora_alpha ",
             config.value("lora_alpha", 0.0), " differ from model.lora (rank ", spec.rank,
             ", alpha ", spec.alpha, ")");
  const st::Checkpoint file(weights.string());
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (auto& [name, linear] : linears(model)) {
    if (!linear->has_lora()) continue;
    for (const auto& [suffix, param] :
         {std::pair<const char*, at::Tensor*>{".lora_A.weight", &linear->lora_a},
          {".lora_B.weight", &linear->lora_b}}) {
      const std::string key = kPeftPrefix + name + suffix;
      GRPO_CHECK(file.contains(key), weights.string(), ": no tensor '", key,
                 "' (the adapter targets other projections than model.lora.target_modules)");
      const st::TensorView view = file.get(key);
      GRPO_CHECK(view.info->shape == param->sizes().vec(), weights.string(), ": tensor '", key,
                 "' has shape ", at::IntArrayRef(view.info->shape), ", the model needs ",
                 param->sizes());
      at::Tensor raw =
          at::empty(view.info->shape, at::TensorOptions().dtype(from_file_dtype(view.info->dtype)));
      std::memcpy(raw.data_ptr(), view.data, view.info->nbytes());
      param->copy_(raw);
      used.insert(key);
    }
  }
  for (const auto& name : file.names()) {
    GRPO_CHECK(used.count(name) != 0, weights.string(), ": tensor '", name,
               "' has no adapter in this model (model.lora.target_modules differs)");
  }
}

}  // namespace grpo::model
