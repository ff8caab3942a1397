// Finds added tokens in text before it is split, as Hugging Face's AddedVocabulary does:
// leftmost-longest matches, with the single_word, lstrip and rstrip rules.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "grpo/text/tokenizer.h"

namespace grpo::text {

// A stretch of text, or one matched added token (id >= 0, text is the matched span).
struct Segment {
  std::string_view text;
  int32_t id = -1;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);
  bool empty() const { return tokens_.empty(); }

  // Splits `text` into segments; special tokens are ignored unless parse_special.
  void split(std::string_view text, bool parse_special, std::vector<Segment>& out) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;  // sorted by byte
    int32_t token = -1;                                       // index into tokens_
  };
  int32_t child(int32_t node, unsigned char byte) const;
  // Index of the longest token starting at `pos`, or -1; its length in `length`.
  int32_t longest_at(std::string_view text, std::size_t pos, std::size_t& length) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> nodes_;
  std::array<bool, 256> first_byte_{};
};

}  // namespace grpo::text
