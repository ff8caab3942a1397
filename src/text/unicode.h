// Unicode properties and normalization (ICU) that the Hugging Face pipeline needs outside the
// pre-tokenizer regex: whitespace and word characters for added tokens, NFC/NFD/NFKC/NFKD.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace grpo::text::unicode {

// Unicode White_Space (Rust's char::is_whitespace).
bool is_whitespace(int32_t cp);
// Rust regex's \w: Alphabetic, marks, decimal digits, connector punctuation, join controls.
bool is_word_char(int32_t cp);

enum class NormalForm { nfc, nfd, nfkc, nfkd };
// Appends the normal form of valid UTF-8 `text` to `out`.
void normalize(NormalForm form, std::string_view text, std::string& out);

}  // namespace grpo::text::unicode
