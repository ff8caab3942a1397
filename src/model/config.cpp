// Hugging Face config.json <-> ModelArch for the supported families (see model/config.h).
#include "grpo/model/config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "grpo/core/error.h"

namespace grpo::model {
using nlohmann::json;

namespace {

// Typed access to config.json keys with defaults; errors name the file and the key.
class Reader {
 public:
  Reader(const json& j, std::string where) : j_(j), where_(std::move(where)) {}

  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }

  int64_t integer(const char* key, int64_t fallback, bool required = false) const {
    if (!has(key)) {
      GRPO_CHECK_KIND(config, !required, where_, ": missing required key '", key, "'");
      return fallback;
    }
    const json& v = j_[key];
    GRPO_CHECK_KIND(config, v.is_number_integer(), where_, ": '", key, "' must be an integer, got ",
                    v.dump());
    return v.get<int64_t>();
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_[key];
    GRPO_CHECK_KIND(config, v.is_number(), where_, ": '", key, "' must be a number, got ",
                    v.dump());
    return v.get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_[key];
    GRPO_CHECK_KIND(config, v.is_boolean(), where_, ": '", key, "' must be true or false, got ",
                    v.dump());
    return v.get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const json& v = j_[key];
    GRPO_CHECK_KIND(config, v.is_string(), where_, ": '", key, "' must be a string, got ",
                    v.dump());
    return v.get<std::string>();
  }

 private:
  const json& j_;
  std::string where_;
};

// rope_parameters (transformers 5) or rope_theta + rope_scaling (transformers 4).
ops::RopeParams parse_rope(const json& config, const std::string& where) {
  Reader top(config, where);
  ops::RopeParams p;
  json params = json::object();
  if (top.has("rope_parameters")) {
    params = config["rope_parameters"];
    GRPO_CHECK_KIND(config, params.is_object(), where, ": 'rope_parameters' must be an object");
    GRPO_CHECK_KIND(config,
                    !params.contains("full_attention") && !params.contains("sliding_attention"),
                    where, ": per-layer-type rope_parameters are not supported");
  } else if (top.has("rope_scaling")) {
    params = config["rope_scaling"];
    GRPO_CHECK_KIND(config, params.is_object(), where, ": 'rope_scaling' must be an object");
  }
  Reader r(params, where + ": rope parameters");
  p.theta = r.number("rope_theta", top.number("rope_theta", 10000.0));
  const std::string type = r.string("rope_type", r.string("type", "default"));
  try {
    p.type = ops::parse_rope_type(type);
  } catch (const Error& e) {
    GRPO_CHECK_KIND(config, false, where, ": ", e.what());
  }
  GRPO_CHECK_KIND(
      config, r.number("partial_rotary_factor", top.number("partial_rotary_factor", 1.0)) == 1.0,
      where, ": partial_rotary_factor other than 1 is not supported");
  p.factor = r.number("factor", 1.0);
  p.low_freq_factor = r.number("low_freq_factor", 1.0);
  p.high_freq_factor = r.number("high_freq_factor", 4.0);
  p.original_max_position = r.integer("original_max_position_embeddings",
                                      top.integer("original_max_position_embeddings", 0));
  p.beta_fast = r.number("beta_fast", 32.0);
  p.beta_slow = r.number("beta_slow", 1.0);
  p.attention_factor = r.number("attention_factor", 0.0);
  p.mscale = r.number("mscale", 0.0);
  p.mscale_all_dim = r.number("mscale_all_dim", 0.0);
  p.truncate = r.boolean("truncate", true);
  if (p.type == ops::RopeType::yarn && !r.has("factor")) {
    const int64_t max_pos = top.integer("max_position_embeddings", 0);
    GRPO_CHECK_KIND(config, p.original_max_position > 0 && max_pos > 0, where,
                    ": yarn rope needs 'factor' or original_max_position_embeddings");
    p.factor = static_cast<double>(max_pos) / p.original_max_position;
  }
  GRPO_CHECK_KIND(config, p.theta > 0 && p.factor > 0, where,
                  ": rope_theta and the rope factor must be positive");
  return p;
}

// Sliding-window attention changes which keys a query sees; refuse it rather than ignore it.
void check_no_sliding_window(const json& config, const std::string& type,
                             const std::string& where) {
  Reader r(config, where);
  const bool qwen = type.rfind("qwen", 0) == 0;
  if (qwen) {
    GRPO_CHECK_KIND(config, !r.boolean("use_sliding_window", false), where,
                    ": sliding-window attention (use_sliding_window: true) is not supported");
  } else {
    const int64_t window = r.integer("sliding_window", 0);
    const int64_t max_pos = r.integer("max_position_embeddings", 0);
    GRPO_CHECK_KIND(config, window <= 0 || window >= max_pos, where, ": sliding_window ", window,
                    " (< max_position_embeddings ", max_pos, ") is not supported");
  }
  if (r.has("layer_types")) {
    for (const json& t : config["layer_types"]) {
      GRPO_CHECK_KIND(config, t == "full_attention", where, ": layer type ", t.dump(),
                      " is not supported (only full_attention)");
    }
  }
}

}  // namespace

