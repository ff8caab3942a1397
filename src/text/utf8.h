// UTF-8 helpers of the text layer: validation, lossy decoding (U+FFFD for maximal invalid
// subparts, as Rust's from_utf8_lossy and so Hugging Face tokenizers do) and code-point stepping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace grpo::text::utf8 {

constexpr std::size_t kValid = static_cast<std::size_t>(-1);

// Result of reading one character at the start of a byte range.
struct Step {
  int32_t code_point;  // -1 when the bytes are invalid or truncated
  std::size_t length;  // bytes consumed: the character, or the maximal invalid subpart
  bool truncated;      // the range ended inside a character that could still be valid
};
Step next(std::string_view bytes, std::size_t pos);

// Offset of the first invalid byte, or kValid.
std::size_t find_invalid(std::string_view bytes);

// Appends `bytes` to `out`, each maximal invalid subpart replaced by U+FFFD.
void append_lossy(std::string_view bytes, std::string& out);

// Length of the prefix of `bytes` that can be emitted now: everything but a trailing truncated
// character (which the next bytes may complete).
std::size_t complete_prefix(std::string_view bytes);

void append_code_point(uint32_t cp, std::string& out);

}  // namespace grpo::text::utf8
