// `grpo model inspect DIR | --config FILE`: architecture, parameter counts (total and active per
// token for MoE), stored dtype and memory estimates of a Hugging Face folder or of the
// from-scratch model a run config describes. Reads config.json and safetensors headers only.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "grpo/core/config.h"
#include "grpo/core/error.h"
#include "grpo/core/safetensors.h"
#include "grpo/model/checkpoint.h"
#include "verbs.h"

namespace grpo::cli {
namespace {

struct InspectArgs {
  std::string dir;
  std::string config;
  std::vector<std::string> overrides;
  int64_t vocab_size = 0;
};

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string bytes_text(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f %s", bytes, units[u]);
  return buf;
}

void print_arch(const model::ModelArch& a) {
  int64_t moe_layers = 0;
  for (int64_t i = 0; i < a.num_layers; ++i) moe_layers += a.is_moe_layer(i) ? 1 : 0;
  std::printf("  model_type            %s\n", a.model_type.c_str());
  std::printf("  layers                %lld", static_cast<long long>(a.num_layers));
  if (a.is_moe())
    std::printf(" (%lld MoE, %lld dense)", static_cast<long long>(moe_layers),
                static_cast<long long>(a.num_layers - moe_layers));
  std::printf("\n  hidden size           %lld\n", static_cast<long long>(a.hidden_size));
  std::printf(
      "  attention             %lld query heads, %lld key/value heads, head_dim %lld%s%s%s\n",
      static_cast<long long>(a.num_heads), static_cast<long long>(a.num_kv_heads),
      static_cast<long long>(a.head_dim), a.qkv_bias ? ", qkv bias" : "",
      a.o_bias ? ", o bias" : "", a.qk_norm ? ", q/k RMSNorm" : "");
  if (a.intermediate_size > 0 && moe_layers < a.num_layers) {
    std::printf("  MLP                   SwiGLU, intermediate %lld\n",
                static_cast<long long>(a.intermediate_size));
  }
  if (a.is_moe()) {
    std::printf("  experts               %lld routed, top-%lld, intermediate %lld, %s%s\n",
                static_cast<long long>(a.num_experts), static_cast<long long>(a.router.top_k),
                static_cast<long long>(a.moe_intermediate_size),
                a.router.renormalize ? "renormalised" : "not renormalised",
                a.shared_expert_intermediate_size > 0
                    ? (", shared expert " + std::to_string(a.shared_expert_intermediate_size) +
                       (a.shared_expert_gate ? " (gated)" : ""))
                          .c_str()
                    : "");
  }
  std::printf("  vocabulary            %lld (%s embeddings)\n",
              static_cast<long long>(a.vocab_size), a.tie_word_embeddings ? "tied" : "untied");
  std::printf("  rope                  %s, theta %g", ops::rope_type_name(a.rope.type),
              a.rope.theta);
  if (a.rope.type != ops::RopeType::standard) std::printf(", factor %g", a.rope.factor);
  std::printf(", max positions %lld\n", static_cast<long long>(a.max_position_embeddings));
}

void print_counts_and_memory(const model::ModelArch& a, const std::string& stored_dtype,
                             double bytes_per_param) {
  const model::ParamCount c = model::count_parameters(a);
  std::printf("  parameters            %s total", with_commas(c.total).c_str());
  if (a.is_moe()) std::printf(", %s active per token", with_commas(c.active).c_str());
  std::printf("\n  dtype                 %s\n", stored_dtype.c_str());
  const double n = static_cast<double>(c.total);
  const double kv_per_token = 2.0 * a.num_layers * a.num_kv_heads * a.head_dim;
  std::printf("  memory (weights)      %s as stored, %s in bf16, %s in fp32\n",
              bytes_text(n * bytes_per_param).c_str(), bytes_text(n * 2).c_str(),
              bytes_text(n * 4).c_str());
  std::printf("  memory (KV cache)     %s per 1k tokens in bf16\n",
              bytes_text(kv_per_token * 2 * 1024).c_str());
  std::printf(
      "  memory (training)     %s for fp32 weights + grads + AdamW moments (16 B/param), "
      "activations extra\n",
      bytes_text(n * 16).c_str());
  // Data parallel: the gradients are the all-reduce buckets; distributed.shard_optimizer keeps
  // 1/W of the moments per rank (docs/distributed.md).
  std::printf(
      "  memory (8 ranks)      %s per rank with distributed.shard_optimizer (8 + 8/8 B/param)\n",
      bytes_text(n * 9).c_str());
}

void inspect_folder(const std::string& dir) {
  const model::ModelArch a =
      model::read_hf_config((std::filesystem::path(dir) / "config.json").string());
  const safetensors::Checkpoint ckpt(dir);
  std::map<std::string, int64_t> by_dtype;  // elements per stored dtype
  int64_t elements = 0;
  double bytes = 0;
  for (const auto& f : ckpt.files()) {
    for (const auto& t : f->tensors()) {
      by_dtype[safetensors::dtype_name(t.dtype)] += t.numel();
      elements += t.numel();
      bytes += static_cast<double>(t.nbytes());
    }
  }
  std::ostringstream dtypes;
  for (const auto& [name, count] : by_dtype) {
    dtypes << (dtypes.tellp() > 0 ? ", " : "") << name;
    if (by_dtype.size() > 1) dtypes << " (" << with_commas(count) << ")";
  }
  std::printf("%s: Hugging Face folder, %zu safetensors file(s)\n", dir.c_str(),
              ckpt.files().size());
  print_arch(a);
  print_counts_and_memory(a, dtypes.str(),
                          elements > 0 ? bytes / static_cast<double>(elements) : 4);
  const int64_t expected = model::count_parameters(a).total;
  if (elements != expected) {
    std::printf("  note                  the weights hold %s elements, the config implies %s\n",
                with_commas(elements).c_str(), with_commas(expected).c_str());
  }
}

void inspect_config(const InspectArgs& args) {
  const auto loaded = config::load_config(args.config, args.overrides);
  const config::ModelConfig& m = loaded.config.model;
  GRPO_CHECK_KIND(usage, m.init != config::ModelInit::sft, args.config,
                  ": model.init is sft; inspect the stage's policy folder instead (",
                  "<run-dir>/sft/checkpoints/step_N/policy)");
  if (m.init == config::ModelInit::pretrained) {
    inspect_folder(m.path);
    return;
  }
  GRPO_CHECK_KIND(usage, m.architecture.vocab_size > 0 || args.vocab_size > 0, args.config,
                  ": model.architecture.vocab_size is 0 (taken from the tokenizer); "
                  "pass --vocab-size N to inspect");
  const model::ModelArch a = model::arch_from_config(m.architecture, args.vocab_size);
  const char* dtype = m.dtype == config::DType::float32    ? "float32"
                      : m.dtype == config::DType::bfloat16 ? "bfloat16"
                                                           : "float16";
  std::printf("%s: from-scratch model (init: random, seed %d)\n", args.config.c_str(), m.seed);
  print_arch(a);
  print_counts_and_memory(a, dtype, m.dtype == config::DType::float32 ? 4 : 2);
}

}  // namespace

void add_model_verb(CLI::App& app) {
  auto* model = app.add_subcommand("model", "Inspect models");
  model->require_subcommand(1);
  auto args = std::make_shared<InspectArgs>();
  auto* inspect = model->add_subcommand(
      "inspect", "Architecture, parameter counts, dtype and memory of a model folder or config");
  inspect->add_option("dir", args->dir, "Hugging Face folder (config.json + *.safetensors)");
  inspect->add_option("--config", args->config, "Run config whose model section to inspect");
  inspect->add_option("--set", args->overrides, "Override a config key (repeatable)");
  inspect->add_option("--vocab-size", args->vocab_size,
                      "Vocabulary size for a from-scratch model whose config leaves it to the "
                      "tokenizer");
  inspect->callback([args] {
    GRPO_CHECK_KIND(usage, args->dir.empty() != args->config.empty(),
                    "model inspect: give either a folder or --config FILE");
    if (!args->dir.empty()) {
      inspect_folder(args->dir);
    } else {
      inspect_config(*args);
    }
  });
}

}  // namespace grpo::cli
