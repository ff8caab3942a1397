// Added-token matching with a byte trie. Matches are taken leftmost-longest and, like the
// aho-corasick iteration of Hugging Face tokenizers, a rejected match (single_word violated,
// special token while parse_special is off) is skipped as a whole.
#include "added_tokens.h"

#include <algorithm>

#include "unicode.h"
#include "utf8.h"

namespace grpo::text {

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  nodes_.emplace_back();
  for (std::size_t t = 0; t < tokens_.size(); ++t) {
    const std::string& s = tokens_[t].content;
    if (s.empty()) continue;
    first_byte_[static_cast<unsigned char>(s[0])] = true;
    int32_t node = 0;
    for (char c : s) {
      const auto byte = static_cast<unsigned char>(c);
      int32_t next = child(node, byte);
      if (next < 0) {
        next = static_cast<int32_t>(nodes_.size());
        nodes_.emplace_back();
        auto& kids = nodes_[node].children;
        kids.insert(std::lower_bound(kids.begin(), kids.end(), std::make_pair(byte, int32_t{0})),
                    {byte, next});
      }
      node = next;
    }
    if (nodes_[node].token < 0) nodes_[node].token = static_cast<int32_t>(t);
  }
}

int32_t AddedTokenMatcher::child(int32_t node, unsigned char byte) const {
  const auto& kids = nodes_[node].children;
  auto it = std::lower_bound(kids.begin(), kids.end(), std::make_pair(byte, int32_t{0}));
  return it != kids.end() && it->first == byte ? it->second : -1;
}

int32_t AddedTokenMatcher::longest_at(std::string_view text, std::size_t pos,
                                      std::size_t& length) const {
  int32_t node = 0, best = -1;
  for (std::size_t i = pos; i < text.size(); ++i) {
    node = child(node, static_cast<unsigned char>(text[i]));
    if (node < 0) break;
    if (nodes_[node].token >= 0) {
      best = nodes_[node].token;
      length = i + 1 - pos;
    }
  }
  return best;
}

namespace {

int32_t last_char(std::string_view s) {
  if (s.empty()) return -1;
  std::size_t start = s.size() - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return utf8::next(s, start).code_point;
}

int32_t first_char(std::string_view s) { return s.empty() ? -1 : utf8::next(s, 0).code_point; }

}  // namespace

void AddedTokenMatcher::split(std::string_view text, bool parse_special,
                              std::vector<Segment>& out) const {
  std::size_t emitted = 0;  // end of the last match (or 0)
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    std::size_t length = 0;
    const int32_t t = longest_at(text, pos, length);
    if (t < 0) {
      ++pos;
      continue;
    }
    const AddedToken& token = tokens_[t];
    std::size_t start = pos, stop = pos + length;
    pos = stop;  // a rejected match is skipped whole
    if (token.special && !parse_special) continue;
    if (token.single_word) {
      const int32_t before = start == 0 ? -1 : last_char(text.substr(0, start));
      const int32_t after = first_char(text.substr(stop));
      if ((before >= 0 && unicode::is_word_char(before)) ||
          (after >= 0 && unicode::is_word_char(after))) {
        continue;
      }
    }
    if (token.lstrip) {
      while (start > emitted) {
        std::size_t prev = start - 1;
        while (prev > emitted && (static_cast<unsigned char>(text[prev]) & 0xC0) == 0x80) --prev;
        if (!unicode::is_whitespace(utf8::next(text, prev).code_point)) break;
        start = prev;
      }
    }
    if (token.rstrip) {
      while (stop < text.size()) {
        const utf8::Step s = utf8::next(text, stop);
        if (!unicode::is_whitespace(s.code_point)) break;
        stop += s.length;
      }
      pos = stop;
    }
    if (start > emitted) out.push_back({text.substr(emitted, start - emitted), -1});
    out.push_back({text.substr(start, stop - start), token.id});
    emitted = stop;
  }
  if (emitted < text.size()) out.push_back({text.substr(emitted), -1});
}

}  // namespace grpo::text
