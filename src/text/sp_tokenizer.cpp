// SentencePiece tokenizer. Decoding is done piece by piece (append_bytes) so that streaming and
// whole-sequence decoding share one path; tests check it against the library's DecodeIds.
#include "sp_tokenizer.h"

#include "grpo/core/error.h"
#include "sp_shim.h"
#include "utf8.h"

namespace grpo::text {

namespace {
constexpr const char* kSpace = "\xE2\x96\x81";             // U+2581, SentencePiece's space
constexpr const char* kUnknownSurface = " \xE2\x81\x87 ";  // " ⁇ ", the library's <unk> text

void append_to_string(void* ctx, const char* data, std::size_t size) {
  static_cast<std::string*>(ctx)->append(data, size);
}

void append_ids(void* ctx, const int* ids, std::size_t count) {
  static_cast<std::vector<int32_t>*>(ctx)->insert(static_cast<std::vector<int32_t>*>(ctx)->end(),
                                                  ids, ids + count);
}

}  // namespace

SpTokenizer::SpTokenizer() : api_(sentencepiece_api()) {}
SpTokenizer::~SpTokenizer() {
  if (sp_ != nullptr) api_.release(sp_);
}

std::string_view SpTokenizer::piece(int32_t id) const {
  std::size_t size = 0;
  const char* data = api_.id_to_piece(sp_, id, &size);
  return std::string_view(data, size);
}

int SpTokenizer::kind(int32_t id) const { return api_.kind(sp_, id); }

std::unique_ptr<SpTokenizer> SpTokenizer::from_file(const std::string& path, bool add_bos,
                                                    bool add_eos) {
  std::unique_ptr<SpTokenizer> t(new SpTokenizer());
  std::string error;
  t->sp_ = t->api_.load(path.c_str(), append_to_string, &error);
  GRPO_CHECK(t->sp_ != nullptr, "cannot load SentencePiece model ", path, ": ", error);
  const auto special = [&](int which) {
    const int id = t->api_.special_id(t->sp_, which);
    return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
  };
  t->add_bos_ = add_bos && special(1);
  t->add_eos_ = add_eos && special(2);
  for (int32_t id = 0; id < t->vocab_size(); ++id) {
    if (!(t->kind(id) & kGrpoSpControl)) continue;
    AddedToken a;
    a.id = id;
    a.content = std::string(t->piece(id));
    a.special = true;
    t->added_.push_back(a);
  }
  t->matcher_ = AddedTokenMatcher(t->added_);
  t->set_special_ids(special(1), special(2), special(3));
  // The library strips the first piece's leading space when the model adds a dummy prefix or
  // removes extra whitespace; both show as "a" encoding to a piece that starts with U+2581.
  std::vector<int32_t> a_ids;
  GRPO_CHECK(t->api_.encode(t->sp_, "a", 1, append_ids, &a_ids, append_to_string, &error) == 0,
             path, ": ", error);
  t->strip_first_space_ = !a_ids.empty() && t->piece(a_ids[0]).rfind(kSpace, 0) == 0;
  return t;
}

std::vector<int32_t> SpTokenizer::encode(std::string_view text,
                                         const EncodeOptions& options) const {
  const std::size_t bad = utf8::find_invalid(text);
  GRPO_CHECK(bad == utf8::kValid, "cannot encode: the text is not valid UTF-8 (byte offset ", bad,
             ")");
  std::vector<int32_t> out;
  if (options.add_special_tokens && add_bos_) out.push_back(*bos_id());
  std::vector<Segment> segments;
  matcher_.split(text, options.parse_special, segments);
  for (const Segment& s : segments) {
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    std::string error;
    GRPO_CHECK(api_.encode(sp_, s.text.data(), s.text.size(), append_ids, &out, append_to_string,
                           &error) == 0,
               "SentencePiece encoding failed: ", error);
  }
  if (options.add_special_tokens && add_eos_) out.push_back(*eos_id());
  return out;
}

void SpTokenizer::append_bytes(int32_t id, bool& at_start, std::string& out) const {
  GRPO_CHECK(id >= 0 && id < vocab_size(), "cannot decode id ", id,
             ": not in the vocabulary (size ", vocab_size(), ")");
  // Control pieces show as their text, like special tokens of the other backend (the library
  // hides them); they do not end the start of the text, whose first space is still dropped.
  const int k = kind(id);
  if (k & kGrpoSpControl) {
    out += piece(id);
    return;
  }
  if (k & kGrpoSpUnknown) {
    out += kUnknownSurface;
    at_start = false;
    return;
  }
  const std::string_view p = piece(id);
  if (k & kGrpoSpByte) {  // "<0xAB>"
    out += static_cast<char>(std::stoi(std::string(p.substr(3, 2)), nullptr, 16));
    at_start = false;
    return;
  }
  std::size_t pos = 0;
  if (at_start && strip_first_space_ && p.rfind(kSpace, 0) == 0) pos = 3;
  for (; pos < p.size(); ++pos) {
    if (p.compare(pos, 3, kSpace) == 0) {
      out += ' ';
      pos += 2;
    } else {
      out += p[pos];
    }
  }
  at_start = false;
}

int32_t SpTokenizer::vocab_size() const { return api_.piece_size(sp_); }

std::optional<int32_t> SpTokenizer::token_to_id(std::string_view token) const {
  const int id = api_.piece_to_id(sp_, token.data(), token.size());
  // PieceToId answers unk_id for unknown pieces; only <unk> itself maps there.
  if (id == api_.special_id(sp_, 0) && piece(id) != token) return std::nullopt;
  return id;
}

std::string SpTokenizer::id_to_token(int32_t id) const {
  GRPO_CHECK(id >= 0 && id < vocab_size(), "token id ", id, " is not in the vocabulary (size ",
             vocab_size(), ")");
  return std::string(piece(id));
}

bool SpTokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && (kind(id) & kGrpoSpControl);
}

std::string SpTokenizer::reference_decode(const std::vector<int32_t>& ids) const {
  std::string text;
  const std::vector<int> ints(ids.begin(), ids.end());
  GRPO_CHECK(api_.decode(sp_, ints.data(), ints.size(), append_to_string, &text) == 0,
             "SentencePiece decoding failed");
  return text;
}

}  // namespace grpo::text