bool ModelArch::is_moe_layer(int64_t layer) const {
  if (num_experts == 0) return false;
  if (std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) != mlp_only_layers.end()) {
    return false;
  }
  return (layer + 1) % decoder_sparse_step == 0;
}

ModelArch parse_hf_config(const json& config, const std::string& where) {
  GRPO_CHECK_KIND(config, config.is_object(), where, ": config.json must be a JSON object");
  Reader r(config, where);
  ModelArch a;
  a.source = config;
  a.model_type = r.string("model_type", "");
  const auto& types = supported_model_types();
  if (std::find(types.begin(), types.end(), a.model_type) == types.end()) {
    std::ostringstream list;
    for (const auto& t : types) list << (t == types.front() ? "" : ", ") << t;
    GRPO_CHECK_KIND(config, false, where, ": unsupported model_type '", a.model_type,
                    "' (supported: ", list.str(), ")");
  }
  const std::string act = r.string("hidden_act", "silu");
  GRPO_CHECK_KIND(config, act == "silu", where, ": hidden_act '", act,
                  "' is not supported (only silu)");
  check_no_sliding_window(config, a.model_type, where);

  a.vocab_size = r.integer("vocab_size", 0, true);
  a.hidden_size = r.integer("hidden_size", 0, true);
  a.num_layers = r.integer("num_hidden_layers", 0, true);
  a.num_heads = r.integer("num_attention_heads", 0, true);
  a.num_kv_heads = r.integer("num_key_value_heads", a.num_heads);
  GRPO_CHECK_KIND(config,
                  a.vocab_size > 0 && a.hidden_size > 0 && a.num_layers > 0 && a.num_heads > 0 &&
                      a.num_kv_heads > 0,
                  where, ": sizes must be positive");
  GRPO_CHECK_KIND(config, a.num_heads % a.num_kv_heads == 0, where, ": num_attention_heads ",
                  a.num_heads, " is not a multiple of num_key_value_heads ", a.num_kv_heads);
  a.head_dim = r.integer("head_dim", a.hidden_size / a.num_heads);
  GRPO_CHECK_KIND(config, a.head_dim > 0 && a.head_dim % 2 == 0, where, ": head_dim ", a.head_dim,
                  " must be even and positive");
  a.intermediate_size = r.integer("intermediate_size", 0);
  a.max_position_embeddings = r.integer("max_position_embeddings", 2048);
  a.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  a.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  a.rope = parse_rope(config, where);

  const std::string& t = a.model_type;
  if (t == "llama") {
    a.qkv_bias = a.o_bias = r.boolean("attention_bias", false);
    a.mlp_bias = r.boolean("mlp_bias", false);
  } else if (t == "qwen2") {
    a.qkv_bias = true;
  } else if (t == "qwen2_moe") {
    a.qkv_bias = r.boolean("qkv_bias", true);
  } else if (t == "qwen3" || t == "qwen3_moe") {
    a.qkv_bias = a.o_bias = r.boolean("attention_bias", false);
    a.qk_norm = true;
  }

  if (t == "qwen2_moe" || t == "qwen3_moe") {
    // Released checkpoints say num_experts; transformers 5 writes num_local_experts for Qwen3.
    a.num_experts = r.has("num_experts") ? r.integer("num_experts", 0)
                                         : r.integer("num_local_experts", 0, true);
    a.router.top_k = r.integer("num_experts_per_tok", 0, true);
    a.moe_intermediate_size = r.integer("moe_intermediate_size", 0, true);
    a.router.renormalize = r.boolean("norm_topk_prob", false);
    a.decoder_sparse_step = r.integer("decoder_sparse_step", 1);
    if (r.has("mlp_only_layers")) {
      a.mlp_only_layers = config["mlp_only_layers"].get<std::vector<int64_t>>();
    }
    if (t == "qwen2_moe") {
      a.shared_expert_intermediate_size = r.integer("shared_expert_intermediate_size", 0, true);
      a.shared_expert_gate = a.shared_expert_intermediate_size > 0;
    }
  } else if (t == "mixtral") {
    a.num_experts = r.integer("num_local_experts", 0, true);
    a.router.top_k = r.integer("num_experts_per_tok", 0, true);
    a.moe_intermediate_size = a.intermediate_size;
    a.router.renormalize = true;  // Mixtral always renormalises the top-k weights
    a.moe_module_name = "block_sparse_moe";
    a.expert_gate = "w1";
    a.expert_down = "w2";
    a.expert_up = "w3";
  }
  if (a.is_moe()) {
    GRPO_CHECK_KIND(config, a.router.top_k >= 1 && a.router.top_k <= a.num_experts, where,
                    ": num_experts_per_tok ", a.router.top_k, " not in [1, ", a.num_experts, "]");
    GRPO_CHECK_KIND(config, a.decoder_sparse_step >= 1, where,
                    ": decoder_sparse_step must be >= 1");
    a.router_aux_loss_coef = r.number("router_aux_loss_coef", 0.0);
    a.router_z_loss_coef = r.number("router_z_loss_coef", 0.0);
  }
  bool any_dense = !a.is_moe();
  for (int64_t i = 0; i < a.num_layers && !any_dense; ++i) any_dense = !a.is_moe_layer(i);
  GRPO_CHECK_KIND(config, !any_dense || a.intermediate_size > 0, where,
                  ": intermediate_size must be positive");
  return a;
}

