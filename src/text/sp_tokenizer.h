// SentencePiece backend: a tokenizer.model, BPE or unigram, with byte fallback, run by
// libsentencepiece through the module of sp_shim.h. Control pieces (<s>, </s>, ...) in the text
// are matched as special tokens first.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "added_tokens.h"
#include "grpo/text/tokenizer.h"

struct GrpoSpApi;

namespace grpo::text {

class SpTokenizer final : public Tokenizer {
 public:
  // add_bos/add_eos: what encode(add_special_tokens = true) puts around the text.
  static std::unique_ptr<SpTokenizer> from_file(const std::string& path, bool add_bos,
                                                bool add_eos);
  ~SpTokenizer() override;

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options) const override;
  void append_bytes(int32_t id, bool& at_start, std::string& out) const override;
  int32_t vocab_size() const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int32_t id) const override;
  bool is_special(int32_t id) const override;
  const std::vector<AddedToken>& added_tokens() const override { return added_; }

  // The library's own decode, for tests that check append_bytes against it.
  std::string reference_decode(const std::vector<int32_t>& ids) const;

 private:
  SpTokenizer();
  std::string_view piece(int32_t id) const;
  int kind(int32_t id) const;

  const GrpoSpApi& api_;
  void* sp_ = nullptr;             // the library's processor, owned
  std::vector<AddedToken> added_;  // the control pieces, as special tokens
  AddedTokenMatcher matcher_;
  bool add_bos_ = true, add_eos_ = false;
  bool strip_first_space_ = true;  // the model adds a dummy prefix that decoding removes
};

}  // namespace grpo::text
