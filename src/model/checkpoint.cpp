// Loading and saving Hugging Face folders, random initialisation and parameter counting (see
// include/grpo/model/checkpoint.h).
#include "grpo/model/checkpoint.h"

#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "grpo/core/error.h"
#include "grpo/core/log.h"
#include "grpo/core/safetensors.h"
#include "grpo/model/lora.h"
#include "model_files.h"

namespace grpo::model {
namespace fs = std::filesystem;
namespace st = grpo::safetensors;

namespace {

std::string join(const std::vector<std::string>& names, size_t limit = 20) {
  std::ostringstream out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) out << (i ? ", " : "") << names[i];
  if (names.size() > limit) out << ", ... (" << names.size() << " in all)";
  return out.str();
}

// Tensors some exporters add that carry no weights of their own.
bool ignorable(const std::string& name, const ModelArch& arch) {
  if (name.size() > 21 && name.compare(name.size() - 21, 21, "rotary_emb.inv_freq") == 0) {
    return true;
  }
  return arch.tie_word_embeddings && name == "lm_head.weight";
}

}  // namespace

at::ScalarType to_scalar_type(config::DType dtype) {
  switch (dtype) {
    case config::DType::float32:
      return at::kFloat;
    case config::DType::bfloat16:
      return at::kBFloat16;
    case config::DType::float16:
      return at::kHalf;
  }
  return at::kFloat;
}

const char* dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kBFloat16:
      return "bfloat16";
    case at::kHalf:
      return "float16";
    default:
      return "float32";
  }
}

CausalLM load_hf(const std::string& dir, at::ScalarType dtype, ops::KernelPolicy kernels) {
  const std::string config_path = (fs::path(dir) / "config.json").string();
  GRPO_CHECK(fs::exists(config_path), dir, ": no config.json (not a Hugging Face model folder)");
  ModelArch arch = read_hf_config(config_path);
  arch.kernels = kernels;
  CausalLM model(std::move(arch));
  const st::Checkpoint ckpt(dir);
  model->to(dtype);  // before filling, so a bf16 model never exists in fp32
  torch::NoGradGuard no_grad;
  std::vector<std::string> missing;
  std::set<std::string> used;
  for (auto& item : model->named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    at::Tensor& param = item.value();
    if (!ckpt.contains(name)) {
      missing.push_back(name);
      continue;
    }
    used.insert(name);
    const st::TensorView view = ckpt.get(name);
    const auto& info = *view.info;
    GRPO_CHECK(info.shape == param.sizes().vec(), *view.file, ": tensor '", name, "' has shape ",
               at::IntArrayRef(info.shape), " but the config (", config_path, ") needs ",
               param.sizes());
    // Copy out of the mapping first: safetensors data need not be aligned for the dtype.
    at::Tensor raw = at::empty(info.shape, at::TensorOptions().dtype(from_file_dtype(info.dtype)));
    GRPO_CHECK(raw.is_floating_point(), *view.file, ": tensor '", name, "' has dtype ",
               st::dtype_name(info.dtype), "; model weights must be F32, F16 or BF16");
    std::memcpy(raw.data_ptr(), view.data, info.nbytes());
    param.copy_(raw);
  }
  std::vector<std::string> unexpected;
  for (const auto& name : ckpt.names()) {
    if (used.count(name) == 0 && !ignorable(name, model->arch())) unexpected.push_back(name);
  }
  GRPO_CHECK(missing.empty(), dir, ": checkpoint lacks ", missing.size(),
             " tensors the config needs: ", join(missing));
  GRPO_CHECK(unexpected.empty(), dir, ": checkpoint has ", unexpected.size(), " tensors this ",
             model->arch().model_type, " model does not use: ", join(unexpected));
  model->eval();
  return model;
}

void save_hf(CausalLM& model, const std::string& dir, const std::string& tokenizer_dir,
             size_t max_shard_bytes) {
  fs::create_directories(dir);
  std::vector<at::Tensor> keep;  // contiguous CPU copies that the TensorData point into
  std::vector<st::TensorData> tensors;
  at::ScalarType dtype = at::kFloat;
  // LoRA: each adapted projection's weight is written merged (W + scale B A), the adapters not
  // at all, so the folder is the plain model the adapted one computes.
  std::map<std::string, const LinearImpl*> adapted;
  for (const auto& item : model->named_modules("", /*include_self=*/false)) {
    const auto* l = item.value()->as<LinearImpl>();
    if (l != nullptr && l->has_lora()) adapted[item.key() + ".weight"] = l;
  }
  for (const auto& item : model->named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    if (name.size() > 7 && (name.compare(name.size() - 7, 7, ".lora_A") == 0 ||
                            name.compare(name.size() - 7, 7, ".lora_B") == 0)) {
      continue;
    }
    const auto merged = adapted.find(name);
    const at::Tensor value =
        merged != adapted.end() ? merged->second->merged_weight() : item.value();
    const at::Tensor t = value.detach().to(at::kCPU).contiguous();
    dtype = t.scalar_type();
    keep.push_back(t);
    tensors.push_back({item.key(), to_file_dtype(t.scalar_type()), t.sizes().vec(), t.data_ptr(),
                       static_cast<size_t>(t.numel()) * t.element_size()});
  }
  st::write_checkpoint(dir, tensors, max_shard_bytes, {{"format", "pt"}});
  st::write_text_atomic((fs::path(dir) / "config.json").string(),
                        to_hf_config(model->arch(), dtype_name(dtype)).dump(2) + "\n");
  if (tokenizer_dir.empty()) return;
  static const char* kTokenizerFiles[] = {"tokenizer.json",
                                          "tokenizer_config.json",
                                          "special_tokens_map.json",
                                          "tokenizer.model",
                                          "vocab.json",
                                          "merges.txt",
                                          "added_tokens.json",
                                          "generation_config.json",
                                          "chat_template.jinja"};
  for (const char* name : kTokenizerFiles) {
    const fs::path from = fs::path(tokenizer_dir) / name;
    const fs::path to = fs::path(dir) / name;
    if (fs::exists(from) && !fs::equivalent(fs::path(tokenizer_dir), fs::path(dir))) {
      fs::copy_file(from, to, fs::copy_options::overwrite_existing);
    }
  }
}

