// ICU-backed Unicode properties and normalization, with an ASCII/Latin-1 fast path: text below
// U+0300 is unchanged by NFC and NFD, which skips ICU for most English and code.
#include "unicode.h"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include "grpo/core/error.h"

namespace grpo::text::unicode {

bool is_whitespace(int32_t cp) { return u_isUWhiteSpace(cp); }

bool is_word_char(int32_t cp) {
  if (cp < 0x80) {
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
           cp == '_';
  }
  if (u_hasBinaryProperty(cp, UCHAR_ALPHABETIC) || u_hasBinaryProperty(cp, UCHAR_JOIN_CONTROL)) {
    return true;
  }
  const int8_t type = u_charType(cp);
  return type == U_NON_SPACING_MARK || type == U_ENCLOSING_MARK ||
         type == U_COMBINING_SPACING_MARK || type == U_DECIMAL_DIGIT_NUMBER ||
         type == U_CONNECTOR_PUNCTUATION;
}

namespace {

const icu::Normalizer2* instance(NormalForm form) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* n = nullptr;
  switch (form) {
    case NormalForm::nfc:
      n = icu::Normalizer2::getNFCInstance(status);
      break;
    case NormalForm::nfd:
      n = icu::Normalizer2::getNFDInstance(status);
      break;
    case NormalForm::nfkc:
      n = icu::Normalizer2::getNFKCInstance(status);
      break;
    case NormalForm::nfkd:
      n = icu::Normalizer2::getNFKDInstance(status);
      break;
  }
  GRPO_CHECK(U_SUCCESS(status) && n != nullptr,
             "ICU normalizer unavailable: ", u_errorName(status));
  return n;
}

// NFC/NFD leave code points below U+0300 alone; the UTF-8 lead byte of U+0300 is 0xCC. NFKC/NFKD
// also fold some Latin-1 characters (U+00A0, U+00B2, ...), so they only skip pure ASCII.
bool unchanged_fast(NormalForm form, std::string_view text) {
  const unsigned limit = (form == NormalForm::nfc || form == NormalForm::nfd) ? 0xCC : 0x80;
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= limit) return false;
  }
  return true;
}

}  // namespace

void normalize(NormalForm form, std::string_view text, std::string& out) {
  if (unchanged_fast(form, text)) {
    out.append(text);
    return;
  }
  const icu::Normalizer2* n = instance(form);
  const icu::UnicodeString source = icu::UnicodeString::fromUTF8(
      icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
  UErrorCode status = U_ZERO_ERROR;
  if (n->isNormalized(source, status) && U_SUCCESS(status)) {
    out.append(text);
    return;
  }
  status = U_ZERO_ERROR;
  const icu::UnicodeString result = n->normalize(source, status);
  GRPO_CHECK(U_SUCCESS(status), "Unicode normalization failed: ", u_errorName(status));
  result.toUTF8String(out);
}

}  // namespace grpo::text::unicode
