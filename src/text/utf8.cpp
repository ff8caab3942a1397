// UTF-8 validation and lossy decoding with the "maximal subpart" rule (Unicode ch. 3, U+FFFD).
#include "utf8.h"

namespace grpo::text::utf8 {

Step next(std::string_view bytes, std::size_t pos) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data()) + pos;
  const std::size_t n = bytes.size() - pos;
  const unsigned b0 = p[0];
  if (b0 < 0x80) return {static_cast<int32_t>(b0), 1, false};
  std::size_t need;
  unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  uint32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return {-1, 1, false};
  }
  for (std::size_t i = 1; i < need; ++i) {
    if (i >= n) return {-1, i, true};
    const unsigned b = p[i];
    const unsigned l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
    if (b < l || b > h) return {-1, i, false};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {static_cast<int32_t>(cp), need, false};
}

std::size_t find_invalid(std::string_view bytes) {
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    // ASCII runs are the common case; skip them eight bytes at a time.
    while (pos + 8 <= bytes.size()) {
      uint64_t word;
      __builtin_memcpy(&word, bytes.data() + pos, 8);
      if (word & 0x8080808080808080ull) break;
      pos += 8;
    }
    if (pos >= bytes.size()) break;
    const Step s = next(bytes, pos);
    if (s.code_point < 0) return pos;
    pos += s.length;
  }
  return kValid;
}

void append_code_point(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

void append_lossy(std::string_view bytes, std::string& out) {
  std::size_t pos = 0, run = 0;  // [run, pos) is valid and not yet copied
  while (pos < bytes.size()) {
    if (static_cast<unsigned char>(bytes[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const Step s = next(bytes, pos);
    if (s.code_point >= 0) {
      pos += s.length;
      continue;
    }
    out.append(bytes.data() + run, pos - run);
    out += "\xEF\xBF\xBD";
    pos += s.length;
    run = pos;
  }
  out.append(bytes.data() + run, pos - run);
}

std::size_t complete_prefix(std::string_view bytes) {
  // A truncated character is at most 3 bytes long and starts at one of the last 3 positions.
  const std::size_t n = bytes.size();
  for (std::size_t back = 1; back <= 3 && back <= n; ++back) {
    const unsigned b = static_cast<unsigned char>(bytes[n - back]);
    if (b < 0x80) return n;
    if (b >= 0xC0) {  // a lead byte: is the tail starting here an unfinished character?
      const Step s = next(bytes, n - back);
      return s.truncated ? n - back : n;
    }
  }
  return n;
}

}  // namespace grpo::text::utf8