CausalLM random_model(const ModelArch& arch, uint64_t seed, at::ScalarType dtype) {
  CausalLM model(arch);
  torch::NoGradGuard no_grad;
  const double std = arch.source.value("initializer_range", 0.02);
  // One CPU generator, parameters in registration order: the same weights on every machine.
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& item : model->named_parameters(/*recurse=*/true)) {
    const std::string& name = item.key();
    at::Tensor& p = item.value();
    const auto ends_with = [&](const char* suffix) {
      const size_t n = std::strlen(suffix);
      return name.size() >= n && name.compare(name.size() - n, n, suffix) == 0;
    };
    if (ends_with("norm.weight")) {
      p.fill_(1.0);
    } else if (ends_with(".bias") || ends_with("e_score_correction_bias")) {
      p.zero_();
    } else {
      p.normal_(0.0, std, gen);
    }
  }
  model->to(dtype);
  return model;
}

ops::KernelPolicy kernel_policy(config::KernelChoice choice) {
  switch (choice) {
    case config::KernelChoice::all:
      return ops::KernelPolicy::all;
    case config::KernelChoice::reference:
      return ops::KernelPolicy::reference;
    default:
      return ops::KernelPolicy::automatic;
  }
}

CausalLM build_model(const config::ModelConfig& c, int64_t vocab_size) {
  const at::ScalarType dtype = to_scalar_type(c.dtype);
  GRPO_CHECK_KIND(config, c.init != config::ModelInit::sft || !c.path.empty(),
                  "model.init is sft but model.path is empty: the base model's SFT stage has not "
                  "run (grpo train and grpo sft run it first)");
  const ops::KernelPolicy kernels = kernel_policy(c.kernels);
  CausalLM model{nullptr};
  if (c.init != config::ModelInit::random) {
    model = load_hf(c.path, dtype, kernels);
  } else {
    ModelArch arch = arch_from_config(c.architecture, vocab_size);
    arch.kernels = kernels;
    model = random_model(arch, static_cast<uint64_t>(c.seed), dtype);
  }
  if (c.lora.rank > 0) attach_lora(model, lora_spec(c.lora, static_cast<uint64_t>(c.seed)));
  return model;
}

ParamCount count_parameters(const ModelArch& a) {
  const int64_t h = a.hidden_size;
  const int64_t q = a.num_heads * a.head_dim, kv = a.num_kv_heads * a.head_dim;
  int64_t attn = h * q + 2 * h * kv + q * h + 2 * h;  // projections + the two layer norms
  if (a.qkv_bias) attn += q + 2 * kv;
  if (a.o_bias) attn += h;
  if (a.qk_norm) attn += 2 * a.head_dim;
  const auto mlp = [&](int64_t inter, bool bias) {
    return 3 * h * inter + (bias ? 2 * inter + h : 0);
  };
  ParamCount c;
  c.total = c.active = a.vocab_size * h * (a.tie_word_embeddings ? 1 : 2) + h;
  for (int64_t i = 0; i < a.num_layers; ++i) {
    c.total += attn;
    c.active += attn;
    if (!a.is_moe_layer(i)) {
      c.total += mlp(a.intermediate_size, a.mlp_bias);
      c.active += mlp(a.intermediate_size, a.mlp_bias);
      continue;
    }
    int64_t shared = a.num_experts * h;  // router
    if (a.router_correction_bias) shared += a.num_experts;
    if (a.shared_expert_intermediate_size > 0)
      shared += mlp(a.shared_expert_intermediate_size, false);
    if (a.shared_expert_gate) shared += h;
    const int64_t expert = mlp(a.moe_intermediate_size, false);
    c.total += shared + a.num_experts * expert;
    c.active += shared + a.router.top_k * expert;
  }
  return c;
}

}  // namespace grpo::model
