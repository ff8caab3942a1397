// SentencePiece training (libsentencepiece_train, via the module of sp_shim.h) from a .txt or
// .jsonl file, writing a model folder atomically: tokenizer.model and tokenizer_config.json.
#include <spdlog/spdlog.h>

#include <exception>
#include <filesystem>
#include <fstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "grpo/core/error.h"
#include "grpo/text/sentencepiece_train.h"
#include "sp_shim.h"
#include "utf8.h"

namespace grpo::text {

namespace fs = std::filesystem;

namespace {

// Feeds the trainer one text per input line; a .jsonl line gives its `field` string. Errors
// cannot cross the C interface: they stop the stream and are rethrown after training returns.
class LineReader {
 public:
  LineReader(const std::string& path, std::string field)
      : path_(path),
        in_(path),
        jsonl_(fs::path(path).extension() == ".jsonl"),
        field_(std::move(field)) {}

  static int next(void* ctx, const char** data, std::size_t* size) {
    auto* self = static_cast<LineReader*>(ctx);
    try {
      if (!self->read()) return 0;
    } catch (...) {
      self->error_ = std::current_exception();
      return -1;
    }
    *data = self->value_.data();
    *size = self->value_.size();
    return 1;
  }
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }
  std::size_t count() const { return count_; }

 private:
  bool read() {
    std::string line;
    while (std::getline(in_, line)) {
      ++line_no_;
      if (line.empty()) continue;
      value_ = jsonl_ ? text_of(line) : line;
      GRPO_CHECK(utf8::find_invalid(value_) == utf8::kValid, path_, ":", line_no_,
                 ": not valid UTF-8");
      ++count_;
      return true;
    }
    return false;
  }

  std::string text_of(const std::string& line) const {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      GRPO_FAIL(path_, ":", line_no_, ": malformed JSON: ", e.what());
    }
    if (j.is_string()) return j.get<std::string>();
    GRPO_CHECK(j.is_object() && j.contains(field_) && j[field_].is_string(), path_, ":", line_no_,
               ": expected a string field '", field_, "'");
    return j[field_].get<std::string>();
  }

  std::string path_;
  std::ifstream in_;
  bool jsonl_;
  std::string field_;
  std::string value_;
  std::size_t line_no_ = 0, count_ = 0;
  std::exception_ptr error_;
};

void append_to_string(void* ctx, const char* data, std::size_t size) {
  static_cast<std::string*>(ctx)->append(data, size);
}

void write_atomically(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    GRPO_CHECK(out.good(), "cannot write ", tmp.string());
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    GRPO_CHECK(out.good(), "cannot write ", tmp.string());
  }
  fs::rename(tmp, path);
}

}  // namespace

void train_sentencepiece(const SentencePieceTrainOptions& options) {
  const std::string ext = fs::path(options.input).extension().string();
  GRPO_CHECK_KIND(usage, ext == ".txt" || ext == ".jsonl", "--input '", options.input,
                  "': expected a .txt or .jsonl file");
  GRPO_CHECK_KIND(usage, fs::exists(options.input), "--input '", options.input, "' does not exist");
  GRPO_CHECK_KIND(usage, options.model_type == "bpe" || options.model_type == "unigram",
                  "--model-type '", options.model_type, "': expected bpe or unigram");
  GRPO_CHECK_KIND(usage, options.vocab_size > 0, "--vocab-size must be positive");
  std::string symbols;
  for (const std::string& s : options.user_symbols) symbols += (symbols.empty() ? "" : ",") + s;
  const std::vector<std::pair<std::string, std::string>> args = {
      {"vocab_size", std::to_string(options.vocab_size)},
      {"model_type", options.model_type},
      {"character_coverage", "1.0"},
      {"byte_fallback", "true"},                // any character encodes, via <0xXX> pieces
      {"normalization_rule_name", "identity"},  // exact round trips
      {"remove_extra_whitespaces", "false"},
      {"split_digits", options.split_digits ? "true" : "false"},
      {"allow_whitespace_only_pieces", "true"},
      {"hard_vocab_limit", "false"},  // a small corpus may not fill the vocabulary
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "3"},
      {"user_defined_symbols", symbols},
      {"max_sentence_length", "65536"},
      {"minloglevel", "1"},
  };
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : args) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  const GrpoSpApi& api = sentencepiece_api();
  LineReader lines(options.input, options.field);
  std::string model, error;
  const int rc = api.train(keys.data(), values.data(), keys.size(), LineReader::next, &lines,
                           append_to_string, &model, append_to_string, &error);
  lines.rethrow();
  GRPO_CHECK(rc == 0, "SentencePiece training on ", options.input, " failed: ", error);
  fs::create_directories(options.out_dir);
  const fs::path dir(options.out_dir);
  write_atomically(dir / "tokenizer.model", model);
  const nlohmann::json config = {{"tokenizer_class", "LlamaTokenizer"},
                                 {"bos_token", "<s>"},
                                 {"eos_token", "</s>"},
                                 {"pad_token", "<pad>"},
                                 {"unk_token", "<unk>"},
                                 {"add_bos_token", true},
                                 {"add_eos_token", false}};
  write_atomically(dir / "tokenizer_config.json", config.dump(2) + "\n");
  spdlog::info("trained a {} SentencePiece tokenizer on {} texts from {} -> {}", options.model_type,
               lines.count(), options.input, options.out_dir);
}

}  // namespace grpo::text