ModelArch read_hf_config(const std::string& path) {
  std::ifstream in(path);
  GRPO_CHECK(in.good(), "cannot open ", path);
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    GRPO_CHECK_KIND(config, false, path, ": not valid JSON: ", e.what());
  }
  return parse_hf_config(j, path);
}

json to_hf_config(const ModelArch& a, const std::string& dtype_name) {
  json j = a.source;
  j["dtype"] = dtype_name;
  j.erase("torch_dtype");  // transformers 4 name of the same field; keep one
  return j;
}

ModelArch arch_from_config(const config::ModelArchitecture& c, int64_t vocab_size) {
  static const std::map<std::string, std::string> kArchitectures = {
      {"llama", "LlamaForCausalLM"},        {"mistral", "MistralForCausalLM"},
      {"qwen2", "Qwen2ForCausalLM"},        {"qwen3", "Qwen3ForCausalLM"},
      {"qwen2_moe", "Qwen2MoeForCausalLM"}, {"qwen3_moe", "Qwen3MoeForCausalLM"},
      {"mixtral", "MixtralForCausalLM"}};
  const int64_t vocab = c.vocab_size > 0 ? c.vocab_size : vocab_size;
  GRPO_CHECK_KIND(config, vocab > 0,
                  "model.architecture.vocab_size: 0 needs a tokenizer to take the size from");
  json j = {{"model_type", c.model_type},
            {"vocab_size", vocab},
            {"hidden_size", c.hidden_size},
            {"intermediate_size", c.intermediate_size},
            {"num_hidden_layers", c.num_hidden_layers},
            {"num_attention_heads", c.num_attention_heads},
            {"num_key_value_heads", c.num_key_value_heads},
            {"head_dim", c.head_dim > 0 ? c.head_dim : c.hidden_size / c.num_attention_heads},
            {"max_position_embeddings", c.max_position_embeddings},
            {"rms_norm_eps", c.rms_norm_eps},
            {"rope_theta", c.rope_theta},
            {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", c.rope_theta}}},
            {"tie_word_embeddings", c.tie_word_embeddings},
            {"hidden_act", "silu"},
            {"initializer_range", 0.02},
            {"sliding_window", nullptr},
            {"use_sliding_window", false}};
  const bool moe_type =
      c.model_type == "qwen2_moe" || c.model_type == "qwen3_moe" || c.model_type == "mixtral";
  GRPO_CHECK_KIND(config, moe_type == (c.num_experts > 0),
                  "model.architecture.num_experts: ", c.num_experts,
                  moe_type ? " (an MoE model_type needs experts)"
                           : " (model_type " + c.model_type + " is dense)");
  if (moe_type) {
    j["num_experts_per_tok"] = c.num_experts_per_tok;
    j["router_aux_loss_coef"] = c.router_aux_loss_coef;
    j["router_z_loss_coef"] = c.router_z_loss_coef;
    j[c.model_type == "mixtral" ? "num_local_experts" : "num_experts"] = c.num_experts;
  }
  if (c.model_type == "qwen2_moe" || c.model_type == "qwen3_moe") {
    j["moe_intermediate_size"] =
        c.moe_intermediate_size > 0 ? c.moe_intermediate_size : c.intermediate_size;
    j["norm_topk_prob"] = c.norm_topk_prob;
    j["decoder_sparse_step"] = 1;
    j["mlp_only_layers"] = json::array();
  }
  if (c.model_type == "qwen2_moe")
    j["shared_expert_intermediate_size"] = c.shared_expert_intermediate_size;
  if (c.model_type == "mixtral") {
    GRPO_CHECK_KIND(config, c.norm_topk_prob,
                    "model.architecture.norm_topk_prob: mixtral always renormalises");
  }
  const auto arch = kArchitectures.find(c.model_type);
  if (arch != kArchitectures.end()) j["architectures"] = json::array({arch->second});
  return parse_hf_config(j, "model.architecture");
}

}  // namespace grpo::model
