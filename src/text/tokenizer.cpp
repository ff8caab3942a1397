// The backend-independent part of Tokenizer: decoding on top of append_bytes, streaming decode,
// and load_tokenizer, which reads a model folder and its tokenizer_config.json.
#include "grpo/text/tokenizer.h"

#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "grpo/core/error.h"
#include "hf_tokenizer.h"
#include "sp_tokenizer.h"
#include "utf8.h"

namespace grpo::text {

namespace fs = std::filesystem;
using nlohmann::json;

void Tokenizer::set_special_ids(std::optional<int32_t> bos, std::optional<int32_t> eos,
                                std::optional<int32_t> pad) {
  bos_id_ = bos;
  eos_id_ = eos;
  pad_id_ = pad;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string bytes;
  bool at_start = true;
  for (int32_t id : ids) {
    if (skip_special && is_special(id)) continue;
    append_bytes(id, at_start, bytes);
  }
  std::string out;
  utf8::append_lossy(bytes, out);
  return out;
}

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(tokenizer), skip_special_(skip_special) {}

std::string IncrementalDecoder::push(int32_t id) {
  if (skip_special_ && tokenizer_.is_special(id)) return {};
  tokenizer_.append_bytes(id, at_start_, pending_);
  const std::size_t ready = utf8::complete_prefix(pending_);
  std::string out;
  utf8::append_lossy(std::string_view(pending_).substr(0, ready), out);
  pending_.erase(0, ready);
  return out;
}

std::string IncrementalDecoder::finish() {
  std::string out;
  utf8::append_lossy(pending_, out);
  pending_.clear();
  at_start_ = true;
  return out;
}

namespace {

json read_json(const fs::path& path) {
  std::ifstream in(path);
  GRPO_CHECK(in.good(), "cannot open ", path.string());
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    GRPO_FAIL(path.string(), ": malformed JSON: ", e.what());
  }
}

// tokenizer_config.json spells a special token as "<s>" or {"content": "<s>", ...}.
std::optional<std::string> token_name(const json& config, const char* key) {
  if (!config.contains(key) || config[key].is_null()) return std::nullopt;
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return v["content"].get<std::string>();
  return std::nullopt;
}

std::optional<int32_t> resolve(const Tokenizer& t, const json& config, const char* key,
                               const fs::path& where, std::optional<int32_t> fallback) {
  const auto name = token_name(config, key);
  if (!name) return fallback;
  const auto id = t.token_to_id(*name);
  GRPO_CHECK(id.has_value(), where.string(), ": ", key, " '", *name,
             "' is not in the tokenizer's vocabulary");
  return id;
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
  const fs::path folder(dir);
  GRPO_CHECK_KIND(config, fs::is_directory(folder), "tokenizer folder '", dir, "' does not exist");
  json config = json::object();
  const fs::path config_path = folder / "tokenizer_config.json";
  if (fs::exists(folder / "special_tokens_map.json")) {
    config = read_json(folder / "special_tokens_map.json");
  }
  if (fs::exists(config_path)) config.update(read_json(config_path));

  const fs::path json_path = folder / "tokenizer.json", sp_path = folder / "tokenizer.model";
  std::unique_ptr<Tokenizer> t;
  const bool has_sp = fs::exists(sp_path);
  if (fs::exists(json_path) && (!has_sp || HfTokenizer::is_byte_level_bpe(json_path.string()))) {
    t = HfTokenizer::from_file(json_path.string());
  } else if (has_sp) {
    t = SpTokenizer::from_file(sp_path.string(), config.value("add_bos_token", true),
                               config.value("add_eos_token", false));
  } else {
    GRPO_FAIL("tokenizer folder '", dir, "' has neither tokenizer.json nor tokenizer.model");
  }
  // tokenizer_config.json overrides what the model file itself declares.
  t->set_special_ids(resolve(*t, config, "bos_token", config_path, t->bos_id()),
                     resolve(*t, config, "eos_token", config_path, t->eos_id()),
                     resolve(*t, config, "pad_token", config_path, t->pad_id()));
  spdlog::debug("tokenizer {}: {} ids", dir, t->vocab_size());
  return t;
}

}  // namespace grpo::text
