// Hugging Face tokenizer.json backend: byte-level BPE (GPT-2, Llama-3, Qwen2/2.5/3) with added
// tokens, NFC-family normalizers, Split/ByteLevel pre-tokenizers, template post-processing and
// the ByteLevel decoder. Any other component is rejected by name when the file is loaded.
#pragma once

#include <array>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "added_tokens.h"
#include "bpe.h"
#include "grpo/text/tokenizer.h"
#include "pre_tokenizer.h"
#include "unicode.h"

namespace grpo::text {

class HfTokenizer final : public Tokenizer {
 public:
  // Throws naming the file and the component when it is malformed or unsupported.
  static std::unique_ptr<HfTokenizer> from_file(const std::string& path);
  // True when the file holds a byte-level BPE this class can run (the factory otherwise falls
  // back to a tokenizer.model next to it).
  static bool is_byte_level_bpe(const std::string& path);

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options) const override;
  void append_bytes(int32_t id, bool& at_start, std::string& out) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(id_to_token_.size()); }
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  bool is_special(int32_t id) const override;
  const std::vector<AddedToken>& added_tokens() const override { return added_; }

 private:
  // Pre-tokens already merged: most words repeat, so BPE runs once per distinct word.
  struct WordCache {
    std::unordered_map<std::string_view, std::pair<uint32_t, uint32_t>> index;  // offset, count
    std::vector<int32_t> ids;
    std::deque<std::string> keys;  // owns the bytes the index keys point at
  };

  void load(const std::string& path);
  void load_model(const std::string& path, const nlohmann::json& model);
  void load_post_processor(const std::string& path, const nlohmann::json& j);
  void encode_text(std::string_view text, bool parse_special, std::vector<int32_t>& out,
                   WordCache* cache) const;
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  void set_token(int32_t id, const std::string& token);

  std::vector<std::string> id_to_token_;  // as spelled in tokenizer.json; "" marks a hole
  std::vector<std::string> id_bytes_;     // what each id decodes to (raw bytes)
  std::vector<bool> special_;
  std::unordered_map<std::string, int32_t> token_ids_;  // spelling -> id, added tokens included
  std::unordered_map<std::string, int32_t> word_ids_;   // byte string -> model vocabulary id
  std::array<int32_t, 256> byte_ids_{};                 // -1: the byte has no token
  BpeMerges merges_;
  bool ignore_merges_ = false;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;

  std::optional<unicode::NormalForm> normal_form_;
  PreTokenizer pre_tokenizer_;
  std::vector<AddedToken> added_;
  AddedTokenMatcher raw_matcher_;                 // added tokens matched before normalization
  AddedTokenMatcher normalized_matcher_;          // added tokens with normalized = true
  std::vector<int32_t> prefix_ids_, suffix_ids_;  // what add_special_tokens puts around the text

  mutable std::mutex cache_mutex_;
  mutable WordCache cache_;
};

}  // namespace grpo::text
