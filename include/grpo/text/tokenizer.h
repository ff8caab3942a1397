// The one tokenizer interface of grpo: text <-> ids, special tokens, and streaming decode.
// Backends: Hugging Face tokenizer.json (byte-level BPE) and SentencePiece tokenizer.model;
// load_tokenizer(dir) picks the one a model folder ships (docs/tokenizers.md).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace grpo::text {

struct EncodeOptions {
  // Add what the tokenizer's post-processor adds around the text (Llama-3's <|begin_of_text|>,
  // a SentencePiece model's bos). Off by default: prompt templates spell these out themselves.
  bool add_special_tokens = false;
  // Recognise special-token strings (e.g. "<|im_end|>") in the text, as Hugging Face does.
  // Turn off for untrusted text so that it cannot inject control tokens.
  bool parse_special = true;
};

// A token that is matched in the text before any splitting ("added token" in Hugging Face).
struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;      // skipped by decode(skip_special = true); parse_special gates it
  bool single_word = false;  // only matched when not inside a word
  bool lstrip = false;       // swallows the whitespace on its left
  bool rstrip = false;       // swallows the whitespace on its right
  bool normalized = false;   // matched on the normalized text instead of the raw text
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Ids of `text`; invalid UTF-8 in `text` is an error naming the byte offset.
  virtual std::vector<int32_t> encode(std::string_view text,
                                      const EncodeOptions& options = {}) const = 0;

  // Text of `ids`. Byte sequences that are not valid UTF-8 (a character cut by the end of the
  // ids) become U+FFFD, as in the reference libraries. An id outside the vocabulary is an error.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;

  // The raw bytes token `id` adds to a decoded text (possibly part of a UTF-8 character).
  // `at_start` is true until some token has produced text; SentencePiece drops the leading
  // space of the first piece. Both decode() and IncrementalDecoder are built on this.
  virtual void append_bytes(int32_t id, bool& at_start, std::string& out) const = 0;

  // Number of ids, added tokens included (the largest id + 1).
  virtual int32_t vocab_size() const = 0;
  // The vocabulary entry as the tokenizer file spells it (e.g. "Ġthe", "▁the", "<|im_end|>").
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual std::string id_to_token(int32_t id) const = 0;
  virtual bool is_special(int32_t id) const = 0;
  virtual const std::vector<AddedToken>& added_tokens() const = 0;

  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  std::optional<int32_t> pad_id() const { return pad_id_; }
  void set_special_ids(std::optional<int32_t> bos, std::optional<int32_t> eos,
                       std::optional<int32_t> pad);

 private:
  std::optional<int32_t> bos_id_, eos_id_, pad_id_;
};

// Loads a model's tokenizer folder: tokenizer.json (preferred) or tokenizer.model, with
// bos/eos/pad taken from tokenizer_config.json (and special_tokens_map.json) where present.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir);

// Streams text while ids arrive (sampling): push() returns the text that is complete so far and
// holds back the bytes of a UTF-8 character that the next id may finish. The concatenation of
// every push() and finish() equals tokenizer.decode(all ids, skip_special).
class IncrementalDecoder {
 public:
  explicit IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special = false);
  std::string push(int32_t id);
  // Emits what is held back, invalid bytes as U+FFFD, and resets for a new sequence.
  std::string finish();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  bool at_start_ = true;
  std::string pending_;  // bytes not yet emitted: an incomplete UTF-8 character at most
};

}  // namespace grpo::text
